// A role whose sessions time out (idle_session_timeout, Postgres 14+; statement_timeout,
// idle_in_transaction_session_timeout) must not make the operator's listener flap: its own sessions turn those
// off. Without that, the idle listener is cut every second and Connected goes False/True over and over.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { startPostgres, type PostgresServer } from '../harness/postgres.ts';
import { createNamespace, holdsFor, waitFor } from '../support/env.ts';
import { installCrd } from '../support/crd.ts';
import { condition, createPgCluster, createPod, createSecret, getPgCluster, startOperator, testKube, type OperatorProcess } from '../support/operator.ts';

const kube = testKube();
let server: PostgresServer;
let op: OperatorProcess | undefined;
let ns: Awaited<ReturnType<typeof createNamespace>>;

before(async () => {
  await installCrd(kube);
  server = await startPostgres();
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  try {
    await admin.query(`CREATE ROLE impatient LOGIN PASSWORD 'impatient-pw'`);
    await admin.query(`GRANT CONNECT ON DATABASE pgco TO impatient`);
    await admin.query(`ALTER ROLE impatient SET idle_session_timeout = '1s'`);
    await admin.query(`ALTER ROLE impatient SET idle_in_transaction_session_timeout = '1s'`);
    await admin.query(`ALTER ROLE impatient SET statement_timeout = '200ms'`);
  } finally {
    await admin.end();
  }
  ns = await createNamespace('timeouts');
  const url = new URL(server.url);
  url.username = 'impatient';
  url.password = 'impatient-pw';
  await createSecret(kube, ns.name, 'db', { url: url.toString() });
  op = await startOperator({ namespaces: [ns.name] });
});

after(async () => {
  await op?.stop();
  await ns?.cleanup();
  await server?.destroy();
});

test('a role with idle_session_timeout = 1s: Connected stays True, no reconnect, the heartbeat goes on', async () => {
  // The role's settings do apply to an ordinary session of it.
  const probe = new pg.Client({ connectionString: new URL(`postgres://impatient:impatient-pw@127.0.0.1:${server.port}/pgco`).toString() });
  probe.on('error', () => {}); // the server ends it after 1 s idle: that is the point
  await probe.connect();
  const v = (await probe.query<{ v: string }>(`SELECT current_setting('idle_session_timeout') AS v`)).rows[0]?.v;
  await probe.end();
  assert.equal(v, '1s');

  await createPod(kube, ns.name, { name: 'it-1', labels: { app: 'it' }, ip: '10.80.0.1' });
  await createPgCluster(kube, ns.name, 'it', { selector: { matchLabels: { app: 'it' } }, postgres: { urlSecretRef: { name: 'db' } }, heartbeatInterval: '1s' });
  await waitFor(async () => condition(await getPgCluster(kube, ns.name, 'it'), 'Connected')?.status === 'True', { message: 'Connected True' });
  const reconnects = async () => op!.metric('pgcluster_postgres_reconnects_total');
  const before = await reconnects();
  const tx0 = await op!.metric('pgcluster_notify_transactions_total');
  // Five idle-session timeouts long: a listener that the server cut would reconnect, and Connected would flip.
  await holdsFor(async () => condition(await getPgCluster(kube, ns.name, 'it'), 'Connected')?.status === 'True' && (await reconnects()) === before,
    { forMs: 5_000, intervalMs: 200, message: 'Connected True with no reconnect while the role times sessions out after 1 s' });
  assert.ok((await op!.metric('pgcluster_notify_transactions_total')) - tx0 >= 3, 'heartbeats went on');
});
