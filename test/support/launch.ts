// The one way to run the operator program as a child process — for the e2e tests, the demo and the
// benchmark: its own metrics port, its log in a file, ended with us (parent-death signal), ready once
// /readyz answers 200.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_FLAGS } from '../../src/nodeFlags.ts';
import { freePort, logTail, startProc, type Proc } from '../harness/proc.ts';
import { waitFor } from './poll.ts';
import { errorMessage } from '../../src/errors.ts';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface LaunchOptions {
  kubeconfig: string;
  /** WATCH_NAMESPACE. */
  namespaces: string[];
  logFile: string;
  /** Relative to the repository: src/main.ts (default) or the built dist/src/main.js. */
  entry?: string;
  /** Node options before the entry (besides NODE_FLAGS): --import, --cpu-prof, ... */
  nodeArgs?: string[];
  /** LOG_LEVEL, default info. */
  logLevel?: string;
  env?: Record<string, string>;
  readyTimeoutMs?: number;
}

export interface LaunchedOperator {
  proc: Proc;
  metricsUrl: string;
  /** Signals it (default SIGTERM), waits up to timeoutMs (then SIGKILL); answers how it exited. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | string>;
}

export async function launchOperator(o: LaunchOptions): Promise<LaunchedOperator> {
  const port = await freePort();
  const proc = startProc('operator', process.execPath, [...NODE_FLAGS, ...(o.nodeArgs ?? []), join(repoRoot, o.entry ?? 'src/main.ts')], {
    logFile: o.logFile,
    cwd: repoRoot,
    deathSignal: 'TERM',
    env: {
      ...process.env,
      KUBECONFIG: o.kubeconfig,
      WATCH_NAMESPACE: o.namespaces.join(','),
      METRICS_BIND_ADDRESS: `127.0.0.1:${port}`,
      LOG_LEVEL: o.logLevel ?? 'info',
      NODE_OPTIONS: '',
      ...o.env,
    },
  });
  let exited: number | string | undefined;
  void proc.exited.then((c) => { exited = c; });
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitFor(async () => {
      if (exited !== undefined) throw new Error(`the operator exited (${exited})`);
      return (await fetch(`${base}/readyz`)).ok;
    }, { timeoutMs: o.readyTimeoutMs ?? 30_000, intervalMs: 50, message: 'the operator to answer /readyz' });
  } catch (err) {
    await proc.stop('SIGKILL');
    throw new Error(`${errorMessage(err)}\n--- operator log ---\n${logTail(o.logFile, 40)}`);
  }
  return {
    proc,
    metricsUrl: `${base}/metrics`,
    stop: async (signal = 'SIGTERM', timeoutMs = 15_000) => {
      await proc.stop(signal, timeoutMs);
      return proc.exited;
    },
  };
}
