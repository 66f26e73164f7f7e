// Pure timing helpers for the endpoint.

/** The first multiple of intervalMs strictly after t (wall-clock aligned: every endpoint and every
 * PgCluster with the same interval computes the same boundaries). */
export function nextBoundary(t: number, intervalMs: number): number {
  return (Math.floor(t / intervalMs) + 1) * intervalMs;
}
