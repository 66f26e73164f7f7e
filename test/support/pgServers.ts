// More of Postgres than test/harness's throwaway server: one-off SQL, a streaming replica that can be promoted,
// TLS with a private CA and pg_hba.conf lines of the test's own, a role with only LOGIN and CONNECT, a plain
// LISTENing client (what a libcluster_postgres node sees). Everything started here has a stop().
import { spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort, startProc, waitReady, type Proc } from '../harness/proc.ts';
import { postgresBinDir, type PostgresServer } from '../harness/postgres.ts';
import type { Pem } from './certs.ts';

export async function sql<T extends pg.QueryResultRow>(url: string, text: string, values: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  c.on('error', () => {});
  await c.connect();
  try {
    return (await c.query<T>(text, values)).rows;
  } finally {
    await c.end();
  }
}

export function passwordOf(url: string): string {
  return decodeURIComponent(new URL(url).password);
}

/** Runs a command as the postgres OS user when we are root (Postgres tools refuse to run as root). */
export function runAsPostgres(cmd: string, args: string[]): void {
  const root = process.getuid?.() === 0;
  const r = root
    ? spawnSync('setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', '--', cmd, ...args], { encoding: 'utf8' })
    : spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} failed (${r.status}): ${r.stdout}${r.stderr}`);
}

export function ownedByPostgres(path: string): void {
  if (process.getuid?.() !== 0) return;
  const uid = Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim());
  const gid = Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim());
  chownSync(path, uid, gid);
}

async function accepting(url: string): Promise<boolean> {
  await sql(url, 'SELECT 1');
  return true;
}

export interface Replica {
  url: string;
  port: number;
  /** pg_promote(): waits until it is a primary. */
  promote(): Promise<void>;
  stop(): Promise<void>;
}

/** A hot standby of `primary` (pg_basebackup -R, streaming), on its own port, same roles and passwords. */
export async function startReplica(primary: PostgresServer): Promise<Replica> {
  const base = mkdtempSync(join(tmpdir(), 'pgco-replica-'));
  ownedByPostgres(base);
  const dataDir = join(base, 'data');
  runAsPostgres('pg_basebackup', ['-D', dataDir, '-R', '-X', 'stream', '-c', 'fast', '-d', primary.url]);
  const port = await freePort();
  appendFileSync(join(dataDir, 'postgresql.conf'), `\nport = ${port}\nunix_socket_directories = '${base}'\nhot_standby = on\n`);
  const url = primary.url.replace(`:${primary.port}/`, `:${port}/`);
  const logFile = join(base, 'postgres.log');
  writeFileSync(logFile, '');
  const p: Proc = startProc('postgres-replica', join(postgresBinDir(), 'postgres'), ['-D', dataDir], { logFile, user: 'postgres', deathSignal: 'INT' });
  try {
    await waitReady(p, 'accepting connections', () => accepting(url), 60_000);
  } catch (e) {
    await p.stop('SIGKILL');
    throw e;
  }
  return {
    url, port,
    async promote() {
      const [r] = await sql<{ ok: boolean }>(url, 'SELECT pg_promote(true, 60) AS ok');
      if (!r?.ok) throw new Error('pg_promote() did not complete within 60 s');
    },
    async stop() {
      await p.stop('SIGINT', 20_000);
      rmSync(base, { recursive: true, force: true });
    },
  };
}

/**
 * TLS on `server` (restarted): its certificate and key, optionally the CA that client certificates must come
 * from (ssl_ca_file), and pg_hba.conf lines put before the default ones (first match wins), e.g.
 * `hostssl all certuser 127.0.0.1/32 cert`.
 */
export async function enableTls(server: PostgresServer, o: { cert: Pem; clientCa?: string; hba?: string[] }): Promise<void> {
  const files: [string, string][] = [['server.crt', o.cert.cert], ['server.key', o.cert.key]];
  if (o.clientCa) files.push(['client-ca.crt', o.clientCa]);
  for (const [name, text] of files) {
    const f = join(server.dataDir, name);
    writeFileSync(f, text);
    chmodSync(f, 0o600);
    ownedByPostgres(f);
  }
  appendFileSync(join(server.dataDir, 'postgresql.conf'), [
    '', 'ssl = on', "ssl_cert_file = 'server.crt'", "ssl_key_file = 'server.key'",
    ...(o.clientCa ? ["ssl_ca_file = 'client-ca.crt'"] : []), '',
  ].join('\n'));
  if (o.hba?.length) {
    const hba = join(server.dataDir, 'pg_hba.conf');
    writeFileSync(hba, `${o.hba.join('\n')}\n${readFileSync(hba, 'utf8')}`);
  }
  await server.stop();
  await server.start();
}

/** A plain pg client LISTENing on channels: what a libcluster_postgres node would see. */
export async function plainListener(url: string, channels: string[]): Promise<{ got: { channel: string; payload: string; at: number }[]; client: pg.Client }> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  await client.connect();
  const got: { channel: string; payload: string; at: number }[] = [];
  client.on('notification', (m) => { got.push({ channel: m.channel, payload: m.payload ?? '', at: performance.now() }); });
  for (const ch of channels) await client.query(`LISTEN "${ch}"`);
  return { got, client };
}
