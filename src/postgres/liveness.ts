// The probes that prove the loop (docs/architecture.md, "Postgres"): every statement carries one token on a
// private channel; hearing it back proves both connections work. Pure functions over the probes not yet heard
// (oldest first, as phase.ts keeps them); times are monotonic ms, passed in.

export interface Probe {
  readonly token: string;
  readonly sentAt: number;
  /** When its statement completed (0 while in flight). */
  readonly committedAt: number;
}

/** Which connection an overdue probe convicts. */
export type Overdue = 'sender' | 'listener' | undefined;

/** A token heard back: its probe and the probes still pending after it (undefined: not ours, or from before a
 * reset). Notifications arrive in commit order, so it settles every earlier probe too. */
export function heard(probes: readonly Probe[], token: string): { probe: Probe; rest: readonly Probe[] } | undefined {
  const i = probes.findIndex((p) => p.token === token);
  const probe = probes[i];
  return probe && { probe, rest: probes.slice(i + 1) };
}

/**
 * The oldest probe, if overdue at `now`: still in flight after timeoutMs → the sender is stuck; committed
 * but not heard within timeoutMs of its commit → the listener is deaf.
 */
export function overdue(probes: readonly Probe[], now: number, timeoutMs: number): Overdue {
  const p = probes[0];
  if (!p) return undefined;
  if (p.committedAt === 0) return now - p.sentAt >= timeoutMs ? 'sender' : undefined;
  return now - p.committedAt >= timeoutMs ? 'listener' : undefined;
}

/** When the oldest probe becomes overdue (monotonic ms), if there is one. */
export function deadline(probes: readonly Probe[], timeoutMs: number): number | undefined {
  const p = probes[0];
  return p ? (p.committedAt || p.sentAt) + timeoutMs : undefined;
}
