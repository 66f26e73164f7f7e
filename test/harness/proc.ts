// Process helpers shared by the stack: spawn a long-running server with its log in a file, tie its life to
// ours, find free ports, and turn "it died" into an error that shows why.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, type Hash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import type { Teardown } from './teardown.ts';

export interface Proc {
  name: string;
  pid: number;
  logFile: string;
  child: ChildProcess;
  /** Resolves with the exit code (or signal name) once the process is gone. */
  exited: Promise<number | string>;
  /** Signal it (default SIGTERM), wait up to timeoutMs, then SIGKILL. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<void>;
}

const hasSetpriv = spawnSync('setpriv', ['--version'], { stdio: 'ignore' }).status === 0;

export interface SpawnOpts {
  logFile: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Run as this OS user (only when we are root), e.g. postgres refuses to run as root. */
  user?: string;
  /** Signal the kernel sends the child when we die, even by SIGKILL, so servers never outlive a crashed runner. */
  deathSignal?: 'TERM' | 'INT' | 'KILL';
}

/** Wraps argv in setpriv when we need another user or a parent-death signal (Linux, util-linux). */
function wrap(cmd: string, args: string[], opts: SpawnOpts): [string, string[]] {
  const pre: string[] = [];
  if (opts.user && process.getuid?.() === 0) pre.push(`--reuid=${opts.user}`, `--regid=${opts.user}`, '--init-groups');
  if (opts.deathSignal && hasSetpriv) pre.push(`--pdeathsig=${opts.deathSignal}`);
  if (pre.length === 0) return [cmd, args];
  if (!hasSetpriv) throw new Error(`running ${cmd} as user ${opts.user} needs setpriv (util-linux): apt-get install util-linux`);
  return ['setpriv', [...pre, '--', cmd, ...args]];
}

export function startProc(name: string, cmd: string, args: string[], opts: SpawnOpts): Proc {
  const [c, a] = wrap(cmd, args, opts);
  const fd = openSync(opts.logFile, 'a');
  // Own process group (detached) so a terminal's Ctrl-C reaches the runner first and it shuts the stack
  // down in order; the death signal covers the runner dying without cleaning up.
  const child = spawn(c, a, { stdio: ['ignore', fd, fd], env: opts.env ?? process.env, cwd: opts.cwd, detached: true });
  closeSync(fd);
  const exited = new Promise<number | string>((resolve) => {
    child.on('exit', (code, sig) => resolve(code ?? sig ?? 'unknown'));
    child.on('error', (err) => resolve(`spawn error: ${err.message}`));
  });
  if (child.pid === undefined) {
    throw new Error(`could not start ${name} (${cmd}): is it installed and executable?`);
  }
  const pid = child.pid;
  child.unref();
  return {
    name, pid, logFile: opts.logFile, child, exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      try { process.kill(pid, signal); } catch { return; }
      const t = setTimeout(() => { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }, timeoutMs);
      await exited;
      clearTimeout(t);
    },
  };
}

/**
 * startProc for a server a start function owns: added to procs, and its stop (SIGTERM, SIGKILL after 15 s)
 * registered with the teardown at once.
 */
export function startOwnedProc(td: Teardown, procs: Proc[], name: string, cmd: string, args: string[], opts: SpawnOpts): Proc {
  const p = startProc(name, cmd, args, opts);
  procs.push(p);
  td.push(`stop ${name}`, () => p.stop('SIGTERM', 15_000));
  return p;
}

/** Fails now, not in the first test, if a server died right after it reported ready. */
export function assertRunning(procs: readonly Proc[]): void {
  for (const p of procs) {
    if (p.child.exitCode !== null || p.child.signalCode !== null) throw diedError(p, p.child.exitCode ?? p.child.signalCode ?? '?');
  }
}

export function logTail(file: string, lines = 25): string {
  if (!existsSync(file)) return `(no log at ${file})`;
  const all = readFileSync(file, 'utf8').trimEnd().split('\n');
  return all.slice(-lines).map((l) => `    ${l}`).join('\n');
}

