// The Postgres notification queue (issue 15, item 3): a session that LISTENs and then sits in a transaction
// holds the server's queue; the operator reads its fill with every heartbeat statement (no extra connection),
// exports it, and warns on each PgCluster of that server. Made measurable with a Postgres of its own whose
// queue is the smallest allowed (max_notify_queue_pages = 64 on Postgres 18: 512 KiB instead of 8 GB).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { embeddedPostgresBinDir, startPostgres, type PostgresServer } from '../harness/postgres.ts';
import { createNamespace, waitFor } from '../support/env.ts';
import { condition, createPgCluster, createPod, getPgCluster, operatorInNamespace, type OperatorProcess, pgclusterEvents, testKube } from '../support/operator.ts';

const kube = testKube();
let server: PostgresServer;
let ns: Awaited<ReturnType<typeof createNamespace>>;
let op: OperatorProcess | undefined;
const clients: pg.Client[] = [];

before(async () => {
  // Postgres 18 (the npm package's build): max_notify_queue_pages exists from 17 on; the stack's Debian one is 15.
  server = await startPostgres({ binDir: embeddedPostgresBinDir(), settings: { max_notify_queue_pages: '64' } });
  ({ ns, op } = await operatorInNamespace(kube, 'e2e-queue', server.url));
});
after(async () => {
  for (const c of clients) await c.end().catch(() => {});
  await op?.stop();
  await ns?.cleanup();
  await server?.destroy();
});

async function client(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: server.url });
  c.on('error', () => {});
  await c.connect();
  clients.push(c);
  return c;
}

test('a listener stuck in a transaction fills the queue: the gauge follows it, a Warning Event says what it means, a Normal one when it drains', async () => {
  const n = ns.name;
  await createPod(kube, n, { name: 'q-1', labels: { app: 'q' }, ip: '10.91.0.1' });
  await createPgCluster(kube, n, 'q', { selector: { matchLabels: { app: 'q' } }, postgres: { urlSecretRef: { name: 'db' } }, channel: 'q_chat', heartbeatInterval: '1s' });
  await waitFor(async () => condition(await getPgCluster(kube, n, 'q'), 'Connected')?.status === 'True', { message: 'Connected' });
  const usage = async () => op!.metric('pgcluster_notify_queue_usage');
  await waitFor(async () => (await (await fetch(op!.metricsUrl)).text()).includes('pgcluster_notify_queue_usage{endpoint='), { message: 'the queue gauge is exported' });
  assert.ok((await usage()) < 0.1, `an idle server's queue is nearly empty (${await usage()})`);

  // A session LISTENs, then stays in a transaction: it reads nothing more, and the queue keeps what it has not read.
  const stuck = await client();
  await stuck.query('LISTEN q_stuck');
  await stuck.query('BEGIN');
  await stuck.query('SELECT 1');
  // ~60 % of 512 KiB in distinct 7,900-byte payloads (Postgres drops duplicates within one transaction).
  const filler = await client();
  await filler.query(`SELECT pg_notify('q_stuck', lpad(i::text, 7900, 'x')) FROM generate_series(1, 40) AS i`);

  await waitFor(async () => (await usage()) > 0.5, { message: 'pgcluster_notify_queue_usage above 0.5 (read with a heartbeat)' });
  const warning = await waitFor(async () => (await pgclusterEvents(kube, n, 'q')).find((e) => e.reason === 'NotifyQueueFilling'), { message: 'a NotifyQueueFilling Event' });
  assert.equal(warning.type, 'Warning');
  assert.match(warning.message, /notification queue is \d+\.\d % full: a session somewhere on that server LISTENs and does not read .* every NOTIFY on the server fails at commit/);
  assert.match(warning.message, /pg_stat_activity/);
  assert.equal(condition(await getPgCluster(kube, n, 'q'), 'Connected')?.status, 'True', 'heartbeats still commit');

  // The stuck session goes: the queue drains (its tail moves when the laziest listener leaves).
  await stuck.end();
  clients.splice(clients.indexOf(stuck), 1);
  await waitFor(async () => (await usage()) < 0.25, { message: 'the gauge back under 0.25' });
  const drained = await waitFor(async () => (await pgclusterEvents(kube, n, 'q')).find((e) => e.reason === 'NotifyQueueDrained'), { message: 'a NotifyQueueDrained Event' });
  assert.equal(drained.type, 'Normal');
  assert.equal((await pgclusterEvents(kube, n, 'q')).filter((e) => e.reason === 'NotifyQueueFilling').length, 1, 'one warning for one episode');
});
