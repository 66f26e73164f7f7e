// plan.ts: from an observed snapshot to the writes, as tables. No I/O, no clock.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  connectedCondition, planOutputs, planStatus, readyCondition, selectMembers, type ObservedOutputs, type ReadyInput,
} from '../../src/controller/plan.ts';
import type { ConditionInput } from '../../src/core/conditions.ts';
import { configMapData } from '../../src/core/outputs.ts';
import type { Peer } from '../../src/core/peerTable.ts';
import { effectiveSpec, CLUSTER_KEY, type EffectiveSpec, type PgClusterSpec, DEFAULT_POD_ANNOTATION, NODE_NAME_ANNOTATION, MANAGED_BY_LABEL, MANAGED_BY } from '../../src/core/spec.ts';
import type { PodObject } from '../../src/kube/pods.ts';
import type { ConfigMapObject } from '../../src/kube/resources.ts';
import { chatSpec, pgcluster, pod } from '../support/controllerKit.ts';

function specOf(s: PgClusterSpec = chatSpec): EffectiveSpec {
  const r = effectiveSpec(pgcluster('chat', s));
  assert.ok(r.ok);
  return r.spec;
}
const chat = (labels: Record<string, string> = { app: 'chat' }) => labels;

describe('selectMembers', () => {
  const cases: { name: string; pods: PodObject[]; spec?: PgClusterSpec; selected: string[]; members: string[]; unannounced: RegExp[] }[] = [
    { name: 'ready pods with an IP are members', pods: [pod('a', { labels: chat(), ip: '10.0.0.1' }), pod('b', { labels: chat(), ip: '10.0.0.2' })], selected: ['a', 'b'], members: ['chat@10.0.0.1', 'chat@10.0.0.2'], unannounced: [] },
    { name: 'other labels are not selected', pods: [pod('a', { labels: { app: 'web' }, ip: '10.0.0.1' })], selected: [], members: [], unannounced: [] },
    { name: 'not ready: selected, not a member', pods: [pod('a', { labels: chat(), ip: '10.0.0.1', ready: false })], selected: ['a'], members: [], unannounced: [] },
    { name: 'not ready with publishNotReadyPods: a member', pods: [pod('a', { labels: chat(), ip: '10.0.0.1', ready: false })], spec: { ...chatSpec, publishNotReadyPods: true }, selected: ['a'], members: ['chat@10.0.0.1'], unannounced: [] },
    { name: 'no IP yet: selected, silently not a member', pods: [pod('a', { labels: chat() })], selected: ['a'], members: [], unannounced: [] },
    { name: 'a bad override is reported', pods: [pod('a', { labels: chat(), ip: '10.0.0.1', annotations: { [NODE_NAME_ANNOTATION]: 'nope' } })], selected: ['a'], members: [], unannounced: [/is not a node name/] },
    { name: 'one name for two pods: announced once, reported', pods: [pod('a', { labels: chat(), ip: '10.0.0.1', annotations: { [NODE_NAME_ANNOTATION]: 'x@h' } }), pod('b', { labels: chat(), ip: '10.0.0.2', annotations: { [NODE_NAME_ANNOTATION]: 'x@h' } })], selected: ['a', 'b'], members: ['x@h'], unannounced: [/have the same node name x@h/] },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const s = selectMembers(c.pods, specOf(c.spec));
      assert.deepEqual(s.selected.map((p) => p.metadata.name), c.selected);
      assert.deepEqual(s.members.map((m) => m.node).sort(), c.members);
      assert.equal(s.unannounced.length, c.unannounced.length, JSON.stringify(s.unannounced));
      c.unannounced.forEach((re, i) => assert.match(s.unannounced[i] ?? '', re));
    });
  }
});

describe('connectedCondition', () => {
  test('phases', () => {
    assert.deepEqual([
      connectedCondition({ phase: 'Listening', since: 0 }, 'chat', 'abc'),
      connectedCondition({ phase: 'Connecting', since: 0 }, 'chat', 'abc'),
      connectedCondition({ phase: 'Failed', reason: 'NoEcho', message: 'm', since: 0 }, 'chat', 'abc'),
    ].map((c) => [c.status, c.reason]), [['True', 'Listening'], ['Unknown', 'Connecting'], ['False', 'NoEcho']]);
  });
});

