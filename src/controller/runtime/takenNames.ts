// Output names held by objects the cache cannot see (our create got 409), and until when (monotonic ms) that is
// taken for granted instead of trying the create again.
export type OutputSlot = 'configMap' | 'service';

export class TakenNames {
  #taken = new Map<OutputSlot, { name: string; until: number }>();

  /** The create of output `name` got 409: believe it taken until `until`. */
  mark(output: OutputSlot, name: string, until: number): void {
    this.#taken.set(output, { name, until });
  }

  /** Whether output `name` is believed taken at `now`. */
  has(output: OutputSlot, name: string, now: number): boolean {
    const t = this.#taken.get(output);
    return t !== undefined && t.name === name && now < t.until;
  }

  /**
   * The earliest time a taken name is to be tried again, if any is still ahead of `now`. Past ones are
   * forgotten: the reconcile at that time has tried again (and marked the name again if it is still taken).
   */
  recheckAt(now: number): number | undefined {
    let next: number | undefined;
    for (const [output, t] of this.#taken) {
      if (t.until <= now) this.#taken.delete(output);
      else next = Math.min(next ?? Infinity, t.until);
    }
    return next;
  }
}
