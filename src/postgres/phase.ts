// PgEndpoint's phase as a pure state machine (docs/architecture.md, "Postgres"): step(state, event) returns the
// next state and the effects endpoint.ts carries out, in order. Plain data in and out; no I/O, no clock: every
// event but close brings its time (`now` wall-clock ms, for `since`; `mono` monotonic ms, for the probes).
//
// Listening: both connections up, a probe sent since the last (re)connect of either heard back, and no failure
// recorded; a failure is cleared only by the echo of a probe sent after it. Failed (the latest reason and
// message) from the first problem until Listening again, never back to Connecting. `since` moves only when
// phase or reason changes; `emit` on every change of phase, reason or message. Becoming Listening announces
// every current name at once. At most one statement in flight, each with a probe: what becomes due meanwhile
// goes out right after it. A probe overdue at a tick convicts one connection, which is reconnected.
import { listenerBehindMessage, NO_ECHO_MESSAGE, senderStuckMessage, type Failure, type Which } from './classify.ts';
import { deadline, heard, overdue, type Probe } from './liveness.ts';
import type { Link } from './scheduler.ts';
import type { EndpointState } from './types.ts';

export interface PhaseState {
  /** What PgEndpoint.state() shows. */
  readonly view: EndpointState;
  /** Each connection is up: connected, a primary, its LISTENs done. */
  readonly listener: boolean;
  readonly sender: boolean;
  /** A probe sent since the last (re)connect of either connection was heard back. */
  readonly echoed: boolean;
  /** The latest problem, and probeSeq when it was recorded: only the echo of a later probe clears it. */
  readonly failure: Failure | null;
  readonly failureAtProbe: number;
  /** Probes not yet heard, oldest first; the number of the latest one sent (its token). */
  readonly probes: readonly Probe[];
  readonly probeSeq: number;
  /** A statement is in flight; `again`: another goes right after it. */
  readonly inFlight: boolean;
  readonly again: boolean;
  readonly closed: boolean;
  /** How long a probe may take, from its sending to its commit and from its commit to its echo. */
  readonly echoTimeoutMs: number;
}

export type PhaseEvent =
  /** A connection became usable; `again`: not for the first time. */
  | { type: 'up'; which: Which; again: boolean; now: number; mono: number }
  /** A connection broke, failed to connect, or had a LISTEN refused; it has ended and reconnects by itself. */
  | { type: 'down'; which: Which; failure: Failure; now: number; mono: number }
  /** A payload heard on the private probe channel. */
  | { type: 'echo'; token: string; now: number; mono: number }
  /** The wake-up timer fired: the oldest probe may be overdue (the echo timeout). `lastHeardAt`: when the
   * listener last received any notification (mono), which tells a backlog from a deaf listener. */
  | { type: 'tick'; lastHeardAt: number; now: number; mono: number }
  /** The scheduler has something to send. */
  | { type: 'due'; now: number; mono: number }
  /** The statement that carried probe `token` completed. */
  | { type: 'committed'; token: string; now: number; mono: number }
  /** It failed: `refused` by the server (the connection stays usable), or null: the connection broke (its
   * `down` follows from the connection). */
  | { type: 'sendFailed'; token: string; refused: Failure | null; now: number; mono: number }
  | { type: 'close' };

export type Effect =
  /** hooks.onReconnect. */
  | { kind: 'reconnected'; which: Which }
  /** Tell the scheduler that the next statement should go out at once (a connection came up: prove the loop). */
  | { kind: 'wantProbe' }
  /** Send the next statement now: what the scheduler has (announcements only if `listening`) plus this probe. */
  | { kind: 'send'; token: string; sentAt: number; listening: boolean }
  /** hooks.onEcho. */
  | { kind: 'echoed'; rttMs: number }
  /** End that connection and reconnect it with backoff: an overdue probe convicted it. */
  | { kind: 'reconnect'; which: Which; failure: Failure }
  /** Became Listening: both connections' backoff starts afresh at their next loss. */
  | { kind: 'resetBackoff' }
  /** Became Listening: announce every current name now, realign the heartbeats. */
  | { kind: 'announceAll' }
  /** Call the onState callbacks. */
  | { kind: 'emit'; state: EndpointState };

export interface Step {
  state: PhaseState;
  effects: Effect[];
}

/** Connecting since `now`; with `failure` (an unusable URL) Failed for good: no connection will report. */
export function initialState(o: { now: number; echoTimeoutMs: number; failure?: Failure }): PhaseState {
  const f = o.failure;
  return {
    view: f ? { phase: 'Failed', reason: f.reason, message: f.message, since: o.now } : { phase: 'Connecting', since: o.now },
    listener: false, sender: false, echoed: false, failure: f ?? null, failureAtProbe: 0,
    probes: [], probeSeq: 0, inFlight: false, again: false, closed: false, echoTimeoutMs: o.echoTimeoutMs,
  };
}

/** The connections as the scheduler sees them. */
export function linkOf(s: PhaseState): Link {
  return { ready: s.listener && s.sender, listening: s.view.phase === 'Listening' };
}

/** When the oldest probe becomes overdue (monotonic ms), if there is one. */
export function echoDeadline(s: PhaseState): number | undefined {
  return deadline(s.probes, s.echoTimeoutMs);
}

