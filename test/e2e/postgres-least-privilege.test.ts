// Least privilege (issue 25 item 7; README "Least privilege"): the operator runs as a role that has LOGIN and
// CONNECT on one database and nothing else — no superuser, no CREATE anywhere, not even USAGE on schema public,
// CONNECT revoked from PUBLIC on every other database — and heartbeats flow: a plain client hears them on the
// channel, the outputs are written. A PgCluster whose URL names a database that role may not connect to gets
// Connected False with the GRANT that fixes it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startPostgres, type PostgresServer } from '../harness/postgres.ts';
import { createNamespace, waitFor } from '../support/env.ts';
import { installCrd } from '../support/crd.ts';
import { condition, createPgCluster, createPod, createSecret, getPgCluster, startOperator, testKube, waitForPeers, type OperatorProcess } from '../support/operator.ts';
import { plainListener, sql } from '../support/pgServers.ts';

const kube = testKube();
let srv: PostgresServer;
let ns: { name: string; cleanup(): Promise<void> };
let op: OperatorProcess;
const PASSWORD = 'least-Priv1lege-pw';

before(async () => {
  srv = await startPostgres();
  // The README's SQL, as a DBA would run it (the database is pgco here).
  for (const stmt of [
    `CREATE ROLE pgcluster_operator LOGIN PASSWORD '${PASSWORD}'`,
    'GRANT CONNECT ON DATABASE pgco TO pgcluster_operator',
    // Hardening beyond the defaults, to show none of it is needed: PUBLIC keeps no CONNECT and no schema rights.
    'REVOKE CONNECT ON DATABASE pgco, postgres, template1 FROM PUBLIC',
  ]) await sql(srv.url, stmt);
  await sql(srv.url, 'REVOKE ALL ON SCHEMA public FROM PUBLIC');
  await installCrd(kube);
  ns = await createNamespace('e2e-pglp');
  const u = new URL(srv.url);
  await createSecret(kube, ns.name, 'db', { url: `postgres://pgcluster_operator:${PASSWORD}@127.0.0.1:${u.port}/pgco` });
  await createSecret(kube, ns.name, 'db-other', { url: `postgres://pgcluster_operator:${PASSWORD}@127.0.0.1:${u.port}/postgres` });
  op = await startOperator({ namespaces: [ns.name] });
});

after(async () => {
  await op?.stop();
  await ns?.cleanup();
  await srv?.destroy();
});

async function connected(name: string, status: 'True' | 'False', reason: string) {
  return waitFor(async () => {
    const c = condition(await getPgCluster(kube, ns.name, name), 'Connected');
    return c?.status === status && c.reason === reason && c;
  }, { timeoutMs: 60_000, message: `${name}: Connected ${status} ${reason}` });
}

test('a role with only LOGIN and CONNECT on its database is all the operator needs: heartbeats flow', async () => {
  // The role really has nothing more.
  const [r] = await sql<Record<string, boolean>>(srv.url, `SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolinherit AND pg_has_role('pgcluster_operator', 'pg_monitor', 'USAGE') AS monitor,
      has_database_privilege('pgcluster_operator', 'pgco', 'CREATE') AS db_create, has_database_privilege('pgcluster_operator', 'postgres', 'CONNECT') AS other_db,
      has_schema_privilege('pgcluster_operator', 'public', 'USAGE') AS public_usage, has_schema_privilege('pgcluster_operator', 'public', 'CREATE') AS public_create,
      (SELECT count(*) FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = 'pgcluster_operator'::regrole) > 0 AS member_of
    FROM pg_roles WHERE rolname = 'pgcluster_operator'`);
  assert.deepEqual(Object.entries(r!).filter(([, v]) => v !== false), [], 'the role has no privilege besides LOGIN and CONNECT');

  await createPgCluster(kube, ns.name, 'lp', { selector: { matchLabels: { app: 'lp' } }, postgres: { urlSecretRef: { name: 'db' } }, channel: 'lp_cluster', heartbeatInterval: '1s' });
  await createPod(kube, ns.name, { name: 'lp-1', labels: { app: 'lp' }, ip: '10.97.0.1' });
  await createPod(kube, ns.name, { name: 'lp-2', labels: { app: 'lp' }, ip: '10.97.0.2' });
  await connected('lp', 'True', 'Listening');
  await waitForPeers(kube, ns.name, 'lp-peers', ['lp-1', 'lp-2'], ['lp@10.97.0.1', 'lp@10.97.0.2']);
  const users = await sql<{ usename: string }>(srv.url, "SELECT DISTINCT usename FROM pg_stat_activity WHERE application_name LIKE 'pgcluster-operator/%'");
  assert.deepEqual(users, [{ usename: 'pgcluster_operator' }]);
  // Heartbeats, as a libcluster_postgres node hears them: every member, again and again.
  const ear = await plainListener(srv.url, ['lp_cluster']);
  try {
    await waitFor(() => ['lp@10.97.0.1', 'lp@10.97.0.2'].every((n) => ear.got.filter((g) => g.payload === n).length >= 2),
      { timeoutMs: 30_000, message: 'two heartbeats of each member heard on the channel' });
  } finally {
    await ear.client.end();
  }
  assert.equal(await op.metric('pgcluster_postgres_connected'), 1);
});

test('a database the role may not connect to: Connected False with the GRANT that fixes it', async () => {
  await createPgCluster(kube, ns.name, 'other', { selector: { matchLabels: { app: 'other' } }, postgres: { urlSecretRef: { name: 'db-other' } } });
  const c = await connected('other', 'False', 'AuthenticationFailed');
  assert.match(c.message, /may not connect to its database \(SQLSTATE 42501, permission denied\): GRANT CONNECT ON DATABASE <database> TO <user>/);
  assert.ok(!c.message.includes('postgres"') && !c.message.includes(PASSWORD), c.message);
});