/** What a server that died wrote last, its panics and fatal lines first (a Go panic ends in a page of stacks). */
export function deathReport(p: Proc): string {
  const code = p.child.exitCode ?? p.child.signalCode ?? '?';
  const all = existsSync(p.logFile) ? readFileSync(p.logFile, 'utf8').trimEnd().split('\n') : [];
  const why = all.filter((l) => /panic|fatal|^F\d{4} /i.test(l)).slice(0, 5);
  return [`${p.name} (pid ${p.pid}) exited (${code}); see ${p.logFile}`, ...why.map((l) => `    ${l.slice(0, 300)}`), logTail(p.logFile, 5)].join('\n');
}

/** An error for a server that exited while we waited for it, with the end of its log. */
export function diedError(p: Proc, code: number | string, hint = ''): Error {
  return new Error(`${p.name} exited early (${code}) — last lines of ${p.logFile}:\n${logTail(p.logFile)}${hint ? `\n${hint}` : ''}`);
}

/** Polls check() until it returns true; fails early if proc exits, or after timeoutMs with the log tail. */
export async function waitReady(p: Proc, what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let dead: number | string | undefined;
  void p.exited.then((c) => { dead = c; });
  for (;;) {
    if (dead !== undefined) throw diedError(p, dead);
    if (await check().catch(() => false)) return;
    if (dead !== undefined) throw diedError(p, dead);
    if (performance.now() > deadline) {
      throw new Error(`${p.name} (pid ${p.pid}) not ${what} after ${timeoutMs / 1000}s — last lines of ${p.logFile}:\n${logTail(p.logFile)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * A wait that runs while the next steps start: handled at once, so that if it fails before it is awaited (the
 * start failing meanwhile) Node does not end the process for an unhandled rejection; awaiting it still throws.
 */
export function waitInBackground(wait: Promise<void>): Promise<void> {
  wait.catch(() => {});
  return wait;
}

/** A port the kernel just handed out on loopback; racy in theory, fine for tests on one machine. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
export async function portInUse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(true));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(false)));
  });
}

export function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

export interface CommandResult { code: number; stdout: string; stderr: string }

/**
 * Runs a short-lived command to completion and collects its output; a non-zero exit is a result, not an
 * error (the caller decides). A missing command gives code 127 (as a
 * shell would), not an exception; onOutput sees each line of stdout and stderr as it comes (build progress).
 */
export function runCommand(cmd: string, args: string[], opts: {
  env?: NodeJS.ProcessEnv; cwd?: string; input?: string; onOutput?: (line: string) => void;
} = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let partial = '';
    const lines = (b: Buffer) => {
      if (!opts.onOutput) return;
      const parts = (partial + b.toString()).split('\n');
      partial = parts.pop() ?? '';
      for (const l of parts) opts.onOutput(l);
    };
    child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); lines(b); });
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); lines(b); });
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') resolve({ code: 127, stdout, stderr: `${cmd}: command not found` });
      else reject(e);
    });
    child.on('close', (code, sig) => {
      if (partial && opts.onOutput) opts.onOutput(partial);
      resolve({ code: code ?? (sig ? 128 : 1), stdout, stderr });
    });
    child.stdin.on('error', () => {}); // a command that exits without reading stdin
    child.stdin.end(opts.input ?? '');
  });
}

/** The result of a command that must succeed; otherwise an error with what failed and its last 20 lines. */
export function must(r: CommandResult, what: string): CommandResult {
  if (r.code !== 0) {
    const tail = (r.stderr || r.stdout).trimEnd().split('\n').slice(-20).join('\n');
    throw new Error(`${what} failed (exit ${r.code}):\n${tail}`);
  }
  return r;
}

/**
 * sha256 over files under `root`, in name order, each as its name and contents: the identity of what a build
 * reads, to build once per version of it. Returned open, so a caller can add more (base image ids).
 */
export function hashFiles(root: string, files: string[]): Hash {
  const h = createHash('sha256');
  for (const f of [...files].sort()) h.update(`${f}\0`).update(readFileSync(join(root, f))).update('\0');
  return h;
}

/** scripts/build-binaries.sh's cache ($PGCO_CACHE_DIR), where the stack also keeps what it builds once. */
export function cacheDir(): string {
  return process.env.PGCO_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'pgcluster-operator');
}
