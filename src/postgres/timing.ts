// Pure timing helpers for the endpoint.

/** The first multiple of intervalMs strictly after t (wall-clock aligned: every endpoint and every
 * PgCluster with the same interval computes the same boundaries). */
export function nextBoundary(t: number, intervalMs: number): number {
  return (Math.floor(t / intervalMs) + 1) * intervalMs;
}

/** Capped exponential backoff with full jitter: uniform in [0, min(max, base * 2^attempt)). */
export function backoffDelay(attempt: number, opts: { baseMs: number; maxMs: number }, random: () => number = Math.random): number {
  const ceiling = Math.min(opts.maxMs, opts.baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}
