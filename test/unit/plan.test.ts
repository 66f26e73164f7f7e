// plan/*.ts: from an observed snapshot to the writes, as tables. No I/O, no clock.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { connectedCondition, degradedCondition, readyCondition, type ReadyInput } from '../../src/controller/plan/conditions.ts';
import { selectMembers } from '../../src/controller/plan/members.ts';
import { planOutputs, type ObservedOutputs } from '../../src/controller/plan/outputs.ts';
import { planStatus } from '../../src/controller/plan/status.ts';
import type { ConditionInput } from '../../src/core/conditions.ts';
import { configMapData, peersVersion, PEERS_VERSION } from '../../src/core/outputs.ts';
import type { Peer } from '../../src/core/peerTable.ts';
import { markerKey, type Claim } from '../../src/core/ownership.ts';
import { ANNOTATED_LABEL, effectiveSpec, CLUSTER_KEY, type EffectiveSpec, type PgClusterSpec, DEFAULT_POD_ANNOTATION, NODE_NAME_ANNOTATION, MANAGED_BY_LABEL, MANAGED_BY } from '../../src/core/spec.ts';
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
  const clean = { configMapConflict: undefined, podConflicts: [], rejected: [] };
  const base: ReadyInput = { spec: specOf(), connection: up, attached: true, everListening: true, members: 2, remote: 1, dropped: 0, droppedForSize: 0, unannounced: [], outputs: clean };
  const cases: [string, Partial<ReadyInput>, string, string, RegExp][] = [
    ['published', {}, 'True', 'PeersPublished', /^2 member\(s\) and 1 remote peer\(s\) published to ConfigMap chat-peers and pod annotation pgcluster.io\/peers; heartbeat every 5s$/],
    ['annotation off', { spec: specOf({ ...chatSpec, output: { podAnnotation: '' } }) }, 'True', 'PeersPublished', /ConfigMap chat-peers; heartbeat/],
    ['over maxPeers', { dropped: 3 }, 'True', 'MaxPeersExceeded', /3 name\(s\) not published: maxPeers is 1000/],
    ['no URL', { connection: down, attached: false, everListening: false }, 'False', 'NotConnected', /\(Unreachable\); outputs list members only/],
    ['never listened', { connection: down, everListening: false }, 'False', 'WaitingForListener', /not yet heard/],
    ['listened, now down', { connection: down }, 'False', 'Disconnected', /remote peers do not expire until it is back/],
    ['over the byte budget', { droppedForSize: 5, dropped: 2 }, 'True', 'OutputSizeExceeded', /5 name\(s\) not published: the outputs are full \(ConfigMap data 900 KiB, pod annotation 128 KiB; remote peers are left out before members\), and 2 more for maxPeers 1000/],
    ['ConfigMap taken', { outputs: { ...clean, configMapConflict: 'ConfigMap prod/x is not ours' } }, 'False', 'OutputConflict', /^ConfigMap prod\/x is not ours$/],
    ['pods owned by others', { outputs: { ...clean, podConflicts: [{ pod: 'a', owner: 'older' }, { pod: 'b', owner: undefined }] } }, 'False', 'OutputConflict', /left alone on 2 selected pod\(s\): a \(owned by the older PgCluster older\), b \(a value this PgCluster did not write\); set a spec.output.podAnnotation/],
    ['a write refused', { outputs: { ...clean, rejected: ['pod a: 422 too long'] } }, 'False', 'OutputRejected', /refused 1 write\(s\): pod a: 422 too long; the other outputs are written/],
    ['a conflict is reported before the listener', { connection: down, outputs: { ...clean, configMapConflict: 'taken' } }, 'False', 'OutputConflict', /^taken$/],
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
  const pc = pgcluster('chat', chatSpec, { created: '2026-01-02T00:00:00Z' });
  const spec = specOf();
  const member = (n: number): Peer => ({ node: `chat@10.0.0.${n}`, host: `10.0.0.${n}`, source: 'member', pod: `p${n}` });
  const peers = [member(1), member(2)];
  const value = 'chat@10.0.0.1,chat@10.0.0.2';
  const K = DEFAULT_POD_ANNOTATION;
  const M = markerKey(K);
  const mine = { [M]: `chat ${K}` };
  const owned = (name: string, uid: string) => ({ labels: { [MANAGED_BY_LABEL]: MANAGED_BY, [CLUSTER_KEY]: name }, ownerReferences: [{ apiVersion: 'pgcluster.io/v1alpha1', kind: 'PgCluster', name, uid }] });
  const ours = (name: string, data: Record<string, string>): ConfigMapObject => ({ metadata: { name, namespace: 'prod', resourceVersion: '7', ...owned('chat', 'uid-chat') }, data });
  const current = ours('chat-peers', configMapData('chat', peers));
  const annotated = (name: string, v: string, extra: Record<string, string> = {}) => pod(name, { labels: { ...chat(), [ANNOTATED_LABEL]: 'true' }, annotations: { [K]: v, ...mine, ...extra } });
  const claim = (name: string, created: string, podAnnotation = K): Claim => ({ name, created, selector: { matchLabels: chat() }, podAnnotation });
  const observed = (o: Partial<ObservedOutputs> & { podList?: PodObject[] }): ObservedOutputs => ({
    configMap: o.configMap, configMaps: o.configMaps ?? (o.configMap ? [o.configMap] : []), configMapTaken: o.configMapTaken ?? false,
    pods: (o.podList ?? []).map((p) => ({ cached: p, observed: p })), legacyKey: o.legacyKey ?? K, rivals: o.rivals ?? [],
  });
  type Patch = [string, Record<string, string | null>] | [string, Record<string, string | null>, { key: string; value: string }];
  const cases: { name: string; selected: PodObject[]; o: ObservedOutputs; cm: string | undefined; deletes?: string[]; patches: Patch[]; conflicts?: [string, string | undefined][]; cmConflict?: RegExp }[] = [
    {
      name: 'nothing yet: create the ConfigMap, annotate every selected pod with our marker',
      selected: [pod('p1', { labels: chat() }), pod('p2', { labels: chat() })], o: observed({ podList: [pod('p1', { labels: chat() }), pod('p2', { labels: chat() })] }),
      cm: 'create', patches: [['p1', { [K]: value, ...mine }], ['p2', { [K]: value, ...mine }]],
    },
    {
      name: 'all current: no write at all',
      selected: [annotated('p1', value)], o: observed({ configMap: current, podList: [annotated('p1', value)] }),
      cm: undefined, patches: [],
    },
    {
      name: 'membership changed: patch, with stale keys removed',
      selected: [annotated('p1', 'old')], o: observed({ configMap: ours('chat-peers', { peers: 'old\n', extra: 'x' }), podList: [annotated('p1', 'old')] }),
      cm: 'patch', patches: [['p1', { [K]: value, ...mine }]],
    },
    {
      name: 'a pod that stopped matching loses what we wrote (and only that), guarded by our marker',
      selected: [], o: observed({ configMap: current, podList: [pod('gone', { labels: { app: 'web' }, annotations: { [K]: value, ...mine, other: 'no' } })] }),
      cm: undefined, patches: [['gone', { [K]: null, [M]: null }, { key: M, value: `chat ${K}` }]],
    },
    {
      name: 'a pod annotated for another PgCluster is left alone',
      selected: [], o: observed({ configMap: current, podList: [pod('theirs', { annotations: { [K]: 'x', [M]: `other ${K}` } })] }),
      cm: undefined, patches: [],
    },
    {
      name: 'the annotation key was renamed: the old key comes off where we wrote it',
      selected: [annotated('p1', value, { 'old/key': value, [markerKey('old/key')]: 'chat old/key' })],
      o: observed({ configMap: current, podList: [annotated('p1', value, { 'old/key': value, [markerKey('old/key')]: 'chat old/key' })] }),
      cm: undefined, patches: [['p1', { 'old/key': null, [markerKey('old/key')]: null }, { key: markerKey('old/key'), value: 'chat old/key' }]],
    },
    {
      name: 'a value someone else put under our key is left alone and reported',
      selected: [pod('p1', { labels: chat(), annotations: { [K]: 'theirs' } })], o: observed({ configMap: current, podList: [pod('p1', { labels: chat(), annotations: { [K]: 'theirs' } })] }),
      cm: undefined, patches: [], conflicts: [['p1', undefined]],
    },
    {
      name: 'an older PgCluster claims the key on the pod: left to it, reported',
      selected: [annotated('p1', 'x')], o: observed({ configMap: current, podList: [annotated('p1', 'x')], rivals: [claim('elder', '2026-01-01T00:00:00Z')] }),
      cm: undefined, patches: [], conflicts: [['p1', 'elder']],
    },
    {
      name: 'a younger PgCluster\'s marker: the older one takes the key over',
      selected: [pod('p1', { labels: chat(), annotations: { [K]: 'x', [M]: `young ${K}` } })],
      o: observed({ configMap: current, podList: [pod('p1', { labels: chat(), annotations: { [K]: 'x', [M]: `young ${K}` } })], rivals: [claim('young', '2026-01-03T00:00:00Z')] }),
      cm: undefined, patches: [['p1', { [K]: value, ...mine }]],
    },
    {
      name: 'same creation second: the name decides',
      selected: [annotated('p1', 'x')], o: observed({ configMap: current, podList: [annotated('p1', 'x')], rivals: [claim('a-first', '2026-01-02T00:00:00Z')] }),
      cm: undefined, patches: [], conflicts: [['p1', 'a-first']],
    },
    {
      name: 'an older PgCluster with another key: both keys live on the pod',
      selected: [annotated('p1', 'x', { 'b/peers': 'y', [markerKey('b/peers')]: 'elder b/peers' })],
      o: observed({ configMap: current, podList: [annotated('p1', 'x', { 'b/peers': 'y', [markerKey('b/peers')]: 'elder b/peers' })], rivals: [claim('elder', '2026-01-01T00:00:00Z', 'b/peers')] }),
      cm: undefined, patches: [['p1', { [K]: value, ...mine }]],
    },
    {
      name: 'an earlier version\'s single marker: taken as ours and replaced by the per-key marker',
      selected: [pod('p1', { labels: chat(), annotations: { [K]: value, [CLUSTER_KEY]: 'chat' } })],
      o: observed({ configMap: current, podList: [pod('p1', { labels: chat(), annotations: { [K]: value, [CLUSTER_KEY]: 'chat' } })] }),
      cm: undefined, patches: [['p1', { [K]: value, ...mine, [CLUSTER_KEY]: null }]],
    },
    {
      name: 'an earlier version\'s marker on a pod no longer selected: removed, guarded',
      selected: [], o: observed({ configMap: current, podList: [pod('p1', { annotations: { [K]: value, [CLUSTER_KEY]: 'chat' } })] }),
      cm: undefined, patches: [['p1', { [K]: null, [CLUSTER_KEY]: null }, { key: CLUSTER_KEY, value: 'chat' }]],
    },
    {
      name: 'the ConfigMap was renamed: the old one is deleted',
      selected: [], o: observed({ configMap: current, configMaps: [current, ours('old-name', {})] }),
      cm: undefined, deletes: ['old-name'], patches: [],
    },
    {
      name: 'a ConfigMap labelled as ours but owned by another PgCluster: left alone, reported, pods still written',
      selected: [pod('p1', { labels: chat() })],
      o: observed({ configMap: { metadata: { name: 'chat-peers', namespace: 'prod', ...owned('first', 'uid-first') }, data: {} }, podList: [pod('p1', { labels: chat() })] }),
      cm: undefined, patches: [['p1', { [K]: value, ...mine }]], cmConflict: /belongs to PgCluster first, so it is left alone: give this PgCluster another spec.output.configMapName/,
    },
    {
      name: 'a ConfigMap labelled as ours with no owner: left alone (never adopted)',
      selected: [], o: observed({ configMap: { metadata: { name: 'chat-peers', namespace: 'prod', labels: { [MANAGED_BY_LABEL]: MANAGED_BY } }, data: {} } }),
      cm: undefined, patches: [], cmConflict: /is not owned by this PgCluster, so it is left alone: delete it/,
    },
    {
      name: 'the name is held by an object we cannot see (a create said 409): no create, reported',
      selected: [], o: observed({ configMapTaken: true }),
      cm: undefined, patches: [], cmConflict: /exists and is not this PgCluster's \(it is not labelled app.kubernetes.io\/managed-by=pgcluster-operator\)/,
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const p = planOutputs(pc, spec, c.selected, peers, c.o);
      assert.equal(p.configMap?.kind, c.cm);
      if (p.configMap?.kind === 'create') assert.deepEqual(p.configMap.object.data, configMapData('chat', peers));
      if (p.configMap?.kind === 'patch') assert.deepEqual(p.configMap.data, { ...configMapData('chat', peers), extra: null });
      assert.deepEqual(p.deleteConfigMaps, c.deletes ?? []);
      assert.deepEqual(p.podPatches.map((x) => (x.guard ? [x.pod.metadata.name, x.annotations, x.guard] : [x.pod.metadata.name, x.annotations])), c.patches);
      assert.deepEqual(p.podConflicts.map((x) => [x.pod, x.owner]), c.conflicts ?? []);
      if (c.cmConflict) assert.match(p.configMapConflict ?? '', c.cmConflict);
      else assert.equal(p.configMapConflict, undefined);
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
  test('Degraded (abnormal-true): a first False is no Event, True is a Warning, back to False a Normal one; dropped once it no longer applies', () => {
    const pc = pgcluster('chat', chatSpec);
    const first = planStatus(pc, pc, {}, [ready, degradedCondition(2, 2)], now);
    assert.deepEqual(first?.events, []);
    const s1 = { ...pc, status: first?.status };
    const below = planStatus(s1, s1, {}, [ready, degradedCondition(1, 2)], now + 1000);
    assert.deepEqual(below?.events, [{ type: 'Warning', reason: 'BelowMinMembers', message: '1 member(s) announced, fewer than minMembers 2' }]);
    const s2 = { ...pc, status: below?.status };
    assert.deepEqual(planStatus(s2, s2, {}, [ready, degradedCondition(3, 2)], now + 2000)?.events.map((e) => [e.type, e.reason]), [['Normal', 'EnoughMembers']]);
    const off = planStatus(s2, s2, {}, [ready], now + 3000, ['Degraded']);
    assert.deepEqual(off?.status.conditions?.map((c) => c.type), ['Ready']);
  });
  test('Unknown is no Event', () => {
    const pc = pgcluster('chat', chatSpec);
    assert.deepEqual(planStatus(pc, pc, {}, [{ type: 'Connected', status: 'Unknown', reason: 'Connecting', message: '' }], now)?.events, []);
  });
});

describe('planOutputs, podAnnotationFormat version', () => {
  const pc = pgcluster('chat', chatSpec, { created: '2026-01-02T00:00:00Z' });
  const versioned = specOf({ ...chatSpec, output: { podAnnotationFormat: 'version' } });
  const listed = specOf();
  const member = (n: number): Peer => ({ node: `chat@10.0.0.${n}`, host: `10.0.0.${n}`, source: 'member', pod: `p${n}` });
  const peers = [member(1), member(2)];
  const text = 'chat@10.0.0.1\nchat@10.0.0.2\n';
  const version = `2/sha256:${createHash('sha256').update(text).digest('hex').slice(0, 16)}`;
  const list = 'chat@10.0.0.1,chat@10.0.0.2';
  const K = DEFAULT_POD_ANNOTATION;
  const mine = { [markerKey(K)]: `chat ${K}` };
  const cm: ConfigMapObject = { metadata: { name: 'chat-peers', namespace: 'prod', resourceVersion: '7', labels: { [MANAGED_BY_LABEL]: MANAGED_BY, [CLUSTER_KEY]: 'chat' }, ownerReferences: [{ apiVersion: 'pgcluster.io/v1alpha1', kind: 'PgCluster', name: 'chat', uid: 'uid-chat' }] }, data: configMapData('chat', peers) };
  const carrying = (v: string) => pod('p1', { labels: { app: 'chat', [ANNOTATED_LABEL]: 'true' }, annotations: { [K]: v, ...mine } });
  const observedOf = (p: PodObject, settled?: ObservedOutputs['settled']): ObservedOutputs => ({ configMap: cm, configMaps: [cm], configMapTaken: false, pods: [{ cached: p, observed: p }], legacyKey: K, rivals: [], settled });

  const versions: [string, string, string][] = [
    ['two names', text, version],
    ['no names', '', '0/sha256:e3b0c44298fc1c14'],
    ['one name', 'chat@10.0.0.1\n', `1/sha256:${createHash('sha256').update('chat@10.0.0.1\n').digest('hex').slice(0, 16)}`],
  ];
  for (const [name, peersText, want] of versions) {
    test(`peersVersion, ${name}: the count, then the first 16 hex digits of the SHA-256 of the peers file`, () => {
      assert.equal(peersVersion(peersText), want);
      assert.match(want, PEERS_VERSION);
    });
  }

  const cases: { name: string; spec: EffectiveSpec; annotation: string | undefined; patch: Record<string, string> | undefined }[] = [
    { name: 'nothing yet: the version, with our marker', spec: versioned, annotation: undefined, patch: { [K]: version, ...mine } },
    { name: 'the list switched to version: rewritten', spec: versioned, annotation: list, patch: { [K]: version, ...mine } },
    { name: 'the version of another list: rewritten', spec: versioned, annotation: '1/sha256:0123456789abcdef', patch: { [K]: version, ...mine } },
    { name: 'the current version: nothing to write', spec: versioned, annotation: version, patch: undefined },
    { name: 'version switched back to list: rewritten with the names', spec: listed, annotation: version, patch: { [K]: list, ...mine } },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const p0 = c.annotation === undefined ? pod('p1', { labels: { app: 'chat' } }) : carrying(c.annotation);
      const p = planOutputs(pc, c.spec, [p0], peers, observedOf(p0));
      assert.equal(p.configMap, undefined, 'the ConfigMap carries the list either way');
      assert.deepEqual(p.podPatches.map((x) => x.annotations), c.patch ? [c.patch] : []);
    });
  }

  test('a pod found current is not planned again while it, the value, its selection and the rest stay the same', () => {
    const settled: NonNullable<ObservedOutputs['settled']> = new WeakMap();
    const p0 = carrying(version);
    assert.deepEqual(planOutputs(pc, versioned, [p0], peers, observedOf(p0, settled)).podPatches, []);
    // Caches replace pod objects, never change them: changed in place, the memo still answers for it.
    (p0.metadata.annotations as Record<string, string>)[K] = 'changed behind the memo';
    assert.deepEqual(planOutputs(pc, versioned, [p0], peers, observedOf(p0, settled)).podPatches, [], 'the memo is used');
    assert.equal(planOutputs(pc, versioned, [p0], [member(1)], observedOf(p0, settled)).podPatches.length, 1, 'another value: planned again');
    assert.equal(planOutputs(pc, versioned, [], peers, observedOf(p0, settled)).podPatches.length, 1, 'no longer selected: planned again (its annotation comes off)');
    assert.equal(planOutputs(pc, listed, [p0], peers, observedOf(p0, settled)).podPatches.length, 1, 'another format: planned again');
  });
});
