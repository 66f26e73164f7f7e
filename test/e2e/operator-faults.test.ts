// End to end under failure: Postgres down and back, a killed listener, bad Secrets, restarts, and two
// operators (standing for two Kubernetes clusters) sharing one database and channel.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { startLibclusterNode, type LibclusterNode } from '../harness/libcluster-node.ts';
import type { PostgresServer } from '../harness/postgres.ts';
import { createNamespace, holdsFor, kubectl, waitFor } from '../support/env.ts';
import {
  condition, configMapPeers, createPgCluster, createPod, createSecret, getPgCluster, operatorOnPostgres, startOperator, testKube,
  waitForPeers, type OperatorProcess,
} from '../support/operator.ts';
import { watchPeers } from '../support/watch.ts';
import { paths } from '../../src/kube/resources.ts';

const kube = testKube();

/** Every foreign node a test starts is stopped after the file, also when the test fails half-way (a running
 * node would keep the test process alive). */
const foreignNodes: LibclusterNode[] = [];
const foreignNode = async (url: string, channel: string, name: string) => {
  const node = await startLibclusterNode(url, channel, name, 500);
  foreignNodes.push(node);
  return node;
};

describe('operator under failure', () => {
  let server: PostgresServer;
  let ns: { name: string; cleanup(): Promise<void> };
  let op: OperatorProcess;
  const channel = () => `${ns.name.replace(/-/g, '_')}_f`;

  before(async () => {
    ({ server, ns, op } = await operatorOnPostgres(kube, 'e2e-fault'));
    // PgCluster f, which every test here uses (each test leaves it Ready, with member f@10.70.0.1).
    await createPod(kube, ns.name, { name: 'f-1', labels: { app: 'f' }, ip: '10.70.0.1' });
    await createPgCluster(kube, ns.name, 'f', { selector: { matchLabels: { app: 'f' } }, postgres: { urlSecretRef: { name: 'db' } }, channel: channel(), heartbeatInterval: '1s', peerTimeout: '3s' });
    await waitForPeers(kube, ns.name, 'f-peers', ['f-1'], ['f@10.70.0.1']);
  });
  after(async () => {
    await Promise.allSettled(foreignNodes.map((n) => n.stop()));
    await op?.stop();
    await ns?.cleanup();
    await server?.destroy();
  });

  test('Postgres stopped: Connected False, outputs kept; back: reconnects and heartbeats resume without a restart', async () => {
    const n = ns.name;
    let node = await foreignNode(server.url, channel(), 'ex@192.0.2.20');
    await waitForPeers(kube, n, 'f-peers', ['f-1'], ['ex@192.0.2.20', 'f@10.70.0.1']);
    await node.stop();

    await server.stop();
    const down = await waitFor(async () => {
      const c = condition(await getPgCluster(kube, n, 'f'), 'Connected');
      return c?.status === 'False' && c;
    }, { message: 'Connected False after Postgres stopped', timeoutMs: 20_000 });
    assert.match(down.reason, /Unreachable|NoEcho/);
    assert.doesNotMatch(down.message, new RegExp(new URL(server.url).password));
    // Nothing expires while we cannot hear: the remote peer stays for twice its peerTimeout (3 s), and more.
    await waitFor(async () => condition(await getPgCluster(kube, n, 'f'), 'Ready')?.reason === 'Disconnected', { message: 'Ready reason Disconnected' });
    await holdsFor(async () => JSON.stringify(await configMapPeers(kube, n, 'f-peers')) === JSON.stringify(['ex@192.0.2.20', 'f@10.70.0.1']), { forMs: 7_000, message: 'the remote peer stays listed while Postgres is down' });

    await server.start();
    node = await foreignNode(server.url, channel(), 'ex@192.0.2.21');
    await waitFor(async () => condition(await getPgCluster(kube, n, 'f'), 'Connected')?.status === 'True', { message: 'Connected True again', timeoutMs: 40_000 });
    await waitFor(() => node.heard.has('f@10.70.0.1'), { message: 'our heartbeat heard after the restart of Postgres', timeoutMs: 10_000 });
    // The old remote peer expires a fresh peerTimeout after reconnecting; the new one is listed.
    await waitForPeers(kube, n, 'f-peers', ['f-1'], ['ex@192.0.2.21', 'f@10.70.0.1'], 15_000);
    await node.stop();
  });

  test('a listener killed with pg_terminate_backend is re-established within seconds', async (t) => {
    const n = ns.name;
    await waitFor(async () => condition(await getPgCluster(kube, n, 'f'), 'Connected')?.status === 'True', { message: 'Connected' });
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    const killed = await admin.query<{ n: string }>(`SELECT count(pg_terminate_backend(pid))::text AS n FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND backend_type = 'client backend' AND query ILIKE 'LISTEN%'`);
    assert.ok(Number(killed.rows[0]?.n) >= 1, 'found the LISTENing backend to kill');
    const t0 = performance.now();
    // The wait's timeout is the bound ("within seconds"); a separate assertion on the time would only add a
    // flake on a busy machine.
    await waitFor(async () => {
      const r = await admin.query<{ n: string }>(`SELECT count(*)::text AS n FROM pg_stat_activity WHERE query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()`);
      return Number(r.rows[0]?.n) >= 1;
    }, { message: 'a new LISTEN connection within 10 s', timeoutMs: 10_000, intervalMs: 100 });
    const reconnectMs = performance.now() - t0;
    await admin.end();
    const node = await foreignNode(server.url, channel(), 'ex@192.0.2.22');
    await waitFor(async () => (await configMapPeers(kube, n, 'f-peers'))?.includes('ex@192.0.2.22'), { message: 'a new remote peer heard after the re-LISTEN' });
    await node.stop();
    t.diagnostic(`listener back ${Math.round(reconnectMs)} ms after pg_terminate_backend`);
    assert.ok((await op.metric('pgcluster_postgres_reconnects_total', { connection: 'listener' })) >= 1);
  });

  test('bad Secrets: condition and Event each, other PgClusters unaffected, no secret in logs', async () => {
    const n = ns.name;
    await createSecret(kube, n, 'nokey', { 'k3y-the-user-may-not-read': 'x' });
    await createSecret(kube, n, 'badurl', { url: 'mysql://user:hunter2@db/x' });
    await createSecret(kube, n, 'unreachable', { url: 'postgres://u:sup3rsecret@127.0.0.1:1/db?connect_timeout=2' });
    const cases: [string, string, RegExp][] = [
      ['missing-secret', 'does-not-exist', /SecretNotFound/],
      ['missing-key', 'nokey', /SecretKeyMissing/],
      ['bad-uri', 'badurl', /InvalidURL/],
      ['unreachable', 'unreachable', /Unreachable/],
    ];
    for (const [name, secret] of cases) {
      await createPgCluster(kube, n, name, { selector: { matchLabels: { app: 'f' } }, postgres: { urlSecretRef: { name: secret } }, output: { podAnnotation: `pgcluster.io/peers-${name}` }, channel: `${channel()}_${name.replace(/-/g, '_')}` });
    }
    for (const [name, , reason] of cases) {
      const c = await waitFor(async () => {
        const cond = condition(await getPgCluster(kube, n, name), 'Connected');
        return cond?.status === 'False' && reason.test(cond.reason) && cond;
      }, { message: `${name}: Connected False with ${reason}`, timeoutMs: 30_000 });
      assert.ok(c.message.length > 20, `${name}: an actionable message: ${c.message}`);
      // The Event is recorded right after the status write: give it a moment.
      await waitFor(async () => reason.test(await kubectl(['get', 'events', '-n', n, '--field-selector', `involvedObject.name=${name}`, '-o', 'jsonpath={.items[*].reason}'])), { message: `${name}: an Event with reason ${reason}`, timeoutMs: 10_000 });
    }
    // The healthy PgCluster in the same namespace still works.
    assert.equal(condition(await getPgCluster(kube, n, 'f'), 'Ready')?.status, 'True');
    // A Secret's keys are not shown: whoever reads the PgCluster or its Events may not be allowed to read it.
    const shown = `${JSON.stringify((await getPgCluster(kube, n, 'missing-key'))?.status)} ${await kubectl(['get', 'events', '-n', n, '-o', 'json'])} ${op.logs()}`;
    assert.ok(!shown.includes('k3y-the-user-may-not-read'), 'the Secret\'s key names are in no status, Event or log line');
    for (const secret of ['hunter2', 'sup3rsecret', new URL(server.url).password]) {
      assert.ok(!op.logs().includes(secret), 'no password in the operator log');
      const all = await kubectl(['get', 'events,pgclusters', '-n', n, '-o', 'json']);
      assert.ok(!all.includes(secret), 'no password in events or status');
    }
    for (const [name] of cases) await kube.delete(paths.pgcluster(n, name), 'pgclusters');
  });

  test('a Secret created after its PgCluster is read within seconds, though Secrets are not watched', async () => {
    // Secrets are only read (get), never watched: the missing one is read again by its own retry, from 1 s
    // doubling to 30 s, well before the 60 s resync. The PgCluster selects no pod, so that no pod event
    // reconciles it meanwhile.
    const n = ns.name;
    await createPgCluster(kube, n, 'late-secret', { selector: { matchLabels: { app: 'nobody' } }, postgres: { urlSecretRef: { name: 'late-db' } }, channel: `${channel()}_late` });
    await waitFor(async () => condition(await getPgCluster(kube, n, 'late-secret'), 'Connected')?.reason === 'SecretNotFound', { message: 'late-secret: Connected False, SecretNotFound' });
    await createSecret(kube, n, 'late-db', { url: server.url });
    await waitFor(async () => condition(await getPgCluster(kube, n, 'late-secret'), 'Connected')?.status === 'True', { message: 'late-secret: Connected once its Secret exists, before the 60 s resync', timeoutMs: 30_000 });
    await kube.delete(paths.pgcluster(n, 'late-secret'), 'pgclusters');
  });

  test('operator restarted: outputs identical, and no write in between dropped a live member', async () => {
    const n = ns.name;
    const node = await foreignNode(server.url, channel(), 'ex@192.0.2.30');
    const before = ['ex@192.0.2.30', 'f@10.70.0.1'];
    // Earlier foreign nodes expire (peerTimeout 3 s): then the list is exactly the live ones.
    await waitForPeers(kube, n, 'f-peers', ['f-1'], before);
    const watch = await watchPeers(kube, n, 'f-peers');
    const code = await op.stop();
    assert.equal(code, 0);
    op = await startOperator({ namespaces: [n] });
    // The new process has reconciled f with both peers (the gauges are set once its outputs are applied), and
    // it has done so while listening again (it heartbeats).
    await waitFor(async () => (await op.metric('pgcluster_notify_transactions_total')) > 0 && (await op.metric('pgcluster_postgres_connected')) === 1, { message: 'the new operator listens and heartbeats' });
    await waitFor(async () => (await op.metric('pgcluster_peers', { name: 'f' })) === 2 && (await op.metric('pgcluster_members', { name: 'f' })) === 1, { message: 'the new operator has reconciled f' });
    const seen = watch.stop();
    await node.stop();
    assert.deepEqual(await configMapPeers(kube, n, 'f-peers'), before);
    for (const peers of seen) assert.deepEqual(peers, before, 'no write during the restart dropped a live peer');
  });

  test('two operators (two Kubernetes clusters) on one database and channel list each other\'s pods', async () => {
    const other = await createNamespace('e2e-fault-b');
    const shared = `${channel()}_shared`;
    let opB: OperatorProcess | undefined;
    try {
      await createSecret(kube, other.name, 'db', { url: server.url });
      await createPod(kube, ns.name, { name: 'a-1', labels: { app: 'shared' }, ip: '10.80.0.1' });
      await createPod(kube, other.name, { name: 'b-1', labels: { app: 'shared' }, ip: '10.81.0.1' });
      for (const nsName of [ns.name, other.name]) {
        await createPgCluster(kube, nsName, 'shared', { selector: { matchLabels: { app: 'shared' } }, postgres: { urlSecretRef: { name: 'db' } }, channel: shared, heartbeatInterval: '1s', nodeName: { basename: 'chat' } });
      }
      opB = await startOperator({ namespaces: [other.name] });
      const both = ['chat@10.80.0.1', 'chat@10.81.0.1'];
      await waitForPeers(kube, ns.name, 'shared-peers', ['a-1'], both);
      await waitForPeers(kube, other.name, 'shared-peers', ['b-1'], both);
      const docB = JSON.parse((await kube.get<{ data: Record<string, string> }>(paths.configMap(other.name, 'shared-peers'))).data['peers.json'] as string);
      assert.deepEqual(docB.peers.map((p: { source: string }) => p.source), ['remote', 'member']);
    } finally {
      await opB?.stop();
      await other.cleanup();
    }
  });
});
