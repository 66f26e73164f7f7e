// Helpers for e2e tests that run against the test stack (`npm test`, or `npm run stack -- up` + `source .stack/env`).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
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

/** A fresh namespace named <prefix>-<random>; cleanup() deletes it without waiting. */
export async function createNamespace(prefix: string): Promise<{ name: string; cleanup(): Promise<void> }> {
  const name = `${prefix}-${randomBytes(3).toString('hex')}`.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 63);
  await kubectl(['create', 'namespace', name]);
  return {
    name,
    cleanup: async () => { await kubectl(['delete', 'namespace', name, '--wait=false', '--ignore-not-found']); },
  };
}

export { holdsFor, waitFor } from './poll.ts';
