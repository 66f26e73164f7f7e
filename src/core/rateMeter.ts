/** Counts events per second: the last complete second (one that ended less than a second ago) or the current
 * one, whichever is higher. Monotonic ms. */
export class RateMeter {
  #start = 0;
  #count = 0;
  #previous = 0;

  hit(now: number): void {
    this.#roll(now);
    this.#count++;
  }

  perSecond(now: number): number {
    this.#roll(now);
    return Math.max(this.#previous, this.#count);
  }

  #roll(now: number): void {
    const elapsed = now - this.#start;
    if (elapsed < 1000) return;
    this.#previous = elapsed < 2000 ? (this.#count * 1000) / elapsed : 0;
    this.#start = now;
    this.#count = 0;
  }
}
