// End to end: the real operator process against the real kube-apiserver and a real Postgres.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { startLibclusterNode } from '../harness/libcluster-node.ts';
import { createNamespace, requireEnv, waitFor, kubectl } from '../support/env.ts';
import { installCrd } from '../support/crd.ts';
import {
  condition, configMapPeers, createPgCluster, createPod, createSecret, deletePod, getPgCluster, podAnnotation,
  setPodStatus, startOperator, testKube, waitForPeers, type OperatorProcess,
} from '../support/operator.ts';
import { DEFAULT_POD_ANNOTATION, NODE_NAME_ANNOTATION, CLUSTER_KEY, OWNER_MARKER_PREFIX } from '../../src/core/spec.ts';
import { markerKey } from '../../src/core/ownership.ts';
import { paths } from '../../src/kube/resources.ts';

const kube = testKube();
const app = { app: 'chat' };

describe('operator end to end', () => {
  let ns: { name: string; cleanup(): Promise<void> };
  let op: OperatorProcess;
  let db: string;

  before(async () => {
    db = requireEnv().databaseUrl;
    ns = await createNamespace('e2e-op');
    await installCrd(kube);
    await createSecret(kube, ns.name, 'db', { url: db });
    op = await startOperator({ namespaces: [ns.name] });
  });
  after(async () => {
    const code = await op?.stop();
    await ns?.cleanup();
    assert.equal(code, 0, 'the operator exits 0 on SIGTERM');
  });

  test('3 Ready pods -> ConfigMap, annotations and status list all 3; joins and leaves follow', async () => {
    const n = ns.name;
    const channel = `${n.replace(/-/g, '_')}_chat`;
    for (let i = 1; i <= 3; i++) await createPod(kube, n, { name: `chat-${i}`, labels: app, ip: `10.10.0.${i}` });
    await createPgCluster(kube, n, 'chat', { selector: { matchLabels: app }, postgres: { urlSecretRef: { name: 'db' } }, channel, heartbeatInterval: '1s' });
    const three = ['chat@10.10.0.1', 'chat@10.10.0.2', 'chat@10.10.0.3'];
    await waitForPeers(kube, n, 'chat-peers', ['chat-1', 'chat-2', 'chat-3'], three);

    const cm = await kube.get<{ data: Record<string, string>; metadata: { labels: Record<string, string>; ownerReferences: { kind: string; name: string }[] } }>(paths.configMap(n, 'chat-peers'));
    assert.equal(cm.data['hosts.erlang'], "'10.10.0.1'.\n'10.10.0.2'.\n'10.10.0.3'.\n");
    const doc = JSON.parse(cm.data['peers.json'] as string);
    assert.equal(doc.channel, channel);
    assert.deepEqual(doc.peers[0], { node: 'chat@10.10.0.1', host: '10.10.0.1', source: 'member', pod: 'chat-1' });
    assert.equal(cm.metadata.labels['app.kubernetes.io/managed-by'], 'pgcluster-operator');
    assert.equal(cm.metadata.ownerReferences[0]?.kind, 'PgCluster');

    const pc = await waitFor(async () => {
      const p = await getPgCluster(kube, n, 'chat');
      return condition(p, 'Connected')?.status === 'True' && condition(p, 'Ready')?.status === 'True' && p;
    }, { message: 'Connected and Ready True' });
    assert.equal(pc.status?.members, 3);
    assert.equal(pc.status?.peers, 3);
    assert.equal(pc.status?.channel, channel);
    const table = await kubectl(['get', 'pgclusters', '-n', n]);
    assert.match(table, /NAME\s+CHANNEL\s+MEMBERS\s+PEERS\s+READY\s+AGE/);
    assert.match(table, new RegExp(`chat\\s+${channel}\\s+3\\s+3\\s+True`));

    // A 4th pod, not Ready yet: not announced; then Ready: everywhere.
    await createPod(kube, n, { name: 'chat-4', labels: app, ip: '10.10.0.4', ready: false });
    await waitForPeers(kube, n, 'chat-peers', ['chat-1', 'chat-2', 'chat-3', 'chat-4'], three);
    await setPodStatus(kube, n, 'chat-4', { ip: '10.10.0.4', ready: true });
    const four = [...three, 'chat@10.10.0.4'];
    await waitForPeers(kube, n, 'chat-peers', ['chat-1', 'chat-2', 'chat-3', 'chat-4'], four);

    // Deleted -> gone everywhere; unready -> gone everywhere.
    await deletePod(kube, n, 'chat-1');
    await waitForPeers(kube, n, 'chat-peers', ['chat-2', 'chat-3', 'chat-4'], four.slice(1));
    await setPodStatus(kube, n, 'chat-2', { ip: '10.10.0.2', ready: false });
    await waitForPeers(kube, n, 'chat-peers', ['chat-2', 'chat-3', 'chat-4'], ['chat@10.10.0.3', 'chat@10.10.0.4']);

    // publishNotReadyPods: the unready pod comes back.
    await kube.patch(paths.pgcluster(n, 'chat'), { spec: { publishNotReadyPods: true } }, 'pgclusters');
    await waitForPeers(kube, n, 'chat-peers', ['chat-2', 'chat-3', 'chat-4'], ['chat@10.10.0.2', 'chat@10.10.0.3', 'chat@10.10.0.4']);

    // A pod that stops matching loses the annotation.
    await kube.patch(paths.pod(n, 'chat-4'), { metadata: { labels: { app: 'other' } } }, 'pods');
    await waitFor(async () => (await podAnnotation(kube, n, 'chat-4')) === undefined, { message: 'annotation removed from chat-4' });
    await waitForPeers(kube, n, 'chat-peers', ['chat-2', 'chat-3'], ['chat@10.10.0.2', 'chat@10.10.0.3']);
  });

  test('renaming output.podAnnotation moves the list to the new key; "" takes it off the pods', async () => {
    // A stale key would freeze the peer list an app reads from it: it must come off with the rename.
    const n = ns.name;
    const labels = { app: 'rekey' };
    await createPod(kube, n, { name: 'rekey-1', labels, ip: '10.30.0.1' });
    await createPod(kube, n, { name: 'rekey-2', labels, ip: '10.30.0.2' });
    await createPgCluster(kube, n, 'rekey', { selector: { matchLabels: labels }, postgres: { urlSecretRef: { name: 'db' } }, channel: `${n.replace(/-/g, '_')}_rekey`, heartbeatInterval: '1s' });
    const want = 'rekey@10.30.0.1,rekey@10.30.0.2';
    await waitForPeers(kube, n, 'rekey-peers', ['rekey-1', 'rekey-2'], want.split(','));
    const path = paths.pgcluster(n, 'rekey');
    const keys = async (pod: string) => {
      const p = await kube.get<{ metadata: { annotations?: Record<string, string> } }>(paths.pod(n, pod));
      return Object.fromEntries(Object.entries(p.metadata.annotations ?? {}).filter(([k]) => k.includes('peers') || k.startsWith(OWNER_MARKER_PREFIX) || k === CLUSTER_KEY));
    };
    await kube.patch(path, { spec: { output: { podAnnotation: 'example.com/cluster-peers' } } }, 'pgclusters');
    const expected = JSON.stringify({ 'example.com/cluster-peers': want, [markerKey('example.com/cluster-peers')]: 'rekey example.com/cluster-peers' });
    for (const pod of ['rekey-1', 'rekey-2']) {
      await waitFor(async () => JSON.stringify(await keys(pod)) === expected,
        { message: `${pod}: the list under the new key only` });
    }
    // Status is written after the annotations: wait for it rather than read it once.
    await waitFor(async () => (await getPgCluster(kube, n, 'rekey'))?.status?.podAnnotation === 'example.com/cluster-peers',
      { message: 'status.podAnnotation names the new key' });
    await kube.patch(path, { spec: { output: { podAnnotation: '' } } }, 'pgclusters');
    for (const pod of ['rekey-1', 'rekey-2']) {
      await waitFor(async () => Object.keys(await keys(pod)).length === 0, { message: `${pod}: no peer list and no marker left` });
    }
    assert.deepEqual(await configMapPeers(kube, n, 'rekey-peers'), want.split(','), 'the ConfigMap is unaffected');
  });

  test('node-name modes and the override annotation', async () => {
    const n = ns.name;
    const cases: [string, Record<string, unknown>, { labels: Record<string, string>; extra?: object }, string][] = [
      ['ip', { mode: 'ip', basename: 'app' }, { labels: { app: 'm-ip' } }, 'app@10.20.0.1'],
      ['dns', { mode: 'dns', basename: 'app' }, { labels: { app: 'm-dns' } }, `app@10-20-0-2.${n}.pod.cluster.local`],
      ['hostname', { mode: 'hostname', basename: 'app', clusterDomain: 'k8s.test' }, { labels: { app: 'm-host' }, extra: { subdomain: 'hl', hostname: 'web-0' } }, `app@web-0.hl.${n}.svc.k8s.test`],
      ['override', { mode: 'ip' }, { labels: { app: 'm-ovr' }, extra: { annotations: { [NODE_NAME_ANNOTATION]: 'custom@node.example' } } }, 'custom@node.example'],
    ];
    let i = 0;
    for (const [mode, nodeName, pod, want] of cases) {
      i++;
      await createPod(kube, n, { name: `mode-${mode}`, labels: pod.labels, ip: `10.20.0.${i}`, ...pod.extra });
      await createPgCluster(kube, n, `mode-${mode}`, { selector: { matchLabels: pod.labels }, postgres: { urlSecretRef: { name: 'db' } }, channel: `${n.replace(/-/g, '_')}_m${i}`, heartbeatInterval: '1s', nodeName });
    }
    for (const [mode, , , want] of cases) await waitForPeers(kube, n, `mode-${mode}-peers`, [`mode-${mode}`], [want]);
  });

  test('steady state: heartbeats make zero Kubernetes writes, and one tick is one Postgres transaction', async () => {
    const n = ns.name;
    const channel = `${n.replace(/-/g, '_')}_steady`;
    const pods = Array.from({ length: 20 }, (_, i) => `st-${i}`);
    for (const [i, p] of pods.entries()) await createPod(kube, n, { name: p, labels: { app: 'steady' }, ip: `10.50.0.${i + 1}` });
    await createPgCluster(kube, n, 'steady', { selector: { matchLabels: { app: 'steady' } }, postgres: { urlSecretRef: { name: 'db' } }, channel, heartbeatInterval: '1s' });
    await waitForPeers(kube, n, 'steady-peers', pods, pods.map((_, i) => `steady@10.50.0.${i + 1}`));
    // The status that says Ready with 20 members is the last write: read back, it has landed (a first healthy
    // condition makes no Event).
    await waitFor(async () => {
      const p = await getPgCluster(kube, n, 'steady');
      return condition(p, 'Ready')?.status === 'True' && p?.status?.members === 20;
    }, { message: 'Ready with 20 members' });
    // Every PgCluster in this namespace shares one URL and a 1 s heartbeat aligned to the second: each tick
    // is ONE transaction carrying every member of every PgCluster, and nothing else.
    const list = await kube.get<{ items: { status?: { members?: number } }[] }>(paths.pgclusters(n));
    const everyMember = list.items.reduce((sum, p) => sum + (p.status?.members ?? 0), 0);
    const snapshot = async () => {
      const m = await op.scrape();
      return { writes: m('pgcluster_kube_writes_total'), tx: m('pgcluster_notify_transactions_total'), sent: m('pgcluster_notifications_sent_total') };
    };
    const s0 = await snapshot();
    const s1 = await waitFor(async () => {
      const s = await snapshot();
      return s.tx - s0.tx >= 5 && s;
    }, { message: 'five more heartbeat transactions', timeoutMs: 15_000 });
    assert.equal(s1.writes - s0.writes, 0, 'no Kubernetes write during steady heartbeats');
    // Every transaction that carries names carries all of them (a tick is never split). One may carry only the
    // liveness probe: seen once in a loaded CI run (112 names in 5 transactions of 28), its deadline falling
    // between two heartbeat boundaries; more than one in the window would be a second commit per tick.
    const sent = s1.sent - s0.sent;
    const tx = s1.tx - s0.tx;
    assert.equal(sent % everyMember, 0, `${sent} names in ${tx} transactions: not whole ticks of ${everyMember}`);
    assert.ok(sent / everyMember >= tx - 1, `${sent} names in ${tx} transactions: more than one without the ${everyMember} members`);
  });

  test('a libcluster_postgres-style foreign node is a remote peer, expires after peerTimeout, and hears our bare names', async () => {
    const n = ns.name;
    const channel = `${n.replace(/-/g, '_')}_foreign`;
    await createPod(kube, n, { name: 'fr-1', labels: { app: 'fr' }, ip: '10.30.0.1' });
    await createPgCluster(kube, n, 'fr', { selector: { matchLabels: { app: 'fr' } }, postgres: { urlSecretRef: { name: 'db' } }, channel, heartbeatInterval: '1s', peerTimeout: '3s' });
    await waitForPeers(kube, n, 'fr-peers', ['fr-1'], ['fr@10.30.0.1']);

    // What libcluster_postgres does: LISTEN on the channel, NOTIFY its bare node name every interval.
    const node = await startLibclusterNode(db, channel, 'elixir@192.0.2.10', 500);
    try {
      await waitForPeers(kube, n, 'fr-peers', ['fr-1'], ['elixir@192.0.2.10', 'fr@10.30.0.1']);
      const doc = JSON.parse((await kube.get<{ data: Record<string, string> }>(paths.configMap(n, 'fr-peers'))).data['peers.json'] as string);
      assert.deepEqual(doc.peers[0], { node: 'elixir@192.0.2.10', host: '192.0.2.10', source: 'remote' });
      await waitFor(() => node.heard.has('fr@10.30.0.1'), { message: 'our pod heard on the channel' });
    } finally {
      await node.stop();
    }
    const stoppedAt = performance.now();
    await waitForPeers(kube, n, 'fr-peers', ['fr-1'], ['fr@10.30.0.1'], 15_000);
    const expiredAfter = performance.now() - stoppedAt;
    // Not before peerTimeout (3 s) after it was last heard, which was at most one of its intervals (500 ms)
    // before it stopped. (How late is bounded by the wait above.)
    assert.ok(expiredAfter >= 3_000 - 500, `expired ${expiredAfter} ms after the last heartbeat (peerTimeout 3s)`);
    // Only bare node names of real pods (and the foreign node's own) were ever on the channel.
    assert.deepEqual([...node.heard].sort(), ['elixir@192.0.2.10', 'fr@10.30.0.1']);
  });

  test('junk payloads are never written; maxPeers is enforced and reported', async () => {
    const n = ns.name;
    const channel = `${n.replace(/-/g, '_')}_junk`;
    await createPod(kube, n, { name: 'junk-1', labels: { app: 'junk' }, ip: '10.40.0.1' });
    await createPgCluster(kube, n, 'junk', { selector: { matchLabels: { app: 'junk' } }, postgres: { urlSecretRef: { name: 'db' } }, channel, heartbeatInterval: '1s', maxPeers: 50 });
    await waitForPeers(kube, n, 'junk-peers', ['junk-1'], ['junk@10.40.0.1']);
    const invalidBefore = await op.metric('pgcluster_invalid_payloads_total', { name: 'junk' });
    const c = new pg.Client({ connectionString: db });
    await c.connect();
    const junk = ['no-at-sign', 'has space@host', 'tab\t@host', `${'x'.repeat(250)}@hhhhhh`, 'a@b@c', '', 'nl@ho\nst'];
    await c.query('SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p', [channel, junk]);
    // 10,000 distinct well-formed names: only maxPeers may be published.
    const names = Array.from({ length: 10_000 }, (_, i) => `flood${i}@198.51.100.${i % 250}`);
    await c.query('SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p', [channel, names]);
    await c.end();
    const pc = await waitFor(async () => {
      const p = await getPgCluster(kube, n, 'junk');
      // The 10,000 notifications arrive over a while: wait for the status that has heard them all. One member
      // and 49 remote names fill maxPeers (50); every other flood name is counted, none twice.
      return condition(p, 'Ready')?.reason === 'MaxPeersExceeded' && p?.status?.droppedPeers === 10_000 - 49 && p;
    }, { message: 'Ready reason MaxPeersExceeded with every flood name counted in droppedPeers', timeoutMs: 30_000 });
    assert.equal(pc.status?.peers, 50);
    const peers = (await configMapPeers(kube, n, 'junk-peers')) ?? [];
    assert.equal(peers.length, 50);
    assert.ok(peers.includes('junk@10.40.0.1'), 'members are never pushed out by remote names');
    for (const p of peers) assert.match(p, /^[^\s@]+@[^\s@]+$/);
    assert.equal(await op.metric('pgcluster_invalid_payloads_total', { name: 'junk' }) - invalidBefore, junk.length);
    assert.equal((await podAnnotation(kube, n, 'junk-1'))?.split(',').length, 50);
  });

  test('PgCluster deleted -> annotations and ConfigMap are gone', async () => {
    const n = ns.name;
    await createPod(kube, n, { name: 'del-1', labels: { app: 'del' }, ip: '10.60.0.1' });
    await createPgCluster(kube, n, 'del', { selector: { matchLabels: { app: 'del' } }, postgres: { urlSecretRef: { name: 'db' } }, channel: `${n.replace(/-/g, '_')}_del`, heartbeatInterval: '1s' });
    await waitForPeers(kube, n, 'del-peers', ['del-1'], ['del@10.60.0.1']);
    await kube.delete(paths.pgcluster(n, 'del'), 'pgclusters');
    await waitFor(async () => (await getPgCluster(kube, n, 'del')) === undefined, { message: 'PgCluster gone (finalizer done)' });
    assert.equal(await configMapPeers(kube, n, 'del-peers'), undefined);
    const pod = await kube.get<{ metadata: { annotations?: Record<string, string> } }>(paths.pod(n, 'del-1'));
    assert.equal(pod.metadata.annotations?.[DEFAULT_POD_ANNOTATION], undefined);
    assert.deepEqual(Object.keys(pod.metadata.annotations ?? {}).filter((k) => k.startsWith(OWNER_MARKER_PREFIX) || k === CLUSTER_KEY), [], 'no marker left');
  });
});
