// The one clock (docs/architecture.md, "Time"): every component that reads the time or sets a timer takes a
// Clock, so that tests drive time by hand instead of sleeping.

export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Wall clock, ms since the epoch: what is written (status, Events, Leases) and what heartbeats align to. */
  now(): number;
  /** Monotonic ms (performance.now()): every duration is a difference of these, immune to NTP steps. */
  monotonic(): number;
  /** Calls fn after ms (never holding the process open). */
  setTimer(fn: () => void, ms: number): Timer;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimer: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

/** One reading of both clocks: a reconcile reads the time once and works with this snapshot. */
export interface Instant {
  /** Wall clock, ms since the epoch. */
  wall: number;
  /** Monotonic ms. */
  mono: number;
}

export function instant(clock: Clock): Instant {
  return { wall: clock.now(), mono: clock.monotonic() };
}
