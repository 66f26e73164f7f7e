import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseDuration, formatDuration } from '../../src/core/duration.ts';
import { parseNodeName } from '../../src/core/payload.ts';
import { matchesSelector } from '../../src/core/selector.ts';
import { CHANNEL_PATTERN, defaultChannel, defaultPeerTimeoutMs, effectiveSpec, type PgCluster, type PgClusterSpec } from '../../src/core/spec.ts';
import { podNodeName, isEligible } from '../../src/core/nodeName.ts';
import type { PodView } from '../../src/core/pod.ts';
import { setCondition, statusEqual } from '../../src/core/conditions.ts';
import { ANNOTATION_BUDGET, CONFIGMAP_DATA_BUDGET, configMapData, annotationValue, fitPeers, peerBytes, remotePeersFromConfigMap } from '../../src/core/outputs.ts';
import type { Peer } from '../../src/core/peerTable.ts';
import { queueFilling } from '../../src/core/notifyQueue.ts';

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
      selector: base.selector, secretName: 'db', secretKey: 'url', tls: undefined, channel: 'prod_chat_main_v2', heartbeatMs: 5000,
      peerTimeoutMs: 15_000, basename: 'Chat-Main.v2', mode: 'ip', clusterDomain: 'cluster.local',
      publishNotReadyPods: false, maxPeers: 1000, minMembers: 0, annotationMinIntervalMs: 0, podAnnotationFormat: 'list', configMapName: 'Chat-Main.v2-peers', podAnnotation: 'pgcluster.io/peers', serviceName: '', auth: undefined,
    });
  });
  test('spec.auth: defaults, and what is refused', () => {
    const withAuth = (auth: PgClusterSpec['auth']) => effectiveSpec(cluster('chat', { ...base, auth }));
    const r = withAuth({ secretRef: { name: 'side-key' } });
    assert.ok(r.ok);
    assert.deepEqual(r.spec.auth, { secretName: 'side-key', key: 'key', previousKey: 'previousKey', acceptUnsigned: true });
    const strict = withAuth({ secretRef: { name: 'k', key: 'k2', previousKey: 'k1' }, acceptUnsigned: false });
    assert.ok(strict.ok);
    assert.deepEqual(strict.spec.auth, { secretName: 'k', key: 'k2', previousKey: 'k1', acceptUnsigned: false });
    assert.deepEqual(withAuth({}), { ok: false, message: 'spec.auth.secretRef.name is required: the Secret holding the key that signs side-channel messages' });
    assert.deepEqual(withAuth({ secretRef: { name: 'k', key: 'a', previousKey: 'a' } }), { ok: false, message: 'spec.auth.secretRef.key and previousKey must differ (both are "a")' });
  });
  test('peerTimeout default is max(3 x heartbeat, 15s)', () => {
    assert.equal(defaultPeerTimeoutMs(1000), 15_000);
    assert.equal(defaultPeerTimeoutMs(10_000), 30_000);
  });
  test('channel default: <namespace>_<name>, so one name in two namespaces does not merge', () => {
    assert.equal(defaultChannel('prod', 'chat'), 'prod_chat');
    assert.notEqual(defaultChannel('prod', 'chat'), defaultChannel('staging', 'chat'));
    assert.equal(defaultChannel('1ns', 'chat'), '_1ns_chat', 'starts with a letter or underscore');
  });
  test('channel default longer than 63 bytes: cut, with a hash that keeps it distinct and valid', () => {
    const a = defaultChannel('team-a', `chat-${'x'.repeat(80)}-1`);
    const b = defaultChannel('team-a', `chat-${'x'.repeat(80)}-2`);
    assert.equal(a.length, 63);
    assert.notEqual(a, b);
    assert.match(a, CHANNEL_PATTERN);
  });
  test('podAnnotationFormat: list by default, version when asked', () => {
    const r = effectiveSpec(cluster('c', { ...base, output: { podAnnotationFormat: 'version' } }));
    assert.ok(r.ok && r.spec.podAnnotationFormat === 'version');
  });
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
    ['podAnnotation pgcluster.io/owner-* (the operator\'s per-key markers)', { ...base, output: { podAnnotation: 'pgcluster.io/owner-1' } }, /podAnnotation .*choose another/],
    ['podAnnotationFormat neither list nor version', { ...base, output: { podAnnotationFormat: 'digest' } }, /podAnnotationFormat "digest" must be one of list, version/],
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
    hostname: undefined, subdomain: undefined, ready: true, containersReady: true, gated: false, terminated: false, deleting: false, ...over,
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
  test('statusEqual sees every field (a count that changes alone is written), and an absent count is 0', () => {
    assert.equal(statusEqual({ members: 1, conflictingPods: 1 }, { members: 1, conflictingPods: 2 }), false);
    assert.equal(statusEqual({ members: 1 }, { members: 1, conflictingPods: 0, droppedPeers: 0 }), true);
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

describe('fitPeers (outputs capped in bytes)', () => {
  const bytes = (d: Record<string, string>) => Object.values(d).reduce((n, v) => n + Buffer.byteLength(v), 0);
  // The worst names a payload check lets through: 255 bytes, the host made of characters that double when
  // escaped in peers.json ("\\) and in hosts.erlang ('\\).
  const worst = (i: number, source: 'member' | 'remote'): Peer => {
    const node = `n@${String(i).padStart(5, '0')}${'\\"\''.repeat(80)}`.padEnd(255, 'x');
    return { node, host: node.slice(node.indexOf('@') + 1), source, ...(source === 'member' ? { pod: `pod-${i}`.padEnd(63, 'p') } : {}) };
  };
  test('any allowed payloads: the ConfigMap stays under 1 MiB and the annotation under 256 KiB, with headroom', () => {
    const peers = [...Array.from({ length: 100 }, (_, i) => worst(i, 'member')), ...Array.from({ length: 5000 }, (_, i) => worst(1000 + i, 'remote'))];
    const fit = fitPeers(peers, 'c'.repeat(63));
    assert.ok(fit.droppedForSize > 0);
    assert.equal(fit.peers.length + fit.droppedForSize, peers.length);
    assert.ok(bytes(configMapData('c'.repeat(63), fit.peers)) <= CONFIGMAP_DATA_BUDGET, 'ConfigMap data within its budget');
    assert.ok(CONFIGMAP_DATA_BUDGET <= 1024 * 1024 - 100 * 1024, 'budget leaves 100 KiB for metadata');
    assert.ok(Buffer.byteLength(annotationValue(fit.peers)) <= ANNOTATION_BUDGET);
    assert.equal(fit.peers.filter((p) => p.source === 'member').length, 100, 'members are kept before remote peers');
    // The ConfigMap's own bound, with the annotation's out of the way: within it, and close to it.
    const cmOnly = fitPeers(peers, 'c'.repeat(63), { configMap: CONFIGMAP_DATA_BUDGET, annotation: Infinity });
    const size = bytes(configMapData('c'.repeat(63), cmOnly.peers));
    assert.ok(size <= CONFIGMAP_DATA_BUDGET && size > CONFIGMAP_DATA_BUDGET - 4 * 1024, `ConfigMap data ${size} bytes`);
  });
  test('members before remote peers, whatever their names', () => {
    const peers: Peer[] = [{ node: 'z@member', host: 'member', source: 'member', pod: 'p' }, { node: 'a@remote', host: 'remote', source: 'remote' }];
    const one = peerBytes(peers[0]!);
    const fit = fitPeers(peers, 'c', { configMap: 10_000, annotation: one.annotation });
    assert.deepEqual([fit.peers.map((p) => p.node), fit.droppedForSize], [['z@member'], 1]);
  });
  test('what fits is all there is: nothing dropped', () => {
    const peers: Peer[] = Array.from({ length: 1000 }, (_, i) => ({ node: `chat@10.0.${i >> 8}.${i & 255}`, host: `10.0.${i >> 8}.${i & 255}`, source: 'remote' }));
    assert.equal(fitPeers(peers, 'chat').droppedForSize, 0);
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

describe('queueFilling (the notification queue warning, with a gap)', () => {
  test('filling above 50 %, over only below 25 %', () => {
    const seq = [0.1, 0.49, 0.51, 0.4, 0.26, 0.24, 0.3, 0.6];
    const out: boolean[] = [];
    let was = false;
    for (const u of seq) out.push(was = queueFilling(was, u));
    assert.deepEqual(out, [false, false, true, true, true, false, false, true]);
  });
});
