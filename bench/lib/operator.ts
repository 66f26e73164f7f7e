// The real operator program (node src/main.ts) as a child process, as in production: info-level JSON logs
// (to a file), its own metrics port; figures come from its /metrics and from /proc.
import { existsSync, globSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { repoRoot } from './stack.ts';
import { mono } from './util.ts';
import { hashFiles, must, runCommand } from '../../test/harness/proc.ts';
import { launchOperator } from '../../test/support/launch.ts';
import { parseMetrics, seriesParts, sumMetric } from '../../test/support/metrics.ts';

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
  /** Resident bytes by what is mapped (/proc/<pid>/smaps): what the RSS is made of. */
  memoryMap(): MemoryMap;
  stop(): Promise<void>;
}

/** Resident memory by mapping, in bytes. */
export interface MemoryMap {
  /** The `node` executable's pages (its code and read-only data, shared with any other node process). */
  nodeBinary: number;
  /** Other files mapped: shared libraries, ICU data. */
  otherFiles: number;
  /** Anonymous memory: the V8 heap, code V8 compiled, malloc, thread stacks. */
  anonymous: number;
}

/** Sums the Rss of each mapping of /proc/<pid>/smaps by kind. */
export function memoryMapOf(smaps: string, executable: string): MemoryMap {
  const out: MemoryMap = { nodeBinary: 0, otherFiles: 0, anonymous: 0 };
  let kind: keyof MemoryMap = 'anonymous';
  for (const line of smaps.split('\n')) {
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (header) {
      const path = header[1] ?? '';
      kind = path === executable ? 'nodeBinary' : path.startsWith('/') ? 'otherFiles' : 'anonymous';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) out[kind] += Number(rss[1]) * 1024;
  }
  return out;
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
 * The operator as the image runs it: the JavaScript tsc emits (buildOperator). Node's type stripping of
 * src/*.ts costs ~25 MB of resident memory on its own. What-if preloads patch the TypeScript sources, so with
 * them the sources run (the results say which: `operatorEntry`).
 */
export function operatorEntry(preloads: string[]): string {
  if (preloads.length) return 'src/main.ts';
  if (builtEntry === undefined) throw new Error('operatorEntry: call buildOperator() first');
  return builtEntry;
}

let builtEntry: string | undefined;

/** What the build reads: the sources and the compiler settings. */
function buildInputsHash(): string {
  const files = ['tsconfig.json', 'tsconfig.build.json', ...globSync('src/**/*.ts', { cwd: repoRoot })];
  return hashFiles(repoRoot, files).digest('hex').slice(0, 16);
}

/** Builds of other sources, a day old: no benchmark run still uses them. */
function pruneOldBuilds(root: string, keep: string): void {
  const dayAgo = Date.now() - 24 * 3600_000;
  for (const name of readdirSync(root)) {
    const dir = join(root, name);
    if (name !== keep && statSync(dir).mtimeMs < dayAgo) rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Compiles src/ (tsc, as the Dockerfile's build stage does) into .build/<hash of the sources>/, once per
 * version of the sources. Not into dist/: benchmark runs started side by side (npm test runs the bench smoke
 * tests two at a time) would rewrite dist/ while another's operator loads it. A build goes to a directory of
 * its own and is renamed into place whole; a build that loses the rename to an identical one is dropped.
 */
export async function buildOperator(): Promise<string> {
  const hash = buildInputsHash();
  const root = join(repoRoot, '.build');
  const final = join(root, hash);
  const entry = relative(repoRoot, join(final, 'src/main.js'));
  if (!existsSync(join(repoRoot, entry))) {
    mkdirSync(root, { recursive: true });
    const tmp = mkdtempSync(join(root, 'tmp-'));
    try {
      must(await runCommand(join(repoRoot, 'node_modules/.bin/tsc'), ['-p', join(repoRoot, 'tsconfig.build.json'), '--outDir', tmp]), 'tsc -p tsconfig.build.json');
      try {
        renameSync(tmp, final);
      } catch (e) {
        // Another run built the same sources first: theirs is identical and may be running; keep it.
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    pruneOldBuilds(root, hash);
  }
  builtEntry = entry;
  return entry;
}

export async function startOperator(opts: OperatorOpts): Promise<OperatorProc> {
  const logFile = join(opts.logDir, `operator-${opts.name}.log`);
  const startedAt = mono();
  const op = await launchOperator({
    kubeconfig: opts.kubeconfig,
    namespaces: opts.namespaces,
    logFile,
    entry: operatorEntry(opts.preloads ?? []),
    nodeArgs: [
      ...(opts.preloads ?? []).flatMap((p) => ['--import', p]),
      ...(opts.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProfDir}`, `--cpu-prof-name=operator-${opts.name}.cpuprofile`] : []),
    ],
    env: opts.env,
    logLevel: process.env.BENCH_LOG_LEVEL,
    readyTimeoutMs: 120_000,
  });
  const readyAt = mono();
  const pid = op.proc.pid;
  return {
    pid,
    logFile,
    startedAt,
    readyAt,
    async scrape() {
      const text = await (await fetch(op.metricsUrl)).text();
      return { series: parseMetrics(text), at: mono() };
    },
    logLines(text: string) {
      return readFileSync(logFile, 'utf8').split('\n').filter((l) => l.includes(text)).length;
    },
    memory() {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
      return { rss: kb('VmRSS'), peak: kb('VmHWM') };
    },
    memoryMap() {
      return memoryMapOf(readFileSync(`/proc/${pid}/smaps`, 'utf8'), readlinkSync(`/proc/${pid}/exe`));
    },
    // SIGTERM: the operator stops heartbeats, closes connections and exits 0 (and writes its CPU profile).
    stop: async () => { await op.stop('SIGTERM', 20_000); },
  };
}

/** Sum of a metric over the series whose labels include `labels`. */
export function metric(s: Sample, name: string, labels: Record<string, string> = {}): number {
  return sumMetric(s.series, name, labels);
}

/** Per-label breakdown of a counter's increase between two samples, e.g. writes by resource. */
export function deltaBy(a: Sample, b: Sample, name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of b.series) {
    if (!k.startsWith(`${name}{`)) continue;
    const key = seriesParts(k).labels[label] ?? '';
    const d = v - (a.series.get(k) ?? 0);
    if (d) out[key] = (out[key] ?? 0) + d;
  }
  return out;
}

export function delta(a: Sample, b: Sample, name: string, labels: Record<string, string> = {}): number {
  return metric(b, name, labels) - metric(a, name, labels);
}

/** The mean, in ms, of what a `*_seconds` histogram observed between two samples, and how many (NaN if none). */
export function histogramMeanMs(a: Sample, b: Sample, name: string, labels: Record<string, string> = {}): { meanMs: number; count: number } {
  const count = delta(a, b, `${name}_count`, labels);
  return { meanMs: count ? (delta(a, b, `${name}_sum`, labels) / count) * 1000 : NaN, count };
}