describe('readyCondition', () => {
  const up: ConditionInput = { type: 'Connected', status: 'True', reason: 'Listening', message: '' };
  const down: ConditionInput = { type: 'Connected', status: 'False', reason: 'Unreachable', message: '' };
  const base: ReadyInput = { spec: specOf(), connection: up, attached: true, everListening: true, members: 2, remote: 1, dropped: 0, unannounced: [] };
  const cases: [string, Partial<ReadyInput>, string, string, RegExp][] = [
    ['published', {}, 'True', 'PeersPublished', /^2 member\(s\) and 1 remote peer\(s\) published to ConfigMap chat-peers and pod annotation pgcluster.io\/peers; heartbeat every 5s$/],
    ['annotation off', { spec: specOf({ ...chatSpec, output: { podAnnotation: '' } }) }, 'True', 'PeersPublished', /ConfigMap chat-peers; heartbeat/],
    ['over maxPeers', { dropped: 3 }, 'True', 'MaxPeersExceeded', /3 name\(s\) not published: maxPeers is 1000/],
    ['no URL', { connection: down, attached: false, everListening: false }, 'False', 'NotConnected', /\(Unreachable\); outputs list members only/],
    ['never listened', { connection: down, everListening: false }, 'False', 'WaitingForListener', /not yet heard/],
    ['listened, now down', { connection: down }, 'False', 'Disconnected', /remote peers do not expire until it is back/],
    ['unannounced pods noted', { unannounced: ['a', 'b', 'c', 'd'] }, 'True', 'PeersPublished', /; 4 selected pod\(s\) not announced: a; b; c$/],
  ];
  for (const [name, over, status, reason, message] of cases) {
    test(name, () => {
      const c = readyCondition({ ...base, ...over });
      assert.deepEqual([c.type, c.status, c.reason], ['Ready', status, reason]);
      assert.match(c.message, message);
    });
  }
});

describe('planOutputs', () => {
  const pc = pgcluster('chat', chatSpec);
  const spec = specOf();
  const member = (n: number): Peer => ({ node: `chat@10.0.0.${n}`, host: `10.0.0.${n}`, source: 'member', pod: `p${n}` });
  const peers = [member(1), member(2)];
  const value = 'chat@10.0.0.1,chat@10.0.0.2';
  const ours = (name: string, data: Record<string, string>): ConfigMapObject => ({
    metadata: { name, namespace: 'prod', resourceVersion: '7', labels: { [MANAGED_BY_LABEL]: MANAGED_BY, [CLUSTER_KEY]: 'chat' }, ownerReferences: [{ apiVersion: 'pgcluster.io/v1alpha1', kind: 'PgCluster', name: 'chat', uid: 'uid-chat' }] },
    data,
  });
  const annotated = (name: string, v: string, extra: Record<string, string> = {}) => pod(name, { labels: chat(), annotations: { [DEFAULT_POD_ANNOTATION]: v, [CLUSTER_KEY]: 'chat', ...extra } });
  const observed = (o: Partial<ObservedOutputs> & { podList?: PodObject[] }): ObservedOutputs => ({
    configMap: o.configMap, configMaps: o.configMaps ?? (o.configMap ? [o.configMap] : []),
    pods: (o.podList ?? []).map((p) => ({ cached: p, observed: p })), staleKey: o.staleKey,
  });
  const cases: { name: string; selected: PodObject[]; o: ObservedOutputs; cm: string | undefined; deletes?: string[]; patches: [string, Record<string, string | null>][] }[] = [
    {
      name: 'nothing yet: create the ConfigMap, annotate every selected pod',
      selected: [pod('p1', { labels: chat() }), pod('p2', { labels: chat() })], o: observed({ podList: [pod('p1', { labels: chat() }), pod('p2', { labels: chat() })] }),
      cm: 'create', patches: [['p1', { [DEFAULT_POD_ANNOTATION]: value, [CLUSTER_KEY]: 'chat' }], ['p2', { [DEFAULT_POD_ANNOTATION]: value, [CLUSTER_KEY]: 'chat' }]],
    },
    {
      name: 'all current: no write at all',
      selected: [annotated('p1', value)], o: observed({ configMap: ours('chat-peers', configMapData('chat', peers)), podList: [annotated('p1', value)] }),
      cm: undefined, patches: [],
    },
    {
      name: 'membership changed: patch, with stale keys removed',
      selected: [annotated('p1', 'old')], o: observed({ configMap: ours('chat-peers', { peers: 'old\n', extra: 'x' }), podList: [annotated('p1', 'old')] }),
      cm: 'patch', patches: [['p1', { [DEFAULT_POD_ANNOTATION]: value, [CLUSTER_KEY]: 'chat' }]],
    },
    {
      name: 'a pod that stopped matching loses what we wrote (and only that)',
      selected: [], o: observed({ configMap: ours('chat-peers', configMapData('chat', peers)), podList: [pod('gone', { labels: { app: 'web' }, annotations: { [DEFAULT_POD_ANNOTATION]: value, [CLUSTER_KEY]: 'chat', mine: 'no' } })] }),
      cm: undefined, patches: [['gone', { [DEFAULT_POD_ANNOTATION]: null, [CLUSTER_KEY]: null }]],
    },
    {
      name: 'a pod annotated by another PgCluster is left alone',
      selected: [], o: observed({ configMap: ours('chat-peers', configMapData('chat', peers)), podList: [pod('theirs', { annotations: { [DEFAULT_POD_ANNOTATION]: 'x', [CLUSTER_KEY]: 'other' } })] }),
      cm: undefined, patches: [],
    },
    {
      name: 'the annotation key was renamed: the old key comes off',
      selected: [annotated('p1', value, { 'old/key': value })], o: observed({ configMap: ours('chat-peers', configMapData('chat', peers)), podList: [annotated('p1', value, { 'old/key': value })], staleKey: 'old/key' }),
      cm: undefined, patches: [['p1', { 'old/key': null, [DEFAULT_POD_ANNOTATION]: value, [CLUSTER_KEY]: 'chat' }]],
    },
    {
      name: 'the ConfigMap was renamed: the old one is deleted',
      selected: [], o: observed({ configMap: ours('chat-peers', configMapData('chat', peers)), configMaps: [ours('chat-peers', configMapData('chat', peers)), ours('old-name', {})] }),
      cm: undefined, deletes: ['old-name'], patches: [],
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const p = planOutputs(pc, spec, c.selected, peers, c.o);
      assert.equal(p.configMap?.kind, c.cm);
      if (p.configMap?.kind === 'create') assert.deepEqual(p.configMap.object.data, configMapData('chat', peers));
      if (p.configMap?.kind === 'patch') assert.deepEqual(p.configMap.data, { ...configMapData('chat', peers), extra: null });
      assert.deepEqual(p.deleteConfigMaps, c.deletes ?? []);
      assert.deepEqual(p.podPatches.map((x) => [x.pod.metadata.name, x.annotations]), c.patches);
    });
  }
});

