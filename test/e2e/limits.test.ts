// Limits (issue 11, items 4 and 10; issue 14, item 4): outputs capped in bytes whatever the channel carries,
// a write the API server refuses never freezes the others, an expected size raises Degraded, and the default
// channel keeps namespaces apart. Against
// the real API server and Postgres; pods are reported Ready by the test.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { createNamespace, holdsFor, requireEnv, waitFor } from '../support/env.ts';
import { installCrd } from '../support/crd.ts';
import {
  condition, configMapPeers, createPgCluster, createPod, createSecret, getPgCluster, pgclusterEvents, podAnnotation,
  setPodStatus, startOperator, testKube, waitForPeers, type OperatorProcess,
} from '../support/operator.ts';
import { DEFAULT_POD_ANNOTATION } from '../../src/core/spec.ts';
import { paths } from '../../src/kube/resources.ts';

const kube = testKube();
const bytes = (d: Record<string, string>) => Object.values(d).reduce((n, v) => n + Buffer.byteLength(v), 0);

describe('limits', () => {
  let nsA: { name: string; cleanup(): Promise<void> };
  let nsB: { name: string; cleanup(): Promise<void> };
  let op: OperatorProcess;
  let db: string;

  before(async () => {
    db = requireEnv().databaseUrl;
    nsA = await createNamespace('e2e-lim-a');
    nsB = await createNamespace('e2e-lim-b');
    await installCrd(kube);
    for (const ns of [nsA, nsB]) await createSecret(kube, ns.name, 'db', { url: db });
    op = await startOperator({ namespaces: [nsA.name, nsB.name] });
  });
  after(async () => {
    const code = await op?.stop();
    await nsA?.cleanup();
    await nsB?.cleanup();
    assert.equal(code, 0, 'the operator exits 0 on SIGTERM');
  });

  test('3,000 remote names of 255 bytes: outputs stay under the API limits, remote names are cut before members, a refused pod write freezes nothing', async () => {
    const n = nsA.name;
    const channel = `${n.replace(/-/g, '_')}_big`;
    const app = { app: 'big' };
    await createPod(kube, n, { name: 'big-1', labels: app, ip: '10.80.0.1' });
    // Someone else's 150 KiB annotation: with our 128 KiB list the pod would pass the API's 256 KiB.
    await createPod(kube, n, { name: 'big-2', labels: app, ip: '10.80.0.2', annotations: { 'example.com/blob': 'b'.repeat(150 * 1024) } });
    await createPgCluster(kube, n, 'big', { selector: { matchLabels: app }, postgres: { urlSecretRef: { name: 'db' } }, channel, heartbeatInterval: '1s', peerTimeout: '10m', maxPeers: 5000 });
    await waitForPeers(kube, n, 'big-peers', ['big-1', 'big-2'], ['big@10.80.0.1', 'big@10.80.0.2']);
    await waitFor(async () => condition(await getPgCluster(kube, n, 'big'), 'Connected')?.status === 'True', { message: 'big: Connected' });

    // The largest names a payload check lets through, made of characters that double when escaped.
    const names = Array.from({ length: 3000 }, (_, i) => `r@${String(i).padStart(4, '0')}${'\\"\''.repeat(80)}`.padEnd(255, 'x'));
    const c = new pg.Client({ connectionString: db });
    await c.connect();
    try {
      await c.query('SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p', [channel, names]);
    } finally {
      await c.end();
    }
    const pc = await waitFor(async () => {
      const p = await getPgCluster(kube, n, 'big');
      return (p?.status?.droppedPeers ?? 0) > 0 && (p?.status?.peers ?? 0) + (p?.status?.droppedPeers ?? 0) === 3002 && p;
    }, { message: 'every name heard: published or counted as dropped', timeoutMs: 60_000 });
    // The annotation PATCHes run beside the reconcile: the refusal of big-2's reaches Ready when that pass ends.
    const ready = await waitFor(async () => {
      const r = condition(await getPgCluster(kube, n, 'big'), 'Ready');
      return r?.reason === 'OutputRejected' && r;
    }, { message: 'Ready OutputRejected (big-2 refused)' });
    assert.equal(ready.status, 'False', ready.message);
    assert.match(ready?.message ?? '', /refused 1 write\(s\): pod big-2: .*422/);

    const cm = await kube.get<{ data: Record<string, string> }>(paths.configMap(n, 'big-peers'));
    assert.ok(bytes(cm.data) < 1024 * 1024 - 100 * 1024, `ConfigMap data ${bytes(cm.data)} bytes: under 1 MiB with headroom`);
    const peers = cm.data.peers?.split('\n').filter(Boolean) ?? [];
    assert.ok(peers.includes('big@10.80.0.1') && peers.includes('big@10.80.0.2'), 'members are never cut for remote names');
    assert.equal(peers.length, pc.status?.peers);
    const value = await podAnnotation(kube, n, 'big-1') ?? '';
    assert.ok(Buffer.byteLength(value) <= 128 * 1024, `annotation ${Buffer.byteLength(value)} bytes`);
    assert.equal(value, [...peers].sort().join(','), 'the annotation lists what the ConfigMap does');

    // Not frozen: a new member is published to the ConfigMap and to big-1 while big-2 stays refused.
    await createPod(kube, n, { name: 'big-3', labels: app, ip: '10.80.0.3' });
    await waitFor(async () => (await configMapPeers(kube, n, 'big-peers'))?.includes('big@10.80.0.3') && (await podAnnotation(kube, n, 'big-1'))?.includes('big@10.80.0.3'),
      { message: 'big-3 published in the ConfigMap and on big-1' });
    await waitFor(async () => (await getPgCluster(kube, n, 'big'))?.status?.members === 3, { message: 'status follows: 3 members' });

    // The blob goes: big-2 is written, and Ready says the outputs are full.
    await kube.patch(paths.pod(n, 'big-2'), { metadata: { annotations: { 'example.com/blob': null } } }, 'pods');
    await waitFor(async () => (await podAnnotation(kube, n, 'big-2'))?.includes('big@10.80.0.3'), { message: 'big-2 annotated' });
    const full = await waitFor(async () => {
      const r = condition(await getPgCluster(kube, n, 'big'), 'Ready');
      return r?.reason === 'OutputSizeExceeded' && r;
    }, { message: 'Ready OutputSizeExceeded' });
    assert.equal(full.status, 'True');
    assert.match(full.message, /name\(s\) not published: the outputs are full/);
    assert.equal(await op.metric('pgcluster_peers', { namespace: n, name: 'big' }), (await configMapPeers(kube, n, 'big-peers'))?.length);
    assert.ok(!(await podAnnotation(kube, n, 'big-2', DEFAULT_POD_ANNOTATION))?.includes('\n'));
  });

  test('minMembers: Degraded True below it with a Warning Event, False again with a Normal one; Ready stays True', async () => {
    const n = nsB.name;
    const app = { app: 'size' };
    await createPod(kube, n, { name: 'size-1', labels: app, ip: '10.82.0.1' });
    await createPod(kube, n, { name: 'size-2', labels: app, ip: '10.82.0.2' });
    await createPgCluster(kube, n, 'size', { selector: { matchLabels: app }, postgres: { urlSecretRef: { name: 'db' } }, channel: `${n.replace(/-/g, '_')}_size`, heartbeatInterval: '1s', minMembers: 2 });
    const degraded = async (status: string) => waitFor(async () => {
      const p = await getPgCluster(kube, n, 'size');
      return condition(p, 'Degraded')?.status === status && condition(p, 'Ready')?.status === 'True' && p;
    }, { message: `Degraded ${status} with Ready True` });
    await degraded('False');
    await setPodStatus(kube, n, 'size-2', { ip: '10.82.0.2', ready: false });
    const low = await degraded('True');
    assert.deepEqual([condition(low, 'Degraded')?.reason, condition(low, 'Degraded')?.message], ['BelowMinMembers', '1 member(s) announced, fewer than minMembers 2']);
    await waitFor(async () => (await pgclusterEvents(kube, n, 'size')).some((e) => e.type === 'Warning' && e.reason === 'BelowMinMembers'), { message: 'a Warning Event BelowMinMembers' });
    await setPodStatus(kube, n, 'size-2', { ip: '10.82.0.2', ready: true });
    await degraded('False');
    await waitFor(async () => (await pgclusterEvents(kube, n, 'size')).some((e) => e.type === 'Normal' && e.reason === 'EnoughMembers'), { message: 'a Normal Event EnoughMembers' });
    // minMembers unset: the condition goes.
    await kube.patch(paths.pgcluster(n, 'size'), { spec: { minMembers: null } }, 'pgclusters');
    await waitFor(async () => condition(await getPgCluster(kube, n, 'size'), 'Degraded') === undefined, { message: 'no Degraded condition without minMembers' });
  });

  test('the default channel is <namespace>_<name>: PgClusters of one name in two namespaces on one database do not merge', async () => {
    const chat = { app: 'chat' };
    await createPod(kube, nsA.name, { name: 'chat-a', labels: chat, ip: '10.81.0.1' });
    await createPod(kube, nsB.name, { name: 'chat-b', labels: chat, ip: '10.81.0.2' });
    for (const ns of [nsA, nsB]) await createPgCluster(kube, ns.name, 'chat', { selector: { matchLabels: chat }, postgres: { urlSecretRef: { name: 'db' } }, heartbeatInterval: '1s' });
    for (const [ns, ip] of [[nsA.name, '10.81.0.1'], [nsB.name, '10.81.0.2']] as const) {
      const pc = await waitFor(async () => {
        const p = await getPgCluster(kube, ns, 'chat');
        return condition(p, 'Ready')?.status === 'True' && condition(p, 'Connected')?.status === 'True' && p;
      }, { message: `${ns}/chat Ready and Connected` });
      assert.equal(pc.status?.channel, `${ns.replace(/-/g, '_')}_chat`);
      await waitForPeers(kube, ns, 'chat-peers', [ns === nsA.name ? 'chat-a' : 'chat-b'], [`chat@${ip}`]);
    }
    // Both listen and heartbeat every second: three heartbeats without hearing each other.
    await holdsFor(async () => JSON.stringify(await configMapPeers(kube, nsA.name, 'chat-peers')) === '["chat@10.81.0.1"]'
      && JSON.stringify(await configMapPeers(kube, nsB.name, 'chat-peers')) === '["chat@10.81.0.2"]', { forMs: 3000, message: 'each ConfigMap lists its own pod only' });
  });
});
