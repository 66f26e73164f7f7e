// Small helpers shared by the benchmark: timing, statistics, progress output.
import { performance } from 'node:perf_hooks';
import { waitFor } from '../../test/support/poll.ts';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Monotonic milliseconds (performance.now()); all latencies are differences of these. */
export const mono = () => performance.now();

let benchStart = mono();
export function resetClock(): void { benchStart = mono(); }

/** Progress on stderr: the table goes to stdout. */
export function say(msg: string): void {
  process.stderr.write(`[bench ${((mono() - benchStart) / 1000).toFixed(1).padStart(6)}s] ${msg}\n`);
}

export interface Summary {
  n: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentile of sorted values (p in 0..100). */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function summarize(values: number[]): Summary {
  const s = [...values].sort((a, b) => a - b);
  const mean = s.length ? s.reduce((a, b) => a + b, 0) / s.length : NaN;
  return {
    n: s.length,
    min: s[0] ?? NaN,
    p50: percentile(s, 50),
    p90: percentile(s, 90),
    p99: percentile(s, 99),
    max: s[s.length - 1] ?? NaN,
    mean,
  };
}

export { mapLimited as pool } from '../../src/core/limit.ts';

/** Polls fn until it returns a value (see waitFor: not undefined, not false); throws after timeoutMs with `what`. */
export function until<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs: number, intervalMs = 100): Promise<T> {
  return waitFor(fn, { message: what, timeoutMs, intervalMs });
}

export function randomSuffix(): string {
  return Math.random().toString(36).slice(2, 8);
}

/** A deterministic-looking IPv4 in TEST-NET-2 for fake remote nodes. */
export function testNetIp(i: number): string {
  return `198.51.${Math.floor(i / 250) % 250}.${(i % 250) + 1}`;
}

/** Rejects after ms with `what` unless p settles first. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(`timed out after ${(ms / 1000).toFixed(0)} s waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

export const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** A channel name from parts: lower-case, [^a-z0-9_] -> _, at most 63 bytes. */
export function channelName(...parts: string[]): string {
  return parts.join('_').toLowerCase().replace(/[^a-z0-9_]/g, '_').slice(0, 63);
}
