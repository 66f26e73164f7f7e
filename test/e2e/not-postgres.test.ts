// A Secret that points at something that is not Postgres (issue 11, items 6 and 7): loopback servers that
// answer like HTTP, send random garbage, announce a 2 GiB message, accept and never answer, or complete the
// startup and then never answer a query. Each PgCluster on one of them reports Connected False with a reason
// of its own; the operator keeps running (same process, bounded memory, no fatal log line), retries with
// backoff, and a healthy PgCluster beside them keeps publishing.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, test } from 'node:test';
import type { PostgresServer } from '../harness/postgres.ts';
import { waitFor } from '../support/env.ts';
import {
  condition, createPgCluster, createPod, createSecret, getPgCluster, operatorOnPostgres, testKube, waitForPeers, type OperatorProcess,
} from '../support/operator.ts';

const kube = testKube();
const PASSWORD = 'n0t-a-real-pw';
const CONNECT_TIMEOUT_S = 2;
/** What a fake server streams at most per connection (the huge-length and garbage servers). */
const STREAM_CAP = 512 * 2 ** 20;

type Behaviour = 'http' | 'garbage' | 'huge-length' | 'silent' | 'mute';

interface FakeServer {
  url: string;
  /** Each accepted connection: when (performance.now()), and the application_name of its startup message. */
  connections: { at: number; app?: string }[];
  close(): Promise<void>;
}

const SSL_REQUEST = 80877103;

/** Writes `chunk` repeatedly, with backpressure, until `cap` bytes or the socket closes. */
function stream(s: net.Socket, head: Buffer, chunk: () => Buffer, cap: number): void {
  let sent = 0;
  const pump = () => {
    while (!s.destroyed && sent < cap) {
      const b = sent === 0 ? Buffer.concat([head, chunk()]) : chunk();
      sent += b.length;
      if (!s.write(b)) return void s.once('drain', pump);
    }
  };
  pump();
}

