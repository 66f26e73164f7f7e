// Capped exponential backoff with full jitter (so that many retries do not march in step).
export class Backoff {
  #base: number;
  #max: number;
  #attempt = 0;
  #random: () => number;

  constructor(baseMs: number, maxMs: number, random: () => number = Math.random) {
    this.#base = baseMs;
    this.#max = maxMs;
    this.#random = random;
  }

  /** The ceiling of the next delay (no jitter), for tests and messages. */
  get ceiling(): number {
    return Math.min(this.#max, this.#base * 2 ** this.#attempt);
  }

  next(): number {
    const ceiling = this.ceiling;
    this.#attempt = Math.min(this.#attempt + 1, 30);
    return Math.max(this.#base / 2, Math.round(this.#random() * ceiling));
  }

  reset(): void {
    this.#attempt = 0;
  }
}
