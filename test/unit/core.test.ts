import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseDuration, formatDuration } from '../../src/core/duration.ts';
import { parseNodeName } from '../../src/core/payload.ts';
import { matchesSelector } from '../../src/core/selector.ts';
import { defaultChannel, defaultPeerTimeoutMs, effectiveSpec, type PgCluster } from '../../src/core/spec.ts';
import { podNodeName, isEligible } from '../../src/core/nodeName.ts';
import type { PodView } from '../../src/core/pod.ts';
import { setCondition, statusEqual } from '../../src/core/conditions.ts';
import { configMapData, annotationValue, remotePeersFromConfigMap } from '../../src/core/outputs.ts';

describe('parseDuration', () => {
  const cases: [string, number | undefined][] = [
    ['5s', 5000], ['1m30s', 90_000], ['250ms', 250], ['1.5h', 5_400_000], ['1h', 3_600_000],
    ['', undefined], ['5', undefined], ['5 s', undefined], ['-5s', undefined], ['5x', undefined], ['s', undefined],
  ];
  for (const [input, want] of cases) test(JSON.stringify(input), () => assert.equal(parseDuration(input), want));
  test('formats', () => {
    assert.equal(formatDuration(90_000), '1m30s');
    assert.equal(formatDuration(250), '250ms');
  });
});

describe('parseNodeName (untrusted payloads)', () => {
  const ok = ['chat@10.0.0.1', 'a@b', 'chat@10-0-0-1.prod.pod.cluster.local', 'ünï@hôst', `${'a'.repeat(200)}@${'b'.repeat(54)}`];
  for (const p of ok) test(`accepts ${p.slice(0, 30)}`, () => assert.equal(parseNodeName(p).ok, true));
  const bad: [string, string][] = [
    ['', 'empty'], ['chat', 'not-name-at-host'], ['@host', 'not-name-at-host'], ['name@', 'not-name-at-host'],
    ['a@b@c', 'not-name-at-host'], ['chat @host', 'whitespace-or-control'], ['chat@host\n', 'whitespace-or-control'],
    ['chat@ho\u0000st', 'whitespace-or-control'], ['chat@ho\u2028st', 'whitespace-or-control'],
    [`${'a'.repeat(200)}@${'b'.repeat(55)}`, 'too-long'], [`${'é'.repeat(128)}@b`, 'too-long'],
  ];
  for (const [p, problem] of bad) {
    test(`refuses ${JSON.stringify(p.slice(0, 20))} as ${problem}`, () => assert.deepEqual(parseNodeName(p), { ok: false, problem }));
  }
  test('returns the host part', () => assert.deepEqual(parseNodeName('chat@10.1.2.3'), { ok: true, node: 'chat@10.1.2.3', host: '10.1.2.3' }));
});

describe('matchesSelector', () => {
  const labels = { app: 'chat', tier: 'web' };
  const cases: [string, Parameters<typeof matchesSelector>[1], boolean][] = [
    ['matchLabels hit', { matchLabels: { app: 'chat' } }, true],
    ['matchLabels miss', { matchLabels: { app: 'other' } }, false],
    ['In', { matchExpressions: [{ key: 'tier', operator: 'In', values: ['web', 'api'] }] }, true],
    ['In miss', { matchExpressions: [{ key: 'tier', operator: 'In', values: ['api'] }] }, false],
    ['NotIn', { matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['api'] }] }, true],
    ['NotIn absent key', { matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] }, true],
    ['Exists', { matchExpressions: [{ key: 'app', operator: 'Exists' }] }, true],
    ['DoesNotExist', { matchExpressions: [{ key: 'app', operator: 'DoesNotExist' }] }, false],
    ['both must hold', { matchLabels: { app: 'chat' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['x'] }] }, false],
    ['unknown operator selects nothing', { matchExpressions: [{ key: 'app', operator: 'Like' }] }, false],
  ];
  for (const [name, sel, want] of cases) test(name, () => assert.equal(matchesSelector(labels, sel), want));
});

function cluster(name: string, spec: PgCluster['spec']): PgCluster {
  return { metadata: { name, namespace: 'prod' }, spec };
}
const base = { selector: { matchLabels: { app: 'chat' } }, postgres: { urlSecretRef: { name: 'db' } } };

