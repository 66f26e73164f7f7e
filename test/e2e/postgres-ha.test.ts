// Postgres high availability without a virtual IP (issue 25 item 6; README "High availability"): a libpq host
// list, as Patroni users write it — postgres://standby:port,primary:port/db?target_session_attrs=read-write —
// against two real servers, the second a streaming replica of the first (pg_basebackup). The operator connects
// to the host that is a writable primary (passing over the standby listed first); when the primary goes down it
// says so (ReadReplica: no writable primary, each host's reason); once the standby is promoted it connects there
// and heartbeats and outputs go on, in the same process.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startPostgres, type PostgresServer } from '../harness/postgres.ts';
import { createNamespace, waitFor } from '../support/env.ts';
import { installCrd } from '../support/crd.ts';
import { condition, createPgCluster, createPod, createSecret, getPgCluster, startOperator, testKube, waitForPeers, type OperatorProcess } from '../support/operator.ts';
import { plainListener, sql, startReplica, type Replica } from '../support/pgServers.ts';

const kube = testKube();
let primary: PostgresServer;
let standby: Replica;
let ns: { name: string; cleanup(): Promise<void> };
let op: OperatorProcess;

before(async () => {
  primary = await startPostgres();
  standby = await startReplica(primary);
  await installCrd(kube);
  ns = await createNamespace('e2e-pgha');
  const u = new URL(primary.url);
  // The standby first: target_session_attrs=read-write passes over it.
  const hosts = `127.0.0.1:${standby.port},127.0.0.1:${primary.port}`;
  await createSecret(kube, ns.name, 'db', { url: `postgres://${u.username}:${u.password}@${hosts}/pgco?target_session_attrs=read-write` });
  op = await startOperator({ namespaces: [ns.name] });
});

after(async () => {
  await op?.stop();
  await ns?.cleanup();
  await standby?.stop();
  await primary?.destroy();
});

const operatorSessions = async (url: string) =>
  (await sql<{ n: number }>(url, "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE 'pgcluster-operator/%'"))[0]!.n;

async function connected(status: 'True' | 'False', reason: string, message?: RegExp) {
  return waitFor(async () => {
    const c = condition(await getPgCluster(kube, ns.name, 'ha'), 'Connected');
    return c?.status === status && c.reason === reason && (!message || message.test(c.message)) && c;
  }, { timeoutMs: 60_000, message: `Connected ${status} ${reason}${message ? ` with a message matching ${message}` : ''}` });
}

/** Waits until a plain client LISTENing on `url` hears `name` twice: heartbeats flow through that server. */
async function heartbeatsOn(url: string, name: string): Promise<void> {
  const ear = await plainListener(url, ['ha_cluster']);
  try {
    await waitFor(() => ear.got.filter((g) => g.payload === name).length >= 2, { timeoutMs: 30_000, message: `two heartbeats of ${name} heard on that server` });
  } finally {
    await ear.client.end();
  }
}

test('a host list: the writable primary is used, the standby passed over; after a failover, the promoted standby', async () => {
  const pid = op.pid;
  await createPgCluster(kube, ns.name, 'ha', { selector: { matchLabels: { app: 'ha' } }, postgres: { urlSecretRef: { name: 'db' } }, channel: 'ha_cluster', heartbeatInterval: '1s' });
  await createPod(kube, ns.name, { name: 'ha-1', labels: { app: 'ha' }, ip: '10.96.0.1' });
  await connected('True', 'Listening');
  await waitForPeers(kube, ns.name, 'ha-peers', ['ha-1'], ['ha@10.96.0.1']);
  assert.equal(await operatorSessions(primary.url), 2, 'listener and sender on the primary');
  assert.equal(await operatorSessions(standby.url), 0, 'none left on the standby');
  await heartbeatsOn(primary.url, 'ha@10.96.0.1');

  // The primary goes down; the standby is still in recovery: no writable primary, each host's reason.
  await primary.stop();
  // While the primary shuts down, host 2 may first answer "shutting down" (57P03); once it is down, each
  // host's reason is said (CI at 144b029 read the condition in between).
  await connected('False', 'ReadReplica', /^no writable primary found \(all 2 hosts of the Secret's URL were tried in order\): host 1: the server is a read replica .* \| host 2: cannot reach the Postgres server \(ECONNREFUSED\)/);

  // Failover: the standby is promoted. The operator finds it, with no change to the Secret and no restart.
  await standby.promote();
  await connected('True', 'Listening');
  assert.equal(await operatorSessions(standby.url), 2, 'listener and sender on the promoted standby');
  await heartbeatsOn(standby.url, 'ha@10.96.0.1');
  // The outputs follow the pods as before.
  await createPod(kube, ns.name, { name: 'ha-2', labels: { app: 'ha' }, ip: '10.96.0.2' });
  await waitForPeers(kube, ns.name, 'ha-peers', ['ha-1', 'ha-2'], ['ha@10.96.0.1', 'ha@10.96.0.2']);
  assert.equal(op.pid, pid);
  assert.ok(op.alive());
});
