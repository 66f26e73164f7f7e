// Postgres-side measurements: commits and connections as the server counts them, server CPU from /proc,
// the pg_notify round-trip floor, and pgbench as the concurrent OLTP workload.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { postgresBinDir } from '../../test/harness/postgres.ts';
import { mono, summarize, type Summary } from './util.ts';

const run = promisify(execFile);

/** The same server and credentials, another database. */
export function withDb(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

export function dbOf(url: string): string {
  return decodeURIComponent(new URL(url).pathname.slice(1));
}

/**
 * Reads the server's own counters over a connection to the `postgres` database, so that the reads never
 * count as transactions of the database being measured.
 */
export class PgStats {
  #client: pg.Client;
  private constructor(c: pg.Client) { this.#client = c; }

  static async open(url: string): Promise<PgStats> {
    const c = new pg.Client({ connectionString: withDb(url, 'postgres') });
    c.on('error', () => {});
    await c.connect();
    return new PgStats(c);
  }

  /**
   * The next transaction id the server will assign. Every NOTIFY transaction is assigned one (the
   * notification queue entries carry it), read-only transactions are not: on a server where only discovery
   * runs, its increase is the number of NOTIFY commits, exactly and at once. (pg_stat_database.xact_commit
   * is not usable for this: a backend flushes it only along with other pending statistics, so commits of
   * catalog-free statements like pg_notify show up late, in lumps.)
   */
  async nextXid(): Promise<number> {
    const r = await this.#client.query<{ x: string }>('SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS x');
    return Number(r.rows[0]?.x ?? NaN);
  }

  /** Client connections to `db` right now. */
  async connections(db: string): Promise<number> {
    const r = await this.#client.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'", [db]);
    return r.rows[0]?.n ?? NaN;
  }

  async close(): Promise<void> { await this.#client.end().catch(() => {}); }
}

/** One NOTIFY -> LISTEN round trip with plain pg clients, n times: the floor under any announcement. */
export async function notifyRoundTrips(url: string, n: number): Promise<Summary> {
  const listener = new pg.Client({ connectionString: url });
  const sender = new pg.Client({ connectionString: url });
  listener.on('error', () => {});
  sender.on('error', () => {});
  await Promise.all([listener.connect(), sender.connect()]);
  const channel = `bench_floor_${process.pid}`;
  await listener.query(`LISTEN ${channel}`);
  const samples: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const payload = `floor@192.0.2.${(i % 250) + 1}#${i}`;
      const heard = new Promise<number>((resolve) => {
        const on = (m: pg.Notification) => { if (m.payload === payload) { listener.off('notification', on); resolve(mono()); } };
        listener.on('notification', on);
      });
      const t0 = mono();
      await sender.query('SELECT pg_notify($1, $2)', [channel, payload]);
      samples.push((await heard) - t0);
    }
  } finally {
    await Promise.allSettled([listener.end(), sender.end()]);
  }
  return summarize(samples);
}

/** pgbench of the server's own bin dir, else any Debian one (a pgbench drives newer servers too). */
export function pgbenchPath(): string {
  const own = join(postgresBinDir(), 'pgbench');
  if (existsSync(own)) return own;
  const root = '/usr/lib/postgresql';
  const debian = existsSync(root)
    ? readdirSync(root).map((v) => join(root, v, 'bin', 'pgbench')).filter((p) => existsSync(p)).sort().reverse()
    : [];
  if (!debian[0]) throw new Error(`no pgbench in ${postgresBinDir()} or ${root}/*/bin: the OLTP workload uses Postgres' pgbench (Debian: apt-get install -y postgresql)`);
  return debian[0];
}

export async function pgbenchInit(url: string): Promise<void> {
  await run(pgbenchPath(), ['-i', '-s', '1', '-q', url], { timeout: 120_000 });
}

export interface PgbenchResult {
  tps: number;
  latencyMs: number;
  transactions: number;
}

/** `pgbench -N` (simple-update: one UPDATE, one SELECT, one INSERT per transaction), `clients` connections. */
export async function pgbench(url: string, seconds: number, clients = 4): Promise<PgbenchResult> {
  const { stdout } = await run(pgbenchPath(), ['-n', '-N', '-c', String(clients), '-j', '2', '-T', String(seconds), url], { timeout: (seconds + 60) * 1000 });
  const num = (re: RegExp) => Number(re.exec(stdout)?.[1] ?? NaN);
  return {
    tps: num(/tps = ([\d.]+) \(without initial connection time\)/),
    latencyMs: num(/latency average = ([\d.]+) ms/),
    transactions: num(/number of transactions actually processed: (\d+)/),
  };
}