describe('effectiveSpec', () => {
  test('applies every default', () => {
    const r = effectiveSpec(cluster('Chat-Main.v2', base));
    assert.ok(r.ok);
    assert.deepEqual(r.spec, {
      selector: base.selector, secretName: 'db', secretKey: 'url', channel: 'chat_main_v2', heartbeatMs: 5000,
      peerTimeoutMs: 15_000, basename: 'Chat-Main.v2', mode: 'ip', clusterDomain: 'cluster.local',
      publishNotReadyPods: false, maxPeers: 1000, configMapName: 'Chat-Main.v2-peers', podAnnotation: 'pgcluster.io/peers',
    });
  });
  test('peerTimeout default is max(3 x heartbeat, 15s)', () => {
    assert.equal(defaultPeerTimeoutMs(1000), 15_000);
    assert.equal(defaultPeerTimeoutMs(10_000), 30_000);
  });
  test('channel default starts with a letter or underscore', () => assert.equal(defaultChannel('1chat'), '_1chat'));
  test('podAnnotation "" turns the annotation off', () => {
    const r = effectiveSpec(cluster('c', { ...base, output: { podAnnotation: '' } }));
    assert.ok(r.ok && r.spec.podAnnotation === '');
  });
  const bad: [string, PgCluster['spec'], RegExp][] = [
    ['no selector', { postgres: base.postgres }, /selector/],
    ['empty selector', { ...base, selector: {} }, /selector/],
    ['no secret', { selector: base.selector }, /urlSecretRef/],
    ['bad channel', { ...base, channel: 'Chat' }, /channel/],
    ['heartbeat 0s', { ...base, heartbeatInterval: '0s' }, /heartbeatInterval/],
    ['heartbeat 2h', { ...base, heartbeatInterval: '2h' }, /heartbeatInterval/],
    ['peerTimeout < 2x', { ...base, heartbeatInterval: '5s', peerTimeout: '9s' }, /peerTimeout/],
    ['mode', { ...base, nodeName: { mode: 'pod' } }, /mode/],
    ['podAnnotation pgcluster.io/node-name (read by the operator)', { ...base, output: { podAnnotation: 'pgcluster.io/node-name' } }, /podAnnotation .*choose another/],
    ['podAnnotation pgcluster.io/cluster (the operator\'s marker)', { ...base, output: { podAnnotation: 'pgcluster.io/cluster' } }, /podAnnotation .*choose another/],
  ];
  for (const [name, spec, msg] of bad) {
    test(`refuses ${name}`, () => {
      const r = effectiveSpec(cluster('c', spec));
      assert.equal(r.ok, false);
      assert.match(r.ok ? '' : r.message, msg);
    });
  }
});

function pod(over: Partial<PodView> = {}): PodView {
  return {
    namespace: 'prod', name: 'chat-0', uid: 'u', labels: { app: 'chat' }, annotations: {}, podIP: '10.1.2.3',
    hostname: undefined, subdomain: undefined, ready: true, terminated: false, deleting: false, ...over,
  };
}
const naming = { basename: 'chat', mode: 'ip' as const, clusterDomain: 'cluster.local' };

describe('podNodeName', () => {
  const cases: [string, PodView, typeof naming | { basename: string; mode: 'dns' | 'hostname'; clusterDomain: string }, string | RegExp][] = [
    ['ip', pod(), naming, 'chat@10.1.2.3'],
    ['dns ipv4', pod(), { ...naming, mode: 'dns' }, 'chat@10-1-2-3.prod.pod.cluster.local'],
    ['dns ipv6', pod({ podIP: 'fd00::1' }), { ...naming, mode: 'dns' }, 'chat@fd00--1.prod.pod.cluster.local'],
    ['dns custom domain', pod(), { ...naming, mode: 'dns', clusterDomain: 'k8s.example' }, 'chat@10-1-2-3.prod.pod.k8s.example'],
    ['hostname uses pod name', pod({ subdomain: 'chat-headless' }), { ...naming, mode: 'hostname' }, 'chat@chat-0.chat-headless.prod.svc.cluster.local'],
    ['hostname uses spec.hostname', pod({ subdomain: 'h', hostname: 'web-1' }), { ...naming, mode: 'hostname' }, 'chat@web-1.h.prod.svc.cluster.local'],
    ['override annotation', pod({ annotations: { 'pgcluster.io/node-name': 'custom@host.example' } }), naming, 'custom@host.example'],
    ['hostname without subdomain', pod(), { ...naming, mode: 'hostname' }, /NoSubdomain/],
    ['ip without IP', pod({ podIP: undefined }), naming, /NoPodIP/],
    ['invalid override', pod({ annotations: { 'pgcluster.io/node-name': 'no at sign' } }), naming, /InvalidNodeName/],
  ];
  for (const [name, p, spec, want] of cases) {
    test(name, () => {
      const r = podNodeName(p, spec);
      if (typeof want === 'string') assert.deepEqual(r.ok && r.node, want);
      else assert.match(r.ok ? 'ok' : r.reason, want);
    });
  }
  test('eligibility', () => {
    assert.equal(isEligible(pod(), false), true);
    assert.equal(isEligible(pod({ ready: false }), false), false);
    assert.equal(isEligible(pod({ ready: false }), true), true);
    assert.equal(isEligible(pod({ deleting: true }), true), false);
    assert.equal(isEligible(pod({ terminated: true }), true), false);
  });
});

