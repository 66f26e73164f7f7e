// The probes that prove the loop (docs/architecture.md, "Postgres"): every statement carries one token on a
// private channel; hearing it back proves both connections work. Pure: times are monotonic ms, passed in.

export interface Probe {
  token: string;
  sentAt: number;
  /** When its statement completed (0 while in flight). */
  committedAt: number;
}

/** Which connection an overdue probe convicts. */
export type Overdue = 'sender' | 'listener' | undefined;

export class ProbeTracker {
  #probes: Probe[] = [];
  #seq = 0;

  /** The number of the latest probe sent (0: none yet): a failure recorded now is cleared only by a later one. */
  get seq(): number {
    return this.#seq;
  }

  /** A new probe for the statement being sent at `now`. */
  send(now: number): Probe {
    const p: Probe = { token: String(++this.#seq), sentAt: now, committedAt: 0 };
    this.#probes.push(p);
    return p;
  }

  /** Its statement failed: nothing will come back for it. */
  drop(p: Probe): void {
    this.#probes = this.#probes.filter((x) => x !== p);
  }

  /** A token heard back: its probe (undefined: not ours, or from before a reset). Notifications arrive in
   * commit order, so it settles every earlier probe too. */
  heard(token: string): Probe | undefined {
    const i = this.#probes.findIndex((p) => p.token === token);
    if (i < 0) return undefined;
    const p = this.#probes[i];
    this.#probes = this.#probes.slice(i + 1);
    return p;
  }

  /** A connection was lost or replaced: probes in flight prove nothing any more. */
  reset(): void {
    this.#probes = [];
  }

  /**
   * The oldest probe, if overdue at `now`: still in flight after timeoutMs → the sender is stuck; committed
   * but not heard within timeoutMs of its commit → the listener is deaf.
   */
  overdue(now: number, timeoutMs: number): Overdue {
    const p = this.#probes[0];
    if (!p) return undefined;
    if (p.committedAt === 0) return now - p.sentAt >= timeoutMs ? 'sender' : undefined;
    return now - p.committedAt >= timeoutMs ? 'listener' : undefined;
  }

  /** When the oldest probe becomes overdue (monotonic ms), if there is one. */
  deadline(timeoutMs: number): number | undefined {
    const p = this.#probes[0];
    return p ? (p.committedAt || p.sentAt) + timeoutMs : undefined;
  }
}
