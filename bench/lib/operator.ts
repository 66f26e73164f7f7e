// The real operator program (node src/main.ts) as a child process, as in production: info-level JSON logs
// (to a file), its own metrics port; figures come from its /metrics and from /proc.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, logTail, startProc, type Proc } from '../../scripts/stack/proc.ts';
import { repoRoot } from './stack.ts';
import { mono, until } from './util.ts';
import { NODE_FLAGS } from '../../src/nodeFlags.ts';

export interface Sample {
  /** Series text -> value, e.g. `pgcluster_kube_writes_total{verb="patch",resource="pods"}`. */
  series: Map<string, number>;
  at: number;
}

export interface OperatorProc {
  pid: number;
  logFile: string;
  /** mono() when the process was spawned. */
  startedAt: number;
  /** mono() when /readyz first answered 200. */
  readyAt: number;
  scrape(): Promise<Sample>;
  /** Lines of its log that contain `text`. */
  logLines(text: string): number;
  /** VmRSS and VmHWM (peak) from /proc, in bytes. */
  memory(): { rss: number; peak: number };
  stop(): Promise<void>;
}

export interface OperatorOpts {
  kubeconfig: string;
  namespaces: string[];
  logDir: string;
  name: string;
  /** Write a V8 CPU profile (.cpuprofile) into this dir on exit. */
  cpuProfDir?: string;
  env?: Record<string, string>;
  /** Modules to --import before src/main.ts (bench/whatif/). */
  preloads?: string[];
}

/**
 * The operator as the image runs it: the JavaScript `npm run build` emits (buildOperator). Node's type
 * stripping of src/*.ts costs ~25 MB of resident memory on its own. What-if preloads patch the TypeScript
 * sources, so with them the sources run (the results say which: `operatorEntry`).
 */
export function operatorEntry(preloads: string[]): string {
  return preloads.length ? 'src/main.ts' : 'dist/src/main.js';
}

/** Compiles src/ to dist/ (tsc, as the Dockerfile's build stage does). */
export async function buildOperator(): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    execFile(join(repoRoot, 'node_modules/.bin/tsc'), ['-p', join(repoRoot, 'tsconfig.build.json')], (err, stdout) => {
      if (err) reject(new Error(`npm run build failed: ${stdout.slice(0, 2000) || err.message}`));
      else resolve();
    });
  });
}

export async function startOperator(opts: OperatorOpts): Promise<OperatorProc> {
  const port = await freePort();
  const logFile = join(opts.logDir, `operator-${opts.name}.log`);
  const args = [
    ...NODE_FLAGS,
    ...(opts.preloads ?? []).flatMap((p) => ['--import', p]),
    ...(opts.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProfDir}`, `--cpu-prof-name=operator-${opts.name}.cpuprofile`] : []),
    join(repoRoot, operatorEntry(opts.preloads ?? [])),
  ];
  const startedAt = mono();
  // The parent-death signal (setpriv) ends the operator with us, even if we are killed.
  const proc: Proc = startProc(`operator-${opts.name}`, process.execPath, args, {
    logFile,
    cwd: repoRoot,
    deathSignal: 'TERM',
    env: {
      ...process.env,
      KUBECONFIG: opts.kubeconfig,
      WATCH_NAMESPACE: opts.namespaces.join(','),
      METRICS_BIND_ADDRESS: `127.0.0.1:${port}`,
      LOG_LEVEL: 'info',
      NODE_OPTIONS: '',
      ...opts.env,
    },
  });
  const base = `http://127.0.0.1:${port}`;
  let dead: string | undefined;
  void proc.exited.then((c) => { dead = String(c); });
  try {
    await until('the operator to answer /readyz', async () => {
      if (dead !== undefined) throw new Error(`the operator exited (${dead}):\n${logTail(logFile, 30)}`);
      return (await fetch(`${base}/readyz`)).ok;
    }, 120_000, 50);
  } catch (e) {
    await proc.stop('SIGKILL');
    throw new Error(`${(e as Error).message}\n${logTail(logFile, 30)}`);
  }
  const readyAt = mono();
  return {
    pid: proc.pid,
    logFile,
    startedAt,
    readyAt,
    async scrape() {
      const text = await (await fetch(`${base}/metrics`)).text();
      return { series: parseMetrics(text), at: mono() };
    },
    logLines(text: string) {
      return readFileSync(logFile, 'utf8').split('\n').filter((l) => l.includes(text)).length;
    },
    memory() {
      const status = readFileSync(`/proc/${proc.pid}/status`, 'utf8');
      const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
      return { rss: kb('VmRSS'), peak: kb('VmHWM') };
    },
    // SIGTERM: the operator stops heartbeats, closes connections and exits 0 (and writes its CPU profile).
    stop: () => proc.stop('SIGTERM', 20_000),
  };
}

export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    if (i > 0) out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/** Sum of a metric over the series whose labels include `labels`. */
export function metric(s: Sample, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const [k, v] of s.series) {
    if (k !== name && !k.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([l, val]) => k.includes(`${l}="${val}"`))) sum += v;
  }
  return sum;
}

/** Per-label breakdown of a counter's increase between two samples, e.g. writes by resource. */
export function deltaBy(a: Sample, b: Sample, name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of b.series) {
    if (!k.startsWith(`${name}{`)) continue;
    const m = new RegExp(`${label}="([^"]*)"`).exec(k);
    const key = m?.[1] ?? '';
    const d = v - (a.series.get(k) ?? 0);
    if (d) out[key] = (out[key] ?? 0) + d;
  }
  return out;
}

export function delta(a: Sample, b: Sample, name: string, labels: Record<string, string> = {}): number {
  return metric(b, name, labels) - metric(a, name, labels);
}
