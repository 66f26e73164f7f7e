// PgEndpoint against real, throwaway Postgres servers (and a read replica, and PgBouncer): the wire format
// libcluster_postgres nodes see, one commit per tick, join latency, reconnects, failure classification,
// and that the URL's secrets never show up in a log line or a state message.
import assert from 'node:assert/strict';
import { appendFileSync, chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino, { type Logger } from 'pino';
import { freePort, startProc, waitReady, type Proc } from '../harness/proc.ts';
import { startPostgres, type PostgresServer } from '../harness/postgres.ts';
import { NOTIFY_SQL, PgEndpoint, type EndpointHooks, type EndpointState } from '../../src/postgres/endpoint.ts';
import { issue, makeCa } from '../support/certs.ts';
import { waitFor } from '../support/env.ts';
import { ownedByPostgres, passwordOf, plainListener, sql, startReplica } from '../support/pgServers.ts';



// ---- helpers -------------------------------------------------------------------------------------------

/** Every log line and state of every endpoint in this file, checked for secrets at the end. */
const logLines: string[] = [];
const states: EndpointState[] = [];
const secrets = new Set<string>();
const log: Logger = pino({ level: 'trace' }, { write: (s: string) => { logLines.push(s); } });
const endpoints: PgEndpoint[] = [];
/** Nothing in the adapter may surface as an unhandled rejection or exception. */
const unhandled: string[] = [];
process.on('unhandledRejection', (e) => { unhandled.push(`unhandledRejection: ${String(e)}`); });
process.on('uncaughtException', (e) => { unhandled.push(`uncaughtException: ${String(e)}`); });

interface Recorder {
  commits: { names: number; ms: number; at: number }[];
  echoes: number[];
  payloads: string[];
  reconnects: string[];
  hooks: EndpointHooks;
}

function recorder(): Recorder {
  const r: Recorder = {
    commits: [], echoes: [], payloads: [], reconnects: [],
    hooks: {
      onCommit: (names, ms) => { r.commits.push({ names, ms, at: Date.now() }); },
      onEcho: (rtt) => { r.echoes.push(rtt); },
      onPayload: (ch) => { r.payloads.push(ch); },
      onReconnect: (which) => { r.reconnects.push(which); },
    },
  };
  return r;
}

function endpoint(url: string, opts: { hooks?: EndpointHooks; backoff?: { baseMs: number; maxMs: number }; echoTimeoutMs?: number; livenessIntervalMs?: number } = {}): PgEndpoint {
  const ep = new PgEndpoint({ url, log, backoff: opts.backoff ?? { baseMs: 100, maxMs: 1000 }, ...opts });
  states.push(ep.state());
  ep.onState((s) => { states.push(s); });
  endpoints.push(ep);
  return ep;
}

async function waitPhase(ep: PgEndpoint, pred: (s: EndpointState) => boolean, timeoutMs: number, what: string): Promise<EndpointState> {
  return waitFor(() => (pred(ep.state()) ? ep.state() : undefined), { timeoutMs, intervalMs: 20, message: `${what} (state now ${JSON.stringify(ep.state())})` });
}
const listening = (ep: PgEndpoint, timeoutMs = 10_000) => waitPhase(ep, (s) => s.phase === 'Listening', timeoutMs, 'Listening');
const failedWith = (ep: PgEndpoint, reason: string, timeoutMs = 10_000) =>
  waitPhase(ep, (s) => s.phase === 'Failed' && s.reason === reason, timeoutMs, `Failed/${reason}`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** How long a test waits for something that must happen. Generous, so that a loaded machine (CI shares two
 * cores with the rest of the suite) cannot fail it; never the claim itself: where a wait proves that something
 * happened promptly, the slower way it could also happen (a heartbeat, the liveness probe) is set far beyond it. */
const SETTLE_MS = 15_000;

/** Waits until `p` accepts connections at `url`; stop() ends it and removes `base`. */
async function serverOf(p: Proc, url: string, base: string, readyMs: number, stopSignal: NodeJS.Signals, stopMs: number): Promise<{ url: string; stop(): Promise<void> }> {
  try {
    await waitReady(p, 'accepting connections', () => sql(url, 'SELECT 1').then(() => true), readyMs);
  } catch (e) {
    await p.stop('SIGKILL');
    throw e;
  }
  return {
    url,
    async stop() {
      await p.stop(stopSignal, stopMs);
      rmSync(base, { recursive: true, force: true });
    },
  };
}

/** PgBouncer in transaction-pooling mode in front of `server`. */
async function startPgBouncer(server: PostgresServer): Promise<{ url: string; stop(): Promise<void> }> {
  const bin = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer'].find((b) => existsSync(b));
  if (!bin) throw new Error('pgbouncer is not installed. Fix: apt-get install -y pgbouncer');
  const base = mkdtempSync(join(tmpdir(), 'pgco-pgbouncer-'));
  const port = await freePort();
  const user = decodeURIComponent(new URL(server.url).username);
  writeFileSync(join(base, 'userlist.txt'), `"${user}" "${passwordOf(server.url)}"\n`, { mode: 0o600 });
  writeFileSync(join(base, 'pgbouncer.ini'), [
    '[databases]',
    `pgco = host=127.0.0.1 port=${server.port} dbname=pgco`,
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    'unix_socket_dir =',
    'auth_type = scram-sha-256',
    `auth_file = ${join(base, 'userlist.txt')}`,
    'pool_mode = transaction',
    'default_pool_size = 4',
    'ignore_startup_parameters = extra_float_digits',
    '',
  ].join('\n'));
  for (const f of ['', 'userlist.txt', 'pgbouncer.ini']) ownedByPostgres(join(base, f));
  const logFile = join(base, 'pgbouncer.log');
  writeFileSync(logFile, '');
  const p = startProc('pgbouncer', bin, [join(base, 'pgbouncer.ini')], { logFile, user: 'postgres', deathSignal: 'TERM' });
  const url = `postgres://${encodeURIComponent(user)}:${encodeURIComponent(passwordOf(server.url))}@127.0.0.1:${port}/pgco`;
  return serverOf(p, url, base, 30_000, 'SIGTERM', 10_000);
}

/** A private CA and a server certificate for 127.0.0.1 signed by it, as files (for sslrootcert). */
function makeCerts(dir: string): { caPem: string; certFile: string; keyFile: string; caFile: string } {
  const ca = makeCa('pgco test CA');
  const server = issue(ca, { cn: '127.0.0.1', san: 'IP:127.0.0.1' });
  const files = { caFile: join(dir, 'ca.crt'), certFile: join(dir, 'server.crt'), keyFile: join(dir, 'server.key') };
  writeFileSync(files.caFile, ca.cert);
  writeFileSync(files.certFile, server.cert);
  writeFileSync(files.keyFile, server.key);
  return { caPem: ca.cert, ...files };
}

async function sslInUse(url: string, which: 'listener' | 'sender'): Promise<boolean> {
  const rows = await sql<{ ssl: boolean }>(url, 'SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1', [`pgcluster-operator/${which}`]);
  assert.equal(rows.length, 1);
  return rows[0]!.ssl;
}

// ---- tests ---------------------------------------------------------------------------------------------

describe('PgEndpoint against real Postgres', () => {
  let srv: PostgresServer;

  before(async () => {
    srv = await startPostgres();
    secrets.add(srv.url);
    secrets.add(passwordOf(srv.url));
    // pg_stat_statements counts our statements server-side (needs a restart to preload).
    appendFileSync(join(srv.dataDir, 'postgresql.conf'), "\nshared_preload_libraries = 'pg_stat_statements'\n");
    await srv.stop();
    await srv.start();
    await sql(srv.url, 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
  });

  after(async () => {
    await Promise.allSettled(endpoints.map((ep) => ep.close()));
    await srv?.destroy();
  });

  test('a plain LISTENing client hears exactly the bare names; all announcers due at once share ONE statement', async () => {
    const chA = 'pgco_e2e_a';
    const chB = 'pgco_e2e_b';
    const plain = await plainListener(srv.url, [chA, chB]);
    const rec = recorder();
    const ep = endpoint(srv.url, { hooks: rec.hooks });
    // 100 announcers (PgClusters): 50 beat every 1 s on chA, 50 every 2 s on chB.
    const namesA: string[] = [];
    const namesB: string[] = [];
    for (let i = 0; i < 100; i++) {
      const name = `app${i}@10.0.${i}.7`;
      const fast = i < 50;
      (fast ? namesA : namesB).push(name);
      ep.setAnnouncer(`ns/pgc${i}`, { channel: fast ? chA : chB, intervalMs: fast ? 1000 : 2000, names: [name] });
    }
    await listening(ep);
    // On becoming Listening every name goes out at once.
    await waitFor(() => plain.got.length >= 100, { timeoutMs: SETTLE_MS, message: 'the initial announcement' });

    // Measure over three boundaries; the window edges are far (200 ms) from any boundary, so a late timer
    // on a loaded machine cannot move a tick across them.
    await sleep(1000 - (Date.now() % 1000) + 200);
    const before = await sql<{ calls: string }>(srv.url, 'SELECT coalesce(sum(calls), 0) AS calls FROM pg_stat_statements WHERE query = $1', [NOTIFY_SQL]);
    rec.commits.length = 0;
    plain.got.length = 0;
    await sleep(3000);
    const commits = [...rec.commits];
    const heard = [...plain.got];
    // The server counts a statement once it has finished it: wait until it has counted every commit we saw
    // (it must never count more; that is checked below).
    const calls = async () => Number((await sql<{ calls: string }>(srv.url, 'SELECT coalesce(sum(calls), 0) AS calls FROM pg_stat_statements WHERE query = $1', [NOTIFY_SQL]))[0]!.calls);
    const callsBefore = Number(before[0]!.calls);
    const callsAfter = await waitFor(async () => {
      const n = await calls();
      return n - callsBefore >= commits.length && n;
    }, { timeoutMs: SETTLE_MS, intervalMs: 20, message: 'pg_stat_statements to count every commit' });

    // 3 boundaries passed: at even seconds both groups are due, at odd ones only the 1 s group.
    assert.equal(commits.length, 3, `one commit per tick: ${JSON.stringify(commits)}`);
    for (const c of commits) {
      const second = Math.round(c.at / 1000);
      assert.ok(c.at - second * 1000 >= 0 && c.at - second * 1000 < 500, `commit at ${c.at} is just after a wall-clock second`);
      // The liveness probe rides along in every statement, and is not counted as a name.
      assert.equal(c.names, second % 2 === 0 ? 100 : 50, `names at second ${second}`);
    }
    // Server side: exactly as many executions of the NOTIFY statement as commits we saw (each statement is
    // one autocommitted transaction). pg_stat_statements counts statements exactly; pg_stat_database's
    // xact_commit would include our own queries and autovacuum, so it is not used.
    assert.equal(callsAfter - callsBefore, commits.length);

    // The plain client heard bare names, exactly once per tick each, on the right channels.
    const expected = commits.reduce((n, c) => n + c.names, 0);
    assert.equal(heard.length, expected);
    for (const h of heard) {
      assert.ok((h.channel === chA ? namesA : namesB).includes(h.payload), `bare name ${JSON.stringify(h)}`);
    }
    assert.ok(rec.echoes.length > 0 && rec.echoes.every((ms) => ms < 1000), `echo RTTs ${rec.echoes.join(',')}`);

    // Removing announcers stops their heartbeats.
    for (let i = 0; i < 100; i++) ep.setAnnouncer(`ns/pgc${i}`, null);
    await sleep(1000 - (Date.now() % 1000) + 50);
    plain.got.length = 0;
    await sleep(2100);
    assert.equal(plain.got.length, 0);
    await plain.client.end();
    await ep.close();
  });

  test('a newly added name goes out at once, not at the next heartbeat, and a burst of joins shares one statement', async (t) => {
    const ch = 'pgco_e2e_join';
    const plain = await plainListener(srv.url, [ch]);
    const rec = recorder();
    // The heartbeat is an hour away and the liveness statement a minute: a name heard within SETTLE_MS went out
    // on its own. How fast (~10-15 ms, coalesceMs is 10) is the benchmark's to measure, not a test's.
    const ep = endpoint(srv.url, { hooks: rec.hooks, livenessIntervalMs: 60_000 });
    const names = ['first@10.1.0.1'];
    ep.setAnnouncer('ns/join', { channel: ch, intervalMs: 3_600_000, names });
    await listening(ep);
    await waitFor(() => plain.got.some((g) => g.payload === 'first@10.1.0.1'), { timeoutMs: SETTLE_MS, message: 'first name' });

    const latencies: number[] = [];
    for (let i = 0; i < 5; i++) {
      const name = `joiner${i}@10.1.1.${i}`;
      names.push(name);
      const t0 = performance.now();
      ep.setAnnouncer('ns/join', { channel: ch, intervalMs: 3_600_000, names: [...names] });
      const got = await waitFor(() => plain.got.find((g) => g.payload === name), { timeoutMs: SETTLE_MS, intervalMs: 1, message: name });
      latencies.push(got.at - t0);
      await sleep(50);
    }
    t.diagnostic(`join latencies ${latencies.map((x) => x.toFixed(1)).join(', ')} ms`);
    // Names already announced are not repeated by an update (the heartbeat is an hour away).
    assert.equal(plain.got.filter((g) => g.payload === 'first@10.1.0.1').length, 1);

    // 20 joins in a burst (separate calls, as separate PgClusters would make) → one statement.
    await sleep(200);
    rec.commits.length = 0;
    for (let i = 0; i < 20; i++) {
      ep.setAnnouncer(`ns/burst${i}`, { channel: ch, intervalMs: 3_600_000, names: [`burst${i}@10.2.0.${i}`] });
    }
    await waitFor(() => plain.got.filter((g) => g.payload.startsWith('burst')).length === 20, { timeoutMs: SETTLE_MS, message: 'the burst' });
    const withNames = rec.commits.filter((c) => c.names > 0);
    assert.equal(withNames.length, 1, JSON.stringify(rec.commits));
    assert.equal(withNames[0]!.names, 20);
    await plain.client.end();
    await ep.close();
  });

  test('while a statement is in flight, everything that becomes due waits and goes in ONE next statement', async () => {
    const ch = 'pgco_e2e_inflight';
    const plain = await plainListener(srv.url, [ch]);
    const rec = recorder();
    const ep = endpoint(srv.url, { hooks: rec.hooks, livenessIntervalMs: 60_000 });
    await listening(ep);
    // Listening means a statement has completed; nothing else is due (heartbeats an hour away, liveness a minute).
    await waitFor(() => rec.commits.length > 0, { timeoutMs: SETTLE_MS, message: 'the first statement completed' });
    const senders = await sql<{ pid: number }>(srv.url, "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgcluster-operator/sender'");
    assert.equal(senders.length, 1);
    const pid = senders[0]!.pid;
    rec.commits.length = 0;
    process.kill(pid, 'SIGSTOP'); // the next statement hangs until SIGCONT
    try {
      ep.setAnnouncer('ns/k0', { channel: ch, intervalMs: 3_600_000, names: ['stuck@10.6.0.0'] });
      // Ten more joins, each well after the previous one's coalescing window.
      for (let i = 1; i <= 10; i++) {
        await sleep(30);
        ep.setAnnouncer(`ns/k${i}`, { channel: ch, intervalMs: 3_600_000, names: [`queued${i}@10.6.0.${i}`] });
      }
      await sleep(100);
      assert.equal(rec.commits.length, 0, 'nothing completes while the sender is stuck');
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await waitFor(() => plain.got.length === 11, { timeoutMs: SETTLE_MS, message: 'all 11 names' });
    await waitFor(() => rec.commits.length >= 2, { timeoutMs: SETTLE_MS, message: 'both statements completed' });
    assert.deepEqual(rec.commits.map((c) => c.names), [1, 10], 'the stuck statement, then one with all 10 queued names');
    assert.equal(ep.state().phase, 'Listening');
    await plain.client.end();
    await ep.close();
  });

  test('payloads a plain client NOTIFYs reach subscribers; LISTEN is refcounted per channel', async () => {
    const rec = recorder();
    const ep = endpoint(srv.url, { hooks: rec.hooks });
    const ch = 'pgco_e2e_sub';
    const got1: string[] = [];
    const got2: string[] = [];
    const s1 = ep.subscribe(ch, (p) => got1.push(p));
    const s2 = ep.subscribe(ch, (p) => got2.push(p));
    await listening(ep);
    // Anything is passed on as sent (untrusted: the core validates), including junk and odd channels.
    const payloads = ['remote@10.9.9.9', 'not a node name', 'ünïcode@host'];
    for (const p of payloads) await sql(srv.url, 'SELECT pg_notify($1, $2)', [ch, p]);
    await waitFor(() => got1.length === 3 && got2.length === 3, { timeoutMs: SETTLE_MS, message: 'both subscribers' });
    assert.deepEqual(got1, payloads);
    assert.deepEqual(got2, payloads);
    assert.equal(rec.payloads.filter((c) => c === ch).length, 3);

    s1.close();
    s1.close(); // idempotent
    await sql(srv.url, 'SELECT pg_notify($1, $2)', [ch, 'after-one-closed@h']);
    await waitFor(() => got2.length === 4, { timeoutMs: SETTLE_MS, message: 'second subscriber still served' });
    assert.equal(got1.length, 3);

    s2.close();
    await waitFor(async () => {
      const rows = await sql<{ query: string }>(srv.url, "SELECT query FROM pg_stat_activity WHERE application_name = 'pgcluster-operator/listener'");
      return rows.length === 1 && rows[0]!.query === `UNLISTEN "${ch}"`;
    }, { timeoutMs: SETTLE_MS, message: 'UNLISTEN after the last subscriber left' });

    // A callback that throws does not break delivery to others, nor the endpoint.
    const got3: string[] = [];
    ep.subscribe(ch, () => { throw new Error('subscriber bug'); });
    ep.subscribe(ch, (p) => got3.push(p));
    await sql(srv.url, 'SELECT pg_notify($1, $2)', [ch, 'again@h']);
    await waitFor(() => got3.length === 1, { timeoutMs: SETTLE_MS, message: 'delivery after a throwing subscriber' });
    assert.equal(ep.state().phase, 'Listening');

    assert.throws(() => ep.subscribe('', () => {}), TypeError);
    assert.throws(() => ep.subscribe('x'.repeat(64), () => {}), TypeError);
    await ep.close();
    await waitFor(async () => (await sql(srv.url, "SELECT 1 FROM pg_stat_activity WHERE application_name LIKE 'pgcluster-operator/%'")).length === 0,
      { timeoutMs: SETTLE_MS, message: 'close() ends both connections' });
  });

  test('pg_terminate_backend of the listener or the sender → Failed, then Listening again; everything flows again', async () => {
    const ch = 'pgco_e2e_term';
    const plain = await plainListener(srv.url, [ch]);
    const rec = recorder();
    const ep = endpoint(srv.url, { hooks: rec.hooks });
    const heard: string[] = [];
    ep.subscribe(ch, (p) => heard.push(p));
    ep.setAnnouncer('ns/term', { channel: ch, intervalMs: 3_600_000, names: ['member@10.3.0.1'] });
    await listening(ep);

    for (const which of ['listener', 'sender'] as const) {
      const seen: EndpointState[] = [];
      const off = ep.onState((s) => seen.push(s));
      plain.got.length = 0;
      const killed = await sql<{ ok: boolean }>(srv.url, 'SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1', [`pgcluster-operator/${which}`]);
      assert.deepEqual(killed, [{ ok: true }]);
      await failedWith(ep, 'Unreachable', SETTLE_MS);
      await listening(ep, SETTLE_MS);
      off();
      const failed = seen.find((s) => s.phase === 'Failed');
      assert.ok(failed && failed.phase === 'Failed', JSON.stringify(seen));
      assert.match(failed.message, new RegExp(`lost the ${which === 'listener' ? 'listening' : 'sending'} connection.*57P01`));
      // Back to Listening: all current names are announced at once (the heartbeat is an hour away)...
      await waitFor(() => plain.got.some((g) => g.payload === 'member@10.3.0.1'), { timeoutMs: SETTLE_MS, message: `re-announcement after the ${which} came back` });
      // ...and the (re-LISTENed) channel delivers to the subscriber.
      const n = heard.length;
      await sql(srv.url, 'SELECT pg_notify($1, $2)', [ch, `after-${which}@10.3.0.2`]);
      await waitFor(() => heard.length > n && heard.includes(`after-${which}@10.3.0.2`), { timeoutMs: SETTLE_MS, message: 'notifications after reconnect' });
    }
    assert.deepEqual(rec.reconnects, ['listener', 'sender']);
    await plain.client.end();
    await ep.close();
  });

  test('a silently stuck listener → NoEcho, a stuck sender → Unreachable; both recover (backends SIGSTOPped)', async () => {
    const rec = recorder();
    const ep = endpoint(srv.url, { hooks: rec.hooks, echoTimeoutMs: 800, livenessIntervalMs: 500 });
    try {
      await listening(ep);
      for (const [which, reason, re] of [
        ['listener', 'NoEcho', /does not receive notifications/],
        ['sender', 'Unreachable', /did not complete a NOTIFY within 0.8s on the sending connection/],
      ] as const) {
        const rows = await sql<{ pid: number }>(srv.url, 'SELECT pid FROM pg_stat_activity WHERE application_name = $1', [`pgcluster-operator/${which}`]);
        assert.equal(rows.length, 1);
        const pid = rows[0]!.pid;
        process.kill(pid, 'SIGSTOP'); // the TCP connection stays up; the backend just stops answering
        try {
          const s = await failedWith(ep, reason, SETTLE_MS);
          assert.ok(s.phase === 'Failed' && re.test(s.message), JSON.stringify(s));
          await listening(ep, SETTLE_MS);
        } finally {
          process.kill(pid, 'SIGCONT');
        }
      }
    } finally {
      await ep.close(); // a failure here must not leave connections for the next test to trip over
    }
  });

  test('close() at any moment: no unhandled rejection, no callbacks afterwards, no connection left', async () => {
    const late: EndpointState[] = [];
    for (const delay of [0, 1, 5, 20, 50]) {
      const ep = endpoint(srv.url);
      let closed = false;
      // Recorded, not asserted in the callback: the endpoint catches whatever its callbacks throw.
      ep.onState((s) => { if (closed) late.push(s); });
      ep.subscribe('pgco_e2e_close', () => {});
      ep.setAnnouncer('k', { channel: 'pgco_e2e_close', intervalMs: 1000, names: ['x@10.5.0.1'] });
      await sleep(delay);
      await ep.close();
      closed = true;
      await ep.close(); // idempotent
      ep.setAnnouncer('k', { channel: 'pgco_e2e_close', intervalMs: 1000, names: ['y@10.5.0.1'] }); // ignored
    }
    await waitFor(async () => (await sql(srv.url, "SELECT 1 FROM pg_stat_activity WHERE application_name LIKE 'pgcluster-operator/%'")).length === 0,
      { timeoutMs: SETTLE_MS, message: 'no connection left' });
    assert.deepEqual(late, [], 'no state callback after close()');
    assert.deepEqual(unhandled, []);
  });

  test('wrong password → AuthenticationFailed, with no secret in the message', async () => {
    const u = new URL(srv.url);
    u.password = 'Wrong-Password-123';
    const bad = u.toString();
    secrets.add(bad);
    secrets.add('Wrong-Password-123');
    const ep = endpoint(bad);
    const s = await failedWith(ep, 'AuthenticationFailed');
    assert.ok(s.phase === 'Failed');
    assert.match(s.message, /password authentication failed \(SQLSTATE 28P01\): check the user and password/);
    // It keeps retrying (a fixed Secret may be rolled out) without changing state or crashing.
    await sleep(800);
    assert.equal(ep.state().phase, 'Failed');
    await ep.close();
  });

  test('nothing listening on the port → Unreachable; unparsable URL → InvalidURL at once', async () => {
    const port = await freePort();
    const ep = endpoint(srv.url.replace(`:${srv.port}/`, `:${port}/`));
    const s = await failedWith(ep, 'Unreachable');
    assert.ok(s.phase === 'Failed');
    assert.match(s.message, /ECONNREFUSED/);
    await ep.close();

    const badUrl = `postgres://pgco:${passwordOf(srv.url)}@127.0.0.1:${srv.port},,127.0.0.2:5432/pgco`;
    secrets.add(badUrl);
    const inv = endpoint(badUrl);
    const st = inv.state();
    assert.equal(st.phase, 'Failed');
    assert.ok(st.phase === 'Failed' && st.reason === 'InvalidURL' && /the host list has an empty entry/.test(st.message), JSON.stringify(st));
    inv.setAnnouncer('k', { channel: 'x', intervalMs: 1000, names: ['a@b'] }); // harmless
    inv.subscribe('x', () => {}).close();
    await inv.close();
  });

  test('a read replica → ReadReplica ("point the Secret at the primary")', async () => {
    const replica = await startReplica(srv);
    try {
      secrets.add(replica.url);
      const rows = await sql<{ r: boolean }>(replica.url, 'SELECT pg_is_in_recovery() AS r');
      assert.deepEqual(rows, [{ r: true }]);
      const ep = endpoint(replica.url);
      const s = await failedWith(ep, 'ReadReplica');
      assert.ok(s.phase === 'Failed' && /Point the Secret at the primary/.test(s.message));
      await ep.close();

      // A host list (docs/postgres.md, "High availability"): a dead host and the standby are passed over, the primary used.
      const dead = await freePort();
      const hosts = (...ports: number[]) => srv.url.replace(`@127.0.0.1:${srv.port}/`, `@${ports.map((p) => `127.0.0.1:${p}`).join(',')}/`) + '?target_session_attrs=read-write';
      const ha = endpoint(hosts(dead, replica.port, srv.port));
      await listening(ha);
      const on = await sql<{ n: number }>(srv.url, "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE 'pgcluster-operator/%'");
      assert.deepEqual(on, [{ n: 2 }], 'both connections on the primary');
      await ha.close();
      // libpq's other spelling of a host list: ?host=h1,h2&port=p1,p2.
      const asParams = `${srv.url.replace(`@127.0.0.1:${srv.port}/`, '@/')}?host=127.0.0.1,127.0.0.1&port=${dead},${srv.port}`;
      secrets.add(asParams);
      const params = endpoint(asParams);
      await listening(params);
      await params.close();
      // No primary among them: ReadReplica, each host's failure by its position.
      const none = endpoint(hosts(replica.port, dead));
      const n = await failedWith(none, 'ReadReplica');
      assert.ok(n.phase === 'Failed' && /^no writable primary found \(all 2 hosts of the Secret's URL were tried in order\): host 1: the server is a read replica.* \| host 2: cannot reach the Postgres server \(ECONNREFUSED\)/.test(n.message), n.phase === 'Failed' ? n.message : '');
      await none.close();
    } finally {
      await replica.stop();
    }
  });

  test('PgBouncer in transaction mode → NoEcho (the listener never hears its own NOTIFY)', async () => {
    const rec = recorder();
    const bouncer = await startPgBouncer(srv);
    try {
      secrets.add(bouncer.url);
      const ep = endpoint(bouncer.url, { hooks: rec.hooks, echoTimeoutMs: 1000, livenessIntervalMs: 1000 });
      const seen: EndpointState[] = [];
      ep.onState((x) => seen.push(x));
      const s = await failedWith(ep, 'NoEcho', 10_000);
      assert.ok(s.phase === 'Failed' && /transaction-mode pooler such as PgBouncer/.test(s.message), JSON.stringify(s));
      // It keeps trying (reconnecting the listener, which it reports each time) and never becomes Listening.
      const reconnects = rec.reconnects.length;
      await waitFor(() => rec.reconnects.length >= reconnects + 2, { timeoutMs: 10_000, message: 'two more listener reconnects' });
      assert.deepEqual(seen.filter((x) => x.phase === 'Listening'), [], JSON.stringify(seen));
      await ep.close();
    } finally {
      await bouncer.stop();
    }
  });

  test('server stopped → Failed/Unreachable, nothing crashes; started again → Listening, same endpoint', async () => {
    const ch = 'pgco_e2e_restart';
    const ep = endpoint(srv.url, { backoff: { baseMs: 100, maxMs: 1000 } });
    const heard: string[] = [];
    ep.subscribe(ch, (p) => heard.push(p));
    ep.setAnnouncer('ns/restart', { channel: ch, intervalMs: 1000, names: ['self@10.4.0.1'] });
    await listening(ep);
    await waitFor(() => heard.includes('self@10.4.0.1'), { timeoutMs: SETTLE_MS, message: 'own announcement heard' });

    await srv.stop();
    const s = await failedWith(ep, 'Unreachable', SETTLE_MS);
    await sleep(2500); // several reconnect attempts against a closed port
    const now = ep.state();
    assert.ok(now.phase === 'Failed' && now.reason === 'Unreachable', JSON.stringify(now));
    assert.match(now.message, /ECONNREFUSED|terminated by the server/);
    assert.ok(s.since <= now.since);

    await srv.start();
    await listening(ep, 10_000);
    heard.length = 0;
    await waitFor(() => heard.includes('self@10.4.0.1'), { timeoutMs: SETTLE_MS, message: 'own announcement heard after restart' });
    await ep.close();
  });

});

describe('PgEndpoint TLS (libpq sslmode semantics)', () => {
  let srv: PostgresServer;
  let certs: ReturnType<typeof makeCerts>;
  let certDir: string;

  before(async () => {
    srv = await startPostgres();
    secrets.add(srv.url);
    secrets.add(passwordOf(srv.url));
    certDir = mkdtempSync(join(tmpdir(), 'pgco-tls-'));
    certs = makeCerts(certDir);
    for (const f of [certDir, certs.certFile, certs.keyFile]) ownedByPostgres(f);
    chmodSync(certs.keyFile, 0o600);
    appendFileSync(join(srv.dataDir, 'postgresql.conf'), `\nssl = on\nssl_cert_file = '${certs.certFile}'\nssl_key_file = '${certs.keyFile}'\n`);
    await srv.stop();
    await srv.start();
  });

  after(async () => {
    await srv?.destroy();
    rmSync(certDir, { recursive: true, force: true });
  });

  const withMode = (mode: string | null, extra = '') => {
    const u = new URL(srv.url);
    if (mode) u.searchParams.set('sslmode', mode);
    return u.toString() + extra;
  };

  test('no sslmode (prefer) and require: encrypted without verification; disable: plain', async () => {
    for (const [mode, ssl] of [[null, true], ['require', true], ['disable', false]] as const) {
      const ep = endpoint(withMode(mode));
      await listening(ep);
      assert.equal(await sslInUse(srv.url, 'listener'), ssl, `listener, sslmode=${mode}`);
      assert.equal(await sslInUse(srv.url, 'sender'), ssl, `sender, sslmode=${mode}`);
      await ep.close();
      await waitFor(async () => (await sql(srv.url, "SELECT 1 FROM pg_stat_activity WHERE application_name LIKE 'pgcluster-operator/%'")).length === 0,
        { timeoutMs: SETTLE_MS, message: 'closed' });
    }
  });

  test('verify-full: an unknown CA fails with an actionable TLS message; the CA (option or sslrootcert) makes it work', async () => {
    const bad = endpoint(withMode('verify-full'));
    const s = await failedWith(bad, 'CertificateUntrusted');
    assert.ok(s.phase === 'Failed' && /not signed by a public CA known to Node\.js, and no CA was given.*give the CA .* in spec\.postgres\.tls\.caSecretRef/.test(s.message), JSON.stringify(s));
    await bad.close();

    const viaOption = new PgEndpoint({ url: withMode('verify-full'), log, tls: { ca: certs.caPem } });
    endpoints.push(viaOption);
    await listening(viaOption);
    assert.equal(await sslInUse(srv.url, 'listener'), true);
    await viaOption.close();

    const viaFile = endpoint(withMode('verify-full') + `&sslrootcert=${encodeURIComponent(certs.caFile)}`);
    await listening(viaFile);
    await viaFile.close();

    const missing = endpoint(withMode('verify-full') + '&sslrootcert=/nonexistent/ca.crt');
    const m = await failedWith(missing, 'InvalidTLS');
    assert.ok(m.phase === 'Failed' && /cannot read the file named by sslrootcert.*ENOENT/.test(m.message), JSON.stringify(m));
    await missing.close();
  });

  test('verify-ca checks the chain but not the host name', async () => {
    // "localhost" is not in the certificate (IP:127.0.0.1 only): verify-full refuses it, verify-ca accepts it.
    const host = (mode: string) => withMode(mode).replace('@127.0.0.1:', '@localhost:');
    const full = new PgEndpoint({ url: host('verify-full'), log, tls: { ca: certs.caPem } });
    endpoints.push(full);
    const s = await failedWith(full, 'HostnameMismatch');
    assert.ok(s.phase === 'Failed' && /ERR_TLS_CERT_ALTNAME_INVALID/.test(s.message), JSON.stringify(s));
    await full.close();
    const ca = new PgEndpoint({ url: host('verify-ca'), log, tls: { ca: certs.caPem } });
    endpoints.push(ca);
    await listening(ca);
    await ca.close();
  });
});

// After whichever tests ran (all, or those a --test-name-pattern picked): what they logged and every state
// they saw. A failure here fails the run.
after(() => {
  // PGCO_E2E_LOG=<file>: keep the endpoints' (redacted) log and states for a post-mortem.
  if (process.env.PGCO_E2E_LOG) {
    writeFileSync(process.env.PGCO_E2E_LOG, [...logLines, ...states.map((s) => `STATE ${JSON.stringify(s)}\n`)].join(''));
  }
  assert.deepEqual(unhandled, [], 'nothing unhandled');
  const texts = [...logLines, ...states.map((s) => JSON.stringify(s))];
  for (const secret of secrets) {
    const leaks = texts.filter((t) => t.includes(secret));
    assert.deepEqual(leaks, [], `secret leaked in ${leaks.length} lines`);
  }
  // Nor the address or user of the server.
  assert.deepEqual(texts.filter((t) => t.includes('127.0.0.1') || t.includes('"pgco"')), []);
});