describe('conditions', () => {
  const c0 = setCondition([], { type: 'Ready', status: 'True', reason: 'PeersPublished', message: 'ok' }, '2026-01-01T00:00:00Z');
  test('lastTransitionTime stays when status does not flip', () => {
    const c1 = setCondition(c0, { type: 'Ready', status: 'True', reason: 'Other', message: 'changed' }, '2026-01-02T00:00:00Z');
    assert.equal(c1[0]?.lastTransitionTime, '2026-01-01T00:00:00Z');
    assert.equal(c1[0]?.reason, 'Other');
  });
  test('lastTransitionTime moves on a flip', () => {
    const c1 = setCondition(c0, { type: 'Ready', status: 'False', reason: 'X', message: 'm' }, '2026-01-02T00:00:00Z');
    assert.equal(c1[0]?.lastTransitionTime, '2026-01-02T00:00:00Z');
  });
  test('statusEqual ignores sub-second time precision and condition order', () => {
    const a = { members: 1, conditions: [{ ...c0[0]!, lastTransitionTime: '2026-01-01T00:00:00.123Z' }] };
    assert.equal(statusEqual(a, { members: 1, conditions: c0 }), true);
    assert.equal(statusEqual(a, { members: 2, conditions: c0 }), false);
  });
});

describe('outputs', () => {
  const peers = [
    { node: 'chat@10.0.0.2', host: '10.0.0.2', source: 'member' as const, pod: 'chat-1' },
    { node: 'chat@10.0.0.1', host: '10.0.0.1', source: 'member' as const, pod: 'chat-0' },
    { node: 'other@10.9.0.1', host: '10.9.0.1', source: 'remote' as const },
    { node: 'worker@10.0.0.1', host: '10.0.0.1', source: 'remote' as const },
  ];
  const data = configMapData('chat', peers);
  test('peers: sorted, one per line', () => assert.equal(data.peers, 'chat@10.0.0.1\nchat@10.0.0.2\nother@10.9.0.1\nworker@10.0.0.1\n'));
  test('hosts.erlang: distinct hosts, sorted, Erlang terms', () => assert.equal(data['hosts.erlang'], "'10.0.0.1'.\n'10.0.0.2'.\n'10.9.0.1'.\n"));
  test('peers.json', () => {
    const doc = JSON.parse(data['peers.json']!);
    assert.equal(doc.channel, 'chat');
    assert.deepEqual(doc.peers[0], { node: 'chat@10.0.0.1', host: '10.0.0.1', source: 'member', pod: 'chat-0' });
    assert.deepEqual(doc.peers[2], { node: 'other@10.9.0.1', host: '10.9.0.1', source: 'remote' });
  });
  test('annotation: sorted, comma-separated', () => assert.equal(annotationValue(peers), 'chat@10.0.0.1,chat@10.0.0.2,other@10.9.0.1,worker@10.0.0.1'));
  test('same membership gives byte-identical outputs (no timestamps)', () => assert.deepEqual(configMapData('chat', [...peers].reverse()), data));
  test('remote peers read back for a restart; junk ignored', () => {
    assert.deepEqual(remotePeersFromConfigMap(data), [{ node: 'other@10.9.0.1', host: '10.9.0.1' }, { node: 'worker@10.0.0.1', host: '10.0.0.1' }]);
    assert.deepEqual(remotePeersFromConfigMap({ 'peers.json': '{not json' }), []);
    assert.deepEqual(remotePeersFromConfigMap(undefined), []);
  });
});

describe('slimPod (what the pod cache keeps)', async () => {
  const { slimPod, podView: view } = await import('../../src/kube/pods.ts');
  const full = {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name: 'p', namespace: 'ns', uid: 'u', resourceVersion: '7', labels: { app: 'a' }, annotations: { x: 'y' }, managedFields: [{ manager: 'kubectl' }], ownerReferences: [] },
    spec: { hostname: 'h', subdomain: 's', nodeName: 'n', containers: [{ name: 'c', image: 'i' }] },
    status: { phase: 'Running', podIP: '10.0.0.1', conditions: [{ type: 'Ready', status: 'True' }, { type: 'PodScheduled', status: 'True' }], containerStatuses: [] },
  };
  test('keeps everything the operator reads, drops the rest', () => {
    const slim = slimPod(structuredClone(full));
    assert.deepEqual(view(slim), view(structuredClone(full)));
    assert.equal('managedFields' in slim.metadata, false);
    assert.equal(JSON.stringify(slim).includes('containers'), false);
    assert.equal(slim.metadata.resourceVersion, '7');
  });
});
