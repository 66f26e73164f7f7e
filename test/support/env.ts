// Helpers for e2e tests that run against the test stack (`npm test`, or `npm run stack -- up` + `source .stack/env`).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface StackEnv {
  kubeconfig: string;
  databaseUrl: string;
  /** Dir holding the stack's kubectl and helm. */
  binDir: string;
  stackDir: string;
}

/** The stack's coordinates from the environment; throws (never skips) when a test runs without a stack. */
export function requireEnv(): StackEnv {
  const { KUBECONFIG: kubeconfig, DATABASE_URL: databaseUrl, PGCO_STACK_DIR: stackDir } = process.env;
  const missing = Object.entries({ KUBECONFIG: kubeconfig, DATABASE_URL: databaseUrl, PGCO_STACK_DIR: stackDir })
    .filter(([, v]) => !v).map(([k]) => k);
  if (missing.length || !stackDir || !kubeconfig || !databaseUrl) {
    throw new Error(`e2e tests need the test stack, but ${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} not set. `
      + 'Run them with `npm test -- <file>`, or `npm run stack -- up && source .stack/env` first.');
  }
  const binDir = join(stackDir, 'bin');
  if (!existsSync(join(binDir, 'kubectl'))) throw new Error(`${binDir}/kubectl is missing: is the stack in ${stackDir} still up?`);
  return { kubeconfig, databaseUrl, binDir, stackDir };
}

/**
 * How long a pod's mounted files (the ConfigMap's, the downward-API annotation's) may take to follow the API
 * on the real node. Usually the kubelet's sync right after the pod's update, within a second; at worst its
 * periodic sync (syncFrequency 1 min plus jitter: 67-88 s seen on a loaded machine), which the README calls
 * the downward-API lag. A test waiting on a file waits this long; the benchmark measures how long it takes.
 */
export const MOUNTED_FILE_SYNC_MS = 180_000;

/** Per-test timeout for a real-node test that waits on mounted files (the runner's default is 5 min). */
export const REAL_NODE_TEST = { timeout: 600_000 };

export interface RealNodeEnv extends StackEnv {
  node: string;
  /** unix:// endpoint of the node's containerd. */
  containerd: string;
  /** This machine's address on the pods' bridge, and the pods' subnet. */
  hostIp: string;
  podCidr: string;
}

/** The real node's coordinates; throws (never skips) when the stack was started without it. */
export function requireRealNode(): RealNodeEnv {
  const env = requireEnv();
  const { PGCO_REAL_NODE: node, PGCO_CONTAINERD_SOCK: containerd, PGCO_NODE_HOST_IP: hostIp, PGCO_POD_CIDR: podCidr } = process.env;
  if (!node || !containerd || !hostIp || !podCidr) {
    throw new Error('this test needs the real node (a kubelet on containerd), but PGCO_REAL_NODE is not set. '
      + '`npm test` starts it for test/e2e/real-node/; by hand: `npm run stack -- up --real-node && source .stack/env`.');
  }
  return { ...env, node, containerd, hostIp, podCidr };
}

export interface RunResult { code: number; stdout: string; stderr: string }

export class CommandError extends Error {
  readonly result: RunResult;
  constructor(cmd: string, r: RunResult) {
    super(`${cmd} exited ${r.code}:\n${r.stderr || r.stdout}`);
    this.result = r;
  }
}

/** Runs one of the stack's binaries; rejects with CommandError on a non-zero exit unless allowFail. */
export function runBin(name: string, args: string[], opts: { input?: string; allowFail?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  const env = requireEnv();
  return new Promise((resolve, reject) => {
    const child = spawn(join(env.binDir, name), args, {
      env: { ...process.env, KUBECONFIG: env.kubeconfig, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    child.on('error', reject);
    child.on('close', (code) => {
      const r = { code: code ?? 1, stdout, stderr };
      if (r.code !== 0 && !opts.allowFail) reject(new CommandError(`${name} ${args.join(' ')}`, r));
      else resolve(r);
    });
    // A command that exits without reading its stdin (kubectl auth can-i) must not fail the test with EPIPE.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

/** kubectl against the stack; resolves with stdout, rejects with CommandError (carrying stderr) on failure. */
export async function kubectl(args: string[], opts: { input?: string; ns?: string } = {}): Promise<string> {
  const nsArgs = opts.ns ? ['-n', opts.ns] : [];
  const r = await runBin('kubectl', [...nsArgs, ...args], opts.input === undefined ? {} : { input: opts.input });
  return r.stdout;
}

/** kubectl ... -o json, parsed. */
export async function kubectlJson<T>(args: string[], opts: { ns?: string } = {}): Promise<T> {
  return JSON.parse(await kubectl([...args, '-o', 'json'], opts)) as T;
}

/** A fresh namespace named <prefix>-<random>, with `meta`'s labels and annotations; cleanup() deletes it without waiting. */
export async function createNamespace(prefix: string, meta: { labels?: Record<string, string>; annotations?: Record<string, string> } = {}): Promise<{ name: string; cleanup(): Promise<void> }> {
  const name = `${prefix}-${randomBytes(3).toString('hex')}`.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 63);
  await kubectl(['create', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, ...meta } }) });
  // With ServiceAccount admission on (the real-node stack), a pod is refused until the namespace's default
  // ServiceAccount exists; the controller manager makes it moments after the namespace.
  await waitFor(async () => (await runBin('kubectl', ['-n', name, 'get', 'serviceaccount', 'default', '--ignore-not-found', '-o', 'name'])).stdout.trim() !== '',
    { message: `the default ServiceAccount of namespace ${name}` });
  return {
    name,
    cleanup: async () => { await kubectl(['delete', 'namespace', name, '--wait=false', '--ignore-not-found']); },
  };
}

import { waitFor } from './poll.ts';
export { holdsFor, waitFor } from './poll.ts';

/**
 * A lock shared by the test files of one stack (they run in parallel processes), for what is cluster-wide:
 * e.g. the CRD, which one Helm release at a time may own. Released by the returned function, or when the
 * holder's process is gone.
 */
export async function lockStack(name: string, timeoutMs = 15 * 60_000): Promise<() => void> {
  const dir = join(requireEnv().stackDir, `lock-${name}`);
  await waitFor(() => {
    try {
      mkdirSync(dir);
      writeFileSync(join(dir, 'pid'), String(process.pid));
      return true;
    } catch {
      const holder = Number(readFileSync(join(dir, 'pid'), 'utf8') || 0);
      if (holder && holder !== process.pid) {
        try { process.kill(holder, 0); } catch { rmSync(dir, { recursive: true, force: true }); } // holder died
      }
      return false;
    }
  }, { timeoutMs, intervalMs: 500, message: `the ${name} lock (held by another test file)` });
  return () => rmSync(dir, { recursive: true, force: true });
}
