// A Clock that moves only when a test says so: timers fire from advance(), in order of due time.
import type { Clock, Timer } from '../../src/core/clock.ts';

export class FakeClock implements Clock {
  #now: number;
  #mono = 0;
  #timers: { at: number; seq: number; fn: () => void }[] = [];
  #seq = 0;

  constructor(startMs = Date.UTC(2026, 0, 1)) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  monotonic(): number {
    return this.#mono;
  }

  /** Steps the wall clock alone (NTP, a resumed VM), as a system clock can; monotonic time does not move. */
  stepWall(ms: number): void {
    this.#now += ms;
  }

  setTimer(fn: () => void, ms: number): Timer {
    const entry = { at: this.#mono + Math.max(0, ms), seq: this.#seq++, fn };
    this.#timers.push(entry);
    return { cancel: () => { this.#timers = this.#timers.filter((t) => t !== entry); } };
  }

  /** Timers not yet fired. */
  get pending(): number {
    return this.#timers.length;
  }

  /** Moves time forward by ms, firing each timer that falls due, at its due time. */
  advance(ms: number): void {
    const end = this.#mono + ms;
    for (;;) {
      const due = this.#timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.#timers = this.#timers.filter((t) => t !== due);
      this.#now += due.at - this.#mono;
      this.#mono = due.at;
      due.fn();
    }
    this.#now += end - this.#mono;
    this.#mono = end;
  }
}
