// `npm run stack -- up|down|status`: a long-lived test stack in .stack/ for working by hand
// (`source .stack/env`, then kubectl, helm, psql "$DATABASE_URL", node --test ...).
//
// `up` starts a detached supervisor (this script with `supervise`) that owns every server: the servers die
// with it (parent-death signal), and `down` asks it to stop them in order.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startStack, type Stack } from '../test/harness/stack.ts';
import { kubeRequest } from '../test/harness/kube.ts';
import { logTail, pidAlive } from '../test/harness/proc.ts';
import { cleanupRealNodeLeftovers } from '../test/harness/realnode.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(repoRoot, '.stack');
const stateFile = join(dir, 'state.json');
const logFile = join(dir, 'stack.log');

interface State {
  supervisor: number;
  pids: Record<string, number>;
  server: string;
  caFile: string;
  kubeconfig: string;
  databaseUrl: string;
  startedAt: string;
  startSeconds: number;
}

function readState(): State | undefined {
  if (!existsSync(stateFile)) return undefined;
  return JSON.parse(readFileSync(stateFile, 'utf8')) as State;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function supervise(): Promise<void> {
  const t0 = Date.now();
  let stack: Stack;
  try {
    stack = await startStack({ dir, realNode: process.argv.includes('--real-node') });
  } catch (e) {
    console.error((e as Error).message);
    process.exit(1);
  }
  const pgPid = stack.postgres.pid();
  const state: State = {
    supervisor: process.pid,
    pids: { ...stack.kube.pids, ...stack.realNode?.pids, ...(pgPid ? { postgres: pgPid } : {}) },
    server: stack.kube.server, caFile: stack.kube.caFile, kubeconfig: stack.kube.kubeconfig,
    databaseUrl: stack.postgres.url, startedAt: new Date().toISOString(), startSeconds: (Date.now() - t0) / 1000,
  };
  // Written whole, then renamed: `up` polls for this file and must never read half of it.
  writeFileSync(`${stateFile}.tmp`, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
  renameSync(`${stateFile}.tmp`, stateFile);
  console.error(`stack up in ${state.startSeconds.toFixed(1)}s`);
  const keepAlive = setInterval(() => {}, 1 << 30);
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    process.once(sig, () => {
      console.error(`${sig}: stopping the stack`);
      clearInterval(keepAlive);
      void stack.stop().catch((e: Error) => console.error(e.message)).finally(() => process.exit(0));
    });
  }
}

/** Copies what the supervisor appended to its log to our stderr, so `up` shows build progress. */
function follow(offset: number): number {
  if (!existsSync(logFile)) return offset;
  const size = statSync(logFile).size;
  if (size <= offset) return offset;
  const fd = openSync(logFile, 'r');
  const buf = Buffer.alloc(size - offset);
  readSync(fd, buf, 0, buf.length, offset);
  closeSync(fd);
  process.stderr.write(buf);
  return size;
}

async function up(): Promise<number> {
  const state = readState();
  if (state && pidAlive(state.supervisor)) {
    console.log(`stack is already up (supervisor pid ${state.supervisor}, since ${state.startedAt}); use: source .stack/env`);
    return 0;
  }
  if (existsSync(dir)) await down(true); // leftovers of a crashed stack
  mkdirSync(dir, { recursive: true });
  const fd = openSync(logFile, 'a');
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), 'supervise', ...process.argv.slice(3)], {
    detached: true, stdio: ['ignore', fd, fd], cwd: repoRoot,
  });
  closeSync(fd);
  child.unref();
  let exited: number | string | undefined;
  child.on('exit', (code, sig) => { exited = code ?? sig ?? 'unknown'; });
  let offset = 0;
  for (;;) {
    offset = follow(offset);
    if (existsSync(stateFile)) break;
    if (exited !== undefined) {
      follow(offset);
      await down(true); // removes .stack/ with its log: what it said is printed above
      console.error(`\nstack up FAILED (supervisor exited ${exited}); the cause is above`);
      return 1;
    }
    await sleep(300);
  }
  const s = readState()!;
  console.log(`stack up in ${s.startSeconds.toFixed(1)}s (supervisor pid ${s.supervisor}); logs in .stack/*.log`);
  console.log('use it:   source .stack/env   (KUBECONFIG, DATABASE_URL, PATH with kubectl and helm)');
  return 0;
}

async function down(quiet = false): Promise<number> {
  const state = readState();
  if (!state) {
    if (!quiet) console.log(existsSync(dir) ? 'stack was not running; removing .stack/' : 'stack is not up');
  } else {
    if (pidAlive(state.supervisor)) {
      process.kill(state.supervisor, 'SIGTERM');
      for (let i = 0; i < 150 && pidAlive(state.supervisor); i++) await sleep(200);
    }
    // Backstop: anything the supervisor did not stop (it was killed, or hung).
    for (const [name, pid] of Object.entries(state.pids)) {
      if (pidAlive(pid)) {
        console.error(`killing leftover ${name} (pid ${pid})`);
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
    }
    if (pidAlive(state.supervisor)) try { process.kill(state.supervisor, 'SIGKILL'); } catch { /* gone */ }
    await cleanupRealNodeLeftovers(dir);
    if (!quiet) console.log('stack is down');
  }
  rmSync(dir, { recursive: true, force: true });
  return 0;
}

async function status(): Promise<number> {
  const state = readState();
  if (!state) {
    console.log(existsSync(dir) ? 'stack is not up (.stack/ has no state; see .stack/stack.log, or run down)' : 'stack is not up');
    return 1;
  }
  let ok = true;
  const line = (good: boolean, text: string) => { ok &&= good; console.log(`${good ? 'ok  ' : 'FAIL'} ${text}`); };
  line(pidAlive(state.supervisor), `supervisor pid ${state.supervisor} (up since ${state.startedAt})`);
  for (const [name, pid] of Object.entries(state.pids)) line(pidAlive(pid), `${name} pid ${pid}`);
  const readyz = await kubeRequest(`${state.server}/readyz`, { ca: readFileSync(state.caFile, 'utf8') })
    .then((r) => `${r.status} ${r.body.trim()}`, (e: Error) => e.message);
  line(readyz === '200 ok', `kube-apiserver ${state.server}/readyz: ${readyz}`);
  const c = new pg.Client({ connectionString: state.databaseUrl, connectionTimeoutMillis: 3000 });
  c.on('error', () => {});
  const pgOk = await c.connect().then(() => c.query('select 1'), (e: Error) => e).finally(() => c.end().catch(() => {}));
  const port = new URL(state.databaseUrl).port;
  line(!(pgOk instanceof Error), `postgres 127.0.0.1:${port}: ${pgOk instanceof Error ? pgOk.message : 'accepting connections'}`);
  if (!ok) console.log(`\nlast lines of ${logFile}:\n${logTail(logFile, 10)}`);
  return ok ? 0 : 1;
}

const cmd = process.argv[2];
switch (cmd) {
  case 'supervise': await supervise(); break;
  case 'up': process.exitCode = await up(); break;
  case 'down': process.exitCode = await down(); break;
  case 'status': process.exitCode = await status(); break;
  default:
    console.error('usage: npm run stack -- up [--real-node]|down|status\n  up      start etcd, kube-apiserver, kwok, kube-controller-manager and Postgres in .stack/ (background)\n'
      + '          --real-node: also containerd, a real kubelet and kube-scheduler (root; pods really run)\n'
      + '  down    stop them and remove .stack/\n  status  show what runs');
    process.exitCode = 2;
}
