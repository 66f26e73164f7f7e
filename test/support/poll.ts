// Polling, the one way tests, the demo and the benchmark wait for something outside their process. Rules:
// a value other than undefined or false ends the wait (and is returned); a throw counts as "not yet" and is
// reported if the time runs out.
import { appendFileSync } from 'node:fs';

/** Set by `npm test`: where a wait that needed more than half its time is recorded (see slowWait). */
const SLOW_WAITS_FILE = process.env.PGCO_SLOW_WAITS;

/**
 * Polls fn until it returns a value other than undefined/false (which waitFor returns), or throws after
 * timeoutMs with message and the last error/value seen.
 */
export async function waitFor<T>(
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  opts: { timeoutMs?: number; intervalMs?: number; message: string },
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const deadline = performance.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) {
        slowWait(opts.message, performance.now() - (deadline - timeoutMs), timeoutMs);
        return v;
      }
      last = v;
    } catch (e) {
      last = e;
    }
    if (performance.now() > deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.message} (last: ${detail})`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 250));
  }
}

/**
 * A wait that passed, but used more than half its time, is a failure on a busier day: `npm test` lists them
 * after the run (CI's log then shows the next flake before it happens).
 */
function slowWait(message: string, tookMs: number, timeoutMs: number): void {
  if (!SLOW_WAITS_FILE || tookMs <= timeoutMs / 2) return;
  try {
    appendFileSync(SLOW_WAITS_FILE, `${JSON.stringify({ message, tookMs: Math.round(tookMs), timeoutMs, file: process.argv[1] ?? '' })}\n`);
  } catch {
    // A report, not a result: never fail a test over it.
  }
}

/**
 * Checks fn every intervalMs for forMs and throws at the first time it does not hold: for "nothing changes
 * while ..." (an observation window is the claim itself, not a wait for something to happen).
 */
export async function holdsFor(fn: () => Promise<boolean> | boolean, opts: { forMs: number; intervalMs?: number; message: string }): Promise<void> {
  const end = performance.now() + opts.forMs;
  while (performance.now() < end) {
    if (!(await fn())) throw new Error(`stopped holding: ${opts.message}`);
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 250));
  }
  if (!(await fn())) throw new Error(`stopped holding: ${opts.message}`);
}


/** For unit tests: a condition inside this process, checked between turns of the event loop (no interval). */
export function eventually(cond: () => boolean, what: string): Promise<true> {
  return waitFor(() => cond(), { message: what, intervalMs: 0, timeoutMs: 5_000 });
}