export function step(s: PhaseState, e: PhaseEvent): Step {
  const fx: Effect[] = [];
  if (s.closed) return { state: s, effects: fx };
  switch (e.type) {
    case 'close':
      return { state: { ...s, closed: true }, effects: fx };
    case 'up': {
      if (e.again) fx.push({ kind: 'reconnected', which: e.which });
      fx.push({ kind: 'wantProbe' });
      // A fresh connection invalidates earlier echoes: prove the loop again.
      const t = flush({ ...s, [e.which]: true, echoed: false, probes: [] }, e.mono, fx);
      return { state: settle(t, e.now, e.mono, fx), effects: fx };
    }
    case 'down':
      return { state: settle(lose(s, e.which, e.failure), e.now, e.mono, fx), effects: fx };
    case 'echo': {
      const h = heard(s.probes, e.token);
      if (!h) return { state: s, effects: fx }; // not ours, or from before a reconnect
      fx.push({ kind: 'echoed', rttMs: e.mono - h.probe.sentAt });
      let t: PhaseState = { ...s, probes: h.rest };
      if (t.listener && t.sender) {
        t = { ...t, echoed: true, failure: Number(e.token) > t.failureAtProbe ? null : t.failure };
        t = settle(t, e.now, e.mono, fx);
      }
      return { state: t, effects: fx };
    }
    case 'tick': {
      const which = overdue(s.probes, e.mono, s.echoTimeoutMs);
      if (!which) return { state: s, effects: fx };
      const seconds = s.echoTimeoutMs / 1000;
      // Notifications heard since the probe's commit mean a backlog, not a deaf listener.
      const behind = e.lastHeardAt > (s.probes[0]?.committedAt ?? Infinity);
      const failure: Failure = which === 'sender'
        ? { reason: 'Unreachable', message: senderStuckMessage(seconds) }
        : { reason: 'NoEcho', message: behind ? listenerBehindMessage(seconds) : NO_ECHO_MESSAGE };
      fx.push({ kind: 'reconnect', which, failure });
      return { state: settle(lose(s, which, failure), e.now, e.mono, fx), effects: fx };
    }
    case 'due':
      return { state: flush(s, e.mono, fx), effects: fx };
    case 'committed': {
      const probes = s.probes.map((p) => (p.token === e.token ? { ...p, committedAt: e.mono } : p));
      const t = { ...s, inFlight: false, probes };
      return { state: t.again ? flush(t, e.mono, fx) : t, effects: fx };
    }
    case 'sendFailed': {
      let t: PhaseState = { ...s, inFlight: false, probes: s.probes.filter((p) => p.token !== e.token) };
      if (e.refused) t = settle(recordFailure(t, e.refused), e.now, e.mono, fx);
      // Otherwise the connection broke: its `down` follows.
      return { state: t.again ? flush(t, e.mono, fx) : t, effects: fx };
    }
  }
}

/** Connection `which` is gone: what was in flight on the sender and every probe prove nothing any more. */
function lose(s: PhaseState, which: Which, f: Failure): PhaseState {
  const sending = which === 'sender' ? { inFlight: false, again: false } : {};
  return recordFailure({ ...s, [which]: false, ...sending, echoed: false, probes: [] }, f);
}

function recordFailure(s: PhaseState, f: Failure): PhaseState {
  return { ...s, failure: f, failureAtProbe: s.probeSeq };
}

/** Sends the next statement (with a new probe) if both connections are up; one in flight → right after it. */
function flush(s: PhaseState, mono: number, fx: Effect[]): PhaseState {
  if (!s.listener || !s.sender) return s;
  if (s.inFlight) return s.again ? s : { ...s, again: true };
  const token = String(s.probeSeq + 1);
  fx.push({ kind: 'send', token, sentAt: mono, listening: s.view.phase === 'Listening' });
  const probe: Probe = { token, sentAt: mono, committedAt: 0 };
  return { ...s, probeSeq: s.probeSeq + 1, probes: [...s.probes, probe], inFlight: true, again: false };
}

/** The phase the flags call for; on a change, the new view (with the `since` rule) and its effects. */
function settle(s: PhaseState, now: number, mono: number, fx: Effect[]): PhaseState {
  const prev = s.view;
  const next: EndpointState = s.listener && s.sender && s.echoed && s.failure === null
    ? { phase: 'Listening', since: 0 }
    : s.failure ? { phase: 'Failed', reason: s.failure.reason, message: s.failure.message, since: 0 }
    : { phase: 'Connecting', since: 0 };
  if (stateKey(prev, true) === stateKey(next, true)) return s;
  next.since = stateKey(prev, false) === stateKey(next, false) ? prev.since : now;
  let t: PhaseState = { ...s, view: next };
  if (next.phase === 'Listening') {
    fx.push({ kind: 'resetBackoff' }, { kind: 'announceAll' });
    t = flush(t, mono, fx);
  }
  fx.push({ kind: 'emit', state: next });
  return t;
}

/** Identity of a state for change detection: phase and reason (and, withMessage, the message). */
function stateKey(s: EndpointState, withMessage: boolean): string {
  if (s.phase !== 'Failed') return s.phase;
  return withMessage ? `Failed\0${s.reason}\0${s.message}` : `Failed\0${s.reason}`;
}