describe('planStatus', () => {
  const now = Date.UTC(2026, 0, 1, 12);
  const ready: ConditionInput = { type: 'Ready', status: 'True', reason: 'PeersPublished', message: 'ok' };
  const notReady: ConditionInput = { type: 'Ready', status: 'False', reason: 'Disconnected', message: 'down' };
  test('first status: written; a first healthy condition is no Event', () => {
    const pc = pgcluster('chat', chatSpec);
    const w = planStatus(pc, pc, { members: 1 }, [ready], now);
    assert.ok(w);
    assert.equal(w.status.members, 1);
    assert.equal(w.status.observedGeneration, 1);
    assert.deepEqual(w.status.conditions?.map((c) => [c.type, c.status, c.lastTransitionTime]), [['Ready', 'True', '2026-01-01T12:00:00Z']]);
    assert.deepEqual(w.events, []);
  });
  test('unchanged: nothing to write', () => {
    const pc = pgcluster('chat', chatSpec);
    const first = planStatus(pc, pc, { members: 1 }, [ready], now);
    const written = { ...pc, status: first?.status };
    assert.equal(planStatus(written, written, { members: 1 }, [ready], now + 5000), undefined);
  });
  test('a flip: written with a new transition time and one Event; a later flip back is a Normal Event', () => {
    const pc = pgcluster('chat', chatSpec);
    const s1 = { ...pc, status: planStatus(pc, pc, {}, [ready], now)?.status };
    const w2 = planStatus(s1, s1, {}, [notReady], now + 60_000);
    assert.deepEqual(w2?.events, [{ type: 'Warning', reason: 'Disconnected', message: 'down' }]);
    assert.equal(w2?.status.conditions?.[0]?.lastTransitionTime, '2026-01-01T12:01:00Z');
    const s2 = { ...pc, status: w2?.status };
    assert.deepEqual(planStatus(s2, s2, {}, [ready], now + 120_000)?.events, [{ type: 'Normal', reason: 'PeersPublished', message: 'ok' }]);
  });
  test('Unknown is no Event', () => {
    const pc = pgcluster('chat', chatSpec);
    assert.deepEqual(planStatus(pc, pc, {}, [{ type: 'Connected', status: 'Unknown', reason: 'Connecting', message: '' }], now)?.events, []);
  });
});
