// Capped exponential backoff with full jitter (so that many retries do not march in step).

/** Uniform in [0, min(max, base * 2^attempt)). */
export function backoffDelay(attempt: number, opts: { baseMs: number; maxMs: number }, random: () => number = Math.random): number {
  const ceiling = Math.min(opts.maxMs, opts.baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/** backoffDelay with its attempt counter, never below half the base (no hot retry loop). */
export class Backoff {
  #opts: { baseMs: number; maxMs: number };
  #attempt = 0;
  #random: () => number;

  constructor(baseMs: number, maxMs: number, random: () => number = Math.random) {
    this.#opts = { baseMs, maxMs };
    this.#random = random;
  }

  next(): number {
    const d = backoffDelay(this.#attempt, this.#opts, this.#random);
    this.#attempt = Math.min(this.#attempt + 1, 30);
    return Math.max(this.#opts.baseMs / 2, d);
  }

  reset(): void {
    this.#attempt = 0;
  }
}
