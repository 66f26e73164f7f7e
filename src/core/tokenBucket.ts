/**
 * A token bucket: `capacity` tokens, one more every `intervalMs`, starting full. Kept as the generic cell rate
 * algorithm's theoretical arrival time, so that it is exact in integer milliseconds. Monotonic ms.
 */
export class TokenBucket {
  readonly #capacity: number;
  readonly #intervalMs: number;
  /** When the bucket would be empty again, had every token taken so far come at the refill rate. */
  #tat = -Infinity;

  constructor(capacity: number, intervalMs: number) {
    this.#capacity = capacity;
    this.#intervalMs = intervalMs;
  }

  /** Takes a token if there is one at `now`. */
  take(now: number): boolean {
    if (this.readyAt(now) > now) return false;
    this.#tat = Math.max(this.#tat, now) + this.#intervalMs;
    return true;
  }

  /** When (monotonic ms) a token is there: `now` when one is. */
  readyAt(now: number): number {
    return Math.max(now, this.#tat - (this.#capacity - 1) * this.#intervalMs);
  }
}