async function fakeServer(behaviour: Behaviour, query: string): Promise<FakeServer> {
  const sockets = new Set<net.Socket>();
  const connections: FakeServer['connections'] = [];
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    const conn: FakeServer['connections'][number] = { at: performance.now() };
    connections.push(conn);
    let buf = Buffer.alloc(0);
    let answered = false;
    s.on('data', (d: Buffer) => {
      if (behaviour === 'silent') return;
      if (behaviour !== 'mute') {
        if (answered) return;
        answered = true;
        if (behaviour === 'http') {
          s.end('HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nConnection: close\r\n\r\nBad Request');
        } else if (behaviour === 'garbage') {
          stream(s, Buffer.alloc(0), () => randomBytes(64 * 1024), STREAM_CAP);
        } else {
          // An AuthenticationRequest header claiming 2 GiB, then bytes for it.
          const head = Buffer.from([0x52, 0x7f, 0xff, 0xff, 0xff]);
          const zeros = Buffer.alloc(256 * 1024);
          stream(s, head, () => zeros, STREAM_CAP);
        }
        return;
      }
      // mute: a Postgres startup (SSL refused, any user accepted without a password), then silence.
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 8) {
        const len = buf.readUInt32BE(0);
        if (buf.length < len) return;
        const msg = buf.subarray(0, len);
        buf = buf.subarray(len);
        if (conn.app !== undefined || msg.readUInt32BE(4) === SSL_REQUEST) {
          if (msg.readUInt32BE(4) === SSL_REQUEST) s.write('N');
          continue; // queries (and the terminate message) are never answered
        }
        const params = msg.subarray(8).toString('utf8').split('\0');
        conn.app = params[params.indexOf('application_name') + 1] ?? '';
        const authOk = Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0]);
        const ready = Buffer.from([0x5a, 0, 0, 0, 5, 0x49]);
        s.write(Buffer.concat([authOk, ready]));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `postgres://fake:${PASSWORD}@127.0.0.1:${port}/db?connect_timeout=${CONNECT_TIMEOUT_S}${query}`,
    connections,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

let server: PostgresServer;
let ns: { name: string; cleanup(): Promise<void> };
let op: OperatorProcess;
const fakes: FakeServer[] = [];

before(async () => {
  ({ server, ns, op } = await operatorOnPostgres(kube, 'e2e-notpg'));
  await createPod(kube, ns.name, { name: 'ok-1', labels: { app: 'ok' }, ip: '10.90.0.1' });
  await createPgCluster(kube, ns.name, 'ok', { selector: { matchLabels: { app: 'ok' } }, postgres: { urlSecretRef: { name: 'db' } }, heartbeatInterval: '1s' });
  await waitForPeers(kube, ns.name, 'ok-peers', ['ok-1'], ['ok@10.90.0.1']);
});

after(async () => {
  await op?.stop();
  await Promise.allSettled(fakes.map((f) => f.close()));
  await ns?.cleanup();
  await server?.destroy();
});

async function pgClusterOn(name: string, fake: FakeServer): Promise<void> {
  await createSecret(kube, ns.name, `${name}-db`, { url: fake.url });
  await createPgCluster(kube, ns.name, name, {
    selector: { matchLabels: { app: name } }, postgres: { urlSecretRef: { name: `${name}-db` } }, output: { podAnnotation: `pgcluster.io/peers-${name}` },
  });
}

async function connectedFalse(name: string, reason: string) {
  return waitFor(async () => {
    const c = condition(await getPgCluster(kube, ns.name, name), 'Connected');
    return c?.status === 'False' && c.reason === reason && c;
  }, { message: `${name}: Connected False with reason ${reason}`, timeoutMs: 30_000 });
}

const rssMB = async () => (await op.metric('process_resident_memory_bytes')) / 2 ** 20;

test('not Postgres (HTTP, garbage, a 2 GiB length prefix, silence): Connected False with a reason, the operator unharmed', async () => {
  const cases: [string, Behaviour, string, string, RegExp][] = [
    // [PgCluster, server, URL options, reason, message]
    ['http', 'http', '', 'NotPostgres', /not a Postgres server|does not speak/],
    ['garbage', 'garbage', '&sslmode=disable', 'NotPostgres', /not a Postgres server|does not speak/],
    ['hugelen', 'huge-length', '&sslmode=disable', 'NotPostgres', /not a Postgres server|does not speak/],
    ['silent', 'silent', '', 'ConnectTimeout', new RegExp(`${CONNECT_TIMEOUT_S}s`)],
  ];
  const rss0 = await rssMB();
  const servers = new Map<string, FakeServer>();
  for (const [name, behaviour, query] of cases) {
    const fake = await fakeServer(behaviour, query);
    fakes.push(fake);
    servers.set(name, fake);
    await pgClusterOn(name, fake);
  }
  for (const [name, , , reason, message] of cases) {
    const c = await connectedFalse(name, reason);
    assert.match(c.message, message, `${name}: ${c.message}`);
    assert.ok(!c.message.includes(PASSWORD), `${name}: no password in the message`);
  }
  // Every fake server is retried (a few attempts each), and meanwhile the healthy PgCluster publishes a join.
  await createPod(kube, ns.name, { name: 'ok-2', labels: { app: 'ok' }, ip: '10.90.0.2' });
  await waitForPeers(kube, ns.name, 'ok-peers', ['ok-1', 'ok-2'], ['ok@10.90.0.1', 'ok@10.90.0.2']);
  for (const [name] of cases) {
    await waitFor(() => (servers.get(name)?.connections.length ?? 0) >= 4, { message: `${name}: the operator retries`, timeoutMs: 60_000 });
  }
  assert.ok(op.alive(), 'the operator process is still running (no crash, no restart)');
  const rss = await rssMB();
  assert.ok(rss < Math.max(350, rss0 + 150), `resident memory stays bounded: ${rss.toFixed(0)} MB (${rss0.toFixed(0)} MB before)`);
  assert.equal(condition(await getPgCluster(kube, ns.name, 'ok'), 'Connected')?.status, 'True', 'the healthy PgCluster stays Connected');
  const logs = op.logs();
  assert.ok(!logs.includes('"level":60'), 'no fatal log line');
  assert.ok(!logs.includes(PASSWORD), 'no password in the operator log');
});

test('a server that completes the startup and never answers a query: ConnectTimeout, retried with backoff', async () => {
  const fake = await fakeServer('mute', '');
  fakes.push(fake);
  await pgClusterOn('mute', fake);
  const c = await connectedFalse('mute', 'ConnectTimeout');
  assert.match(c.message, /did not answer/, c.message);
  assert.match(c.message, new RegExp(`${CONNECT_TIMEOUT_S}s`), c.message);
  // Each attempt ends at the client-side timeout and the next one follows after a backoff: never a tight loop.
  const listener = () => fake.connections.filter((x) => x.app?.startsWith('pgcluster-operator/listener'));
  await waitFor(() => listener().length >= 3, { message: 'three listener connection attempts', timeoutMs: 60_000 });
  const at = listener().map((x) => x.at);
  for (let i = 1; i < at.length; i++) {
    const gap = (at[i] as number) - (at[i - 1] as number);
    assert.ok(gap >= CONNECT_TIMEOUT_S * 1000 * 0.75, `attempt ${i + 1} came ${gap.toFixed(0)} ms after the previous one (the timeout is ${CONNECT_TIMEOUT_S} s)`);
  }
  assert.ok(op.alive(), 'the operator process is still running');
  assert.equal(condition(await getPgCluster(kube, ns.name, 'ok'), 'Connected')?.status, 'True', 'the healthy PgCluster stays Connected');
});
