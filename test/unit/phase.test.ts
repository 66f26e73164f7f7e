// phase.ts: every transition of the endpoint's phase machine, one table row each — a state, an event, the
// fields that change and the effects, in order. A check at the end makes sure that every phase × event is a row
// (or is named below as unreachable).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { listenerBehindMessage, NO_ECHO_MESSAGE, senderStuckMessage, type Failure, type Which } from '../../src/postgres/classify.ts';
import type { Probe } from '../../src/postgres/liveness.ts';
import { echoDeadline, initialState, linkOf, step, type Effect, type PhaseEvent, type PhaseState } from '../../src/postgres/phase.ts';
import type { EndpointState } from '../../src/postgres/types.ts';

// ---- times, failures, probes ----------------------------------------------------------------------------

const T0 = 1_000_000; // wall clock at construction
const T1 = T0 + 2_000; // became Listening
const T2 = T0 + 3_000; // failed
const NOW = T0 + 5_000; // the event's wall clock
const M = 5_000; // the event's monotonic clock
const at = { now: NOW, mono: M };

const LOST_L: Failure = { reason: 'Unreachable', message: 'lost the listening connection to Postgres: terminated; reconnecting' };
const LOST_S: Failure = { reason: 'Unreachable', message: 'lost the sending connection to Postgres: terminated; reconnecting' };
const REFUSED_CONN: Failure = { reason: 'Unreachable', message: 'cannot reach the Postgres server (ECONNREFUSED); retrying' };
const AUTH: Failure = { reason: 'AuthenticationFailed', message: 'password authentication failed (SQLSTATE 28P01)' };
const SEND_REFUSED: Failure = { reason: 'Error', message: 'NOTIFY failed: the notification queue is full (SQLSTATE 54000)' };
const NO_ECHO: Failure = { reason: 'NoEcho', message: NO_ECHO_MESSAGE };
const BEHIND: Failure = { reason: 'NoEcho', message: listenerBehindMessage(3) };
const STUCK: Failure = { reason: 'Unreachable', message: senderStuckMessage(3) };

const inFlight = (token: string, sentAt: number): Probe => ({ token, sentAt, committedAt: 0 });
const done = (token: string, sentAt: number, committedAt: number): Probe => ({ token, sentAt, committedAt });

const listeningView = (since: number): EndpointState => ({ phase: 'Listening', since });
const failedView = (f: Failure, since: number): EndpointState => ({ phase: 'Failed', reason: f.reason, message: f.message, since });

// ---- events and effects ----------------------------------------------------------------------------------

const ev = {
  up: (which: Which, again = false): PhaseEvent => ({ type: 'up', which, again, ...at }),
  down: (which: Which, failure: Failure): PhaseEvent => ({ type: 'down', which, failure, ...at }),
  echo: (token: string): PhaseEvent => ({ type: 'echo', token, ...at }),
  tick: (mono: number, lastHeardAt = -Infinity): PhaseEvent => ({ type: 'tick', lastHeardAt, now: NOW, mono }),
  due: (): PhaseEvent => ({ type: 'due', ...at }),
  committed: (token: string): PhaseEvent => ({ type: 'committed', token, ...at }),
  sendFailed: (token: string, refused: Failure | null): PhaseEvent => ({ type: 'sendFailed', token, refused, ...at }),
  close: (): PhaseEvent => ({ type: 'close' }),
};
const send = (token: string, listening: boolean): Effect => ({ kind: 'send', token, sentAt: M, listening });
const emit = (state: EndpointState): Effect => ({ kind: 'emit', state });
const becameListening: Effect[] = [{ kind: 'resetBackoff' }, { kind: 'announceAll' }];

// ---- states ---------------------------------------------------------------------------------------------

/** Connecting: nothing up yet. */
const connecting = initialState({ now: T0, echoTimeoutMs: 3_000 });
/** Connecting, the listener up, the sender not yet. */
const halfUp: PhaseState = { ...connecting, listener: true };
/** Connecting, both up: the first statement (probe 1) in flight. */
const proving: PhaseState = { ...connecting, listener: true, sender: true, probes: [inFlight('1', 1_000)], probeSeq: 1, inFlight: true };
/** ... and committed, its echo not heard yet. */
const provingCommitted: PhaseState = { ...proving, probes: [done('1', 1_000, 1_200)], inFlight: false };
/** Listening since T1; probe 2 (the announcement on becoming Listening) came back; nothing in flight. */
const listening: PhaseState = { ...connecting, view: listeningView(T1), listener: true, sender: true, echoed: true, probeSeq: 2 };
/** Listening, a statement with probe 3 in flight. */
const listeningBusy: PhaseState = { ...listening, probes: [inFlight('3', 4_000)], probeSeq: 3, inFlight: true };
/** ... committed at 4100, its echo not heard yet. */
const listeningCommitted: PhaseState = { ...listeningBusy, probes: [done('3', 4_000, 4_100)], inFlight: false };
/** Failed since T2: the listener was lost while Listening (failure recorded at probe 2). */
const failed: PhaseState = { ...listening, view: failedView(LOST_L, T2), listener: false, echoed: false, failure: LOST_L, failureAtProbe: 2 };
/** ... lost while a statement (probe 3, forgotten with the listener) was in flight on the sender. */
const failedBusy: PhaseState = { ...failed, probeSeq: 3, inFlight: true };
/** ... the listener back: probe 3 (sent after the failure) in flight. */
const failedUp: PhaseState = { ...failed, listener: true, probes: [inFlight('3', 4_000)], probeSeq: 3, inFlight: true };
/** ... committed at 4100, its echo not heard yet. */
const failedUpCommitted: PhaseState = { ...failedUp, probes: [done('3', 4_000, 4_100)], inFlight: false };
/** Failed/NoEcho since T2 (a pooler that never delivers), both up, probe 3 committed and unheard. */
const failedNoEcho: PhaseState = { ...failedUpCommitted, view: failedView(NO_ECHO, T2), failure: NO_ECHO };
/** Failed/Error since T2: statement 4 refused (failure recorded at probe 4) while probe 3 was still unheard. */
const failedRefused: PhaseState = {
  ...listening, view: failedView(SEND_REFUSED, T2), failure: SEND_REFUSED, failureAtProbe: 4, probes: [done('3', 3_000, 3_100)], probeSeq: 4,
};
/** ... both up, the next statement (probe 5) in flight. */
const failedRefusedBusy: PhaseState = { ...failedRefused, probes: [inFlight('5', 4_000)], probeSeq: 5, inFlight: true };

// ---- the table ------------------------------------------------------------------------------------------

interface Row {
  name: string;
  given: PhaseState;
  event: PhaseEvent;
  /** The fields of the next state that differ from `given`. */
  changes: Partial<PhaseState>;
  effects: Effect[];
}

const rows: Row[] = [
  // up
  { name: 'Connecting × up: the listener first; nothing to send without the sender', given: connecting, event: ev.up('listener'),
    changes: { listener: true }, effects: [{ kind: 'wantProbe' }] },
  { name: 'Connecting × up: both up → the first statement goes at once, a probe only (not Listening)', given: halfUp, event: ev.up('sender'),
    changes: { sender: true, probes: [inFlight('1', M)], probeSeq: 1, inFlight: true }, effects: [{ kind: 'wantProbe' }, send('1', false)] },
  { name: 'Failed × up again: onReconnect, a probe to prove the loop; still Failed until it comes back', given: failed, event: ev.up('listener', true),
    changes: { listener: true, probes: [inFlight('3', M)], probeSeq: 3, inFlight: true },
    effects: [{ kind: 'reconnected', which: 'listener' }, { kind: 'wantProbe' }, send('3', false)] },
  { name: 'Failed × up again while a statement is in flight: the probe goes right after it', given: failedBusy, event: ev.up('listener', true),
    changes: { listener: true, again: true }, effects: [{ kind: 'reconnected', which: 'listener' }, { kind: 'wantProbe' }] },

  // down
  { name: 'Connecting × down: the first problem → Failed, since now', given: connecting, event: ev.down('listener', AUTH),
    changes: { view: failedView(AUTH, NOW), failure: AUTH }, effects: [emit(failedView(AUTH, NOW))] },
  { name: 'Connecting × down of the sender: its statement and probe are forgotten', given: proving, event: ev.down('sender', LOST_S),
    changes: { sender: false, inFlight: false, probes: [], failure: LOST_S, failureAtProbe: 1, view: failedView(LOST_S, NOW) },
    effects: [emit(failedView(LOST_S, NOW))] },
  { name: 'Listening × down of the listener → Failed, since now', given: listening, event: ev.down('listener', LOST_L),
    changes: { listener: false, echoed: false, failure: LOST_L, failureAtProbe: 2, view: failedView(LOST_L, NOW) },
    effects: [emit(failedView(LOST_L, NOW))] },
  { name: 'Listening × down of the listener: the statement in flight on the sender stays in flight; its probe proves nothing', given: listeningBusy,
    event: ev.down('listener', LOST_L),
    changes: { listener: false, echoed: false, probes: [], failure: LOST_L, failureAtProbe: 3, view: failedView(LOST_L, NOW) },
    effects: [emit(failedView(LOST_L, NOW))] },
  { name: 'Listening × down of the sender: nothing in flight any more, nothing queued behind it', given: { ...listeningBusy, again: true },
    event: ev.down('sender', LOST_S),
    changes: { sender: false, echoed: false, probes: [], inFlight: false, again: false, failure: LOST_S, failureAtProbe: 3, view: failedView(LOST_S, NOW) },
    effects: [emit(failedView(LOST_S, NOW))] },
  { name: 'Failed × down, same reason, another message → emitted, since kept', given: failed, event: ev.down('listener', REFUSED_CONN),
    changes: { failure: REFUSED_CONN, view: failedView(REFUSED_CONN, T2) }, effects: [emit(failedView(REFUSED_CONN, T2))] },
  { name: 'Failed × down, same reason and message → nothing emitted', given: failed, event: ev.down('listener', LOST_L),
    changes: {}, effects: [] },
  { name: 'Failed × down, another reason → since moves', given: failed, event: ev.down('listener', AUTH),
    changes: { failure: AUTH, view: failedView(AUTH, NOW) }, effects: [emit(failedView(AUTH, NOW))] },

  // echo
  { name: 'Connecting × echo of the first probe → Listening: every name announced at once', given: provingCommitted, event: ev.echo('1'),
    changes: { echoed: true, view: listeningView(NOW), probes: [inFlight('2', M)], probeSeq: 2, inFlight: true },
    effects: [{ kind: 'echoed', rttMs: M - 1_000 }, ...becameListening, send('2', true), emit(listeningView(NOW))] },
  { name: 'Connecting × echo heard before its commit → Listening; the announcement goes right after the statement in flight', given: proving,
    event: ev.echo('1'),
    changes: { echoed: true, view: listeningView(NOW), probes: [], again: true },
    effects: [{ kind: 'echoed', rttMs: M - 1_000 }, ...becameListening, emit(listeningView(NOW))] },
  { name: 'Connecting × echo of a token not pending (from before a reconnect) → nothing', given: proving, event: ev.echo('7'),
    changes: {}, effects: [] },
  { name: 'Connecting × echo while a connection is down: settles the probe, proves nothing', given: { ...halfUp, probes: [done('1', 1_000, 1_200)], probeSeq: 1 },
    event: ev.echo('1'),
    changes: { probes: [] }, effects: [{ kind: 'echoed', rttMs: M - 1_000 }] },
  { name: 'Listening × echo: settles the probe; nothing to emit', given: listeningCommitted, event: ev.echo('3'),
    changes: { probes: [] }, effects: [{ kind: 'echoed', rttMs: M - 4_000 }] },
  { name: 'Listening × echo of a later probe settles every earlier one', given: { ...listeningCommitted, probes: [done('2', 3_000, 3_100), done('3', 4_000, 4_100)] },
    event: ev.echo('3'),
    changes: { probes: [] }, effects: [{ kind: 'echoed', rttMs: M - 4_000 }] },
  { name: 'Failed × echo of a probe sent after the failure → Listening, since now, every name announced', given: failedUpCommitted, event: ev.echo('3'),
    changes: { echoed: true, failure: null, view: listeningView(NOW), probes: [inFlight('4', M)], probeSeq: 4, inFlight: true },
    effects: [{ kind: 'echoed', rttMs: M - 4_000 }, ...becameListening, send('4', true), emit(listeningView(NOW))] },
  { name: 'Failed × echo of a probe sent before the failure: the failure stays', given: failedRefused, event: ev.echo('3'),
    changes: { probes: [] }, effects: [{ kind: 'echoed', rttMs: M - 3_000 }] },

  // tick
  { name: 'Connecting × tick, the probe in flight within the echo timeout → nothing', given: proving, event: ev.tick(3_999),
    changes: {}, effects: [] },
  { name: 'Connecting × tick, the probe in flight for the echo timeout → Failed/Unreachable, the sender reconnects', given: proving, event: ev.tick(4_000),
    changes: { sender: false, inFlight: false, probes: [], failure: STUCK, failureAtProbe: 1, view: failedView(STUCK, NOW) },
    effects: [{ kind: 'reconnect', which: 'sender', failure: STUCK }, emit(failedView(STUCK, NOW))] },
  { name: 'Listening × tick, the committed probe within the echo timeout → nothing', given: listeningCommitted, event: ev.tick(7_099),
    changes: {}, effects: [] },
  { name: 'Listening × tick, the committed probe unheard for the echo timeout, nothing else heard → Failed/NoEcho, the listener reconnects',
    given: listeningCommitted, event: ev.tick(7_100, 4_050),
    changes: { listener: false, echoed: false, probes: [], failure: NO_ECHO, failureAtProbe: 3, view: failedView(NO_ECHO, NOW) },
    effects: [{ kind: 'reconnect', which: 'listener', failure: NO_ECHO }, emit(failedView(NO_ECHO, NOW))] },
  { name: 'Listening × tick, unheard while other notifications arrived since its commit → NoEcho, "behind"', given: listeningCommitted,
    event: ev.tick(7_100, 5_000),
    changes: { listener: false, echoed: false, probes: [], failure: BEHIND, failureAtProbe: 3, view: failedView(BEHIND, NOW) },
    effects: [{ kind: 'reconnect', which: 'listener', failure: BEHIND }, emit(failedView(BEHIND, NOW))] },
  { name: 'Failed × tick, nothing pending → nothing', given: failed, event: ev.tick(100_000),
    changes: {}, effects: [] },
  { name: 'Failed × tick, overdue → NoEcho, since moves (another reason)', given: failedUpCommitted, event: ev.tick(7_100),
    changes: { listener: false, probes: [], failure: NO_ECHO, failureAtProbe: 3, view: failedView(NO_ECHO, NOW) },
    effects: [{ kind: 'reconnect', which: 'listener', failure: NO_ECHO }, emit(failedView(NO_ECHO, NOW))] },
  { name: 'Failed/NoEcho × tick, overdue again (a pooler): the listener reconnects, nothing emitted', given: failedNoEcho, event: ev.tick(7_100),
    changes: { listener: false, probes: [], failureAtProbe: 3 },
    effects: [{ kind: 'reconnect', which: 'listener', failure: NO_ECHO }] },

  // due
  { name: 'Connecting × due, a connection down → nothing', given: halfUp, event: ev.due(),
    changes: {}, effects: [] },
  { name: 'Connecting × due, both up → a statement, a probe only', given: provingCommitted, event: ev.due(),
    changes: { probes: [done('1', 1_000, 1_200), inFlight('2', M)], probeSeq: 2, inFlight: true }, effects: [send('2', false)] },
  { name: 'Listening × due → a statement with announcements and a probe', given: listening, event: ev.due(),
    changes: { probes: [inFlight('3', M)], probeSeq: 3, inFlight: true }, effects: [send('3', true)] },
  { name: 'Listening × due while a statement is in flight → it goes right after', given: listeningBusy, event: ev.due(),
    changes: { again: true }, effects: [] },
  { name: 'Failed × due, both up → a statement, a probe only', given: failedUpCommitted, event: ev.due(),
    changes: { probes: [done('3', 4_000, 4_100), inFlight('4', M)], probeSeq: 4, inFlight: true }, effects: [send('4', false)] },

  // committed
  { name: 'Connecting × committed: the probe now waits for its echo', given: proving, event: ev.committed('1'),
    changes: { inFlight: false, probes: [done('1', 1_000, M)] }, effects: [] },
  { name: 'Listening × committed, something became due meanwhile → the next statement at once', given: { ...listeningBusy, again: true },
    event: ev.committed('3'),
    changes: { again: false, probes: [done('3', 4_000, M), inFlight('4', M)], probeSeq: 4 }, effects: [send('4', true)] },
  { name: 'Failed × committed after the listener was lost: its probe is gone; nothing else', given: failedBusy, event: ev.committed('3'),
    changes: { inFlight: false }, effects: [] },
  { name: 'Failed × committed, something due but the listener down: it waits for both', given: { ...failedBusy, again: true }, event: ev.committed('3'),
    changes: { inFlight: false }, effects: [] },

  // sendFailed
  { name: 'Connecting × sendFailed, refused → Failed, since now', given: proving, event: ev.sendFailed('1', SEND_REFUSED),
    changes: { inFlight: false, probes: [], failure: SEND_REFUSED, failureAtProbe: 1, view: failedView(SEND_REFUSED, NOW) },
    effects: [emit(failedView(SEND_REFUSED, NOW))] },
  { name: 'Listening × sendFailed, refused → Failed/Error; the connections stay up', given: listeningBusy, event: ev.sendFailed('3', SEND_REFUSED),
    changes: { inFlight: false, probes: [], failure: SEND_REFUSED, failureAtProbe: 3, view: failedView(SEND_REFUSED, NOW) },
    effects: [emit(failedView(SEND_REFUSED, NOW))] },
  { name: 'Listening × sendFailed, refused, something due → emitted, then the next statement (a probe only)', given: { ...listeningBusy, again: true },
    event: ev.sendFailed('3', SEND_REFUSED),
    changes: { again: false, probes: [inFlight('4', M)], probeSeq: 4, failure: SEND_REFUSED, failureAtProbe: 3, view: failedView(SEND_REFUSED, NOW) },
    effects: [emit(failedView(SEND_REFUSED, NOW)), send('4', false)] },
  { name: 'Listening × sendFailed, the connection broke → nothing in flight; its down tells the rest', given: listeningBusy, event: ev.sendFailed('3', null),
    changes: { inFlight: false, probes: [] }, effects: [] },
  { name: 'Failed × sendFailed, refused again, same message → nothing emitted', given: failedRefusedBusy, event: ev.sendFailed('5', SEND_REFUSED),
    changes: { inFlight: false, probes: [], failureAtProbe: 5 }, effects: [] },

  // close
  { name: 'Connecting × close', given: connecting, event: ev.close(), changes: { closed: true }, effects: [] },
  { name: 'Listening × close', given: listeningBusy, event: ev.close(), changes: { closed: true }, effects: [] },
  { name: 'Failed × close', given: failed, event: ev.close(), changes: { closed: true }, effects: [] },
];

/** Pairs that cannot happen: a connection reports up only after it was down, and both are up while Listening. */
const unreachable = new Set(['Listening × up']);

describe('phase machine: step(state, event)', () => {
  for (const r of rows) {
    test(r.name, () => {
      assert.deepEqual(step(r.given, r.event), { state: { ...r.given, ...r.changes }, effects: r.effects });
    });
  }

  test('closed: every event is ignored', () => {
    const closed = { ...listeningBusy, closed: true };
    for (const e of [ev.up('sender', true), ev.down('listener', LOST_L), ev.echo('3'), ev.tick(100_000), ev.due(), ev.committed('3'), ev.sendFailed('3', SEND_REFUSED), ev.close()]) {
      assert.deepEqual(step(closed, e), { state: closed, effects: [] }, e.type);
    }
  });

  test('every phase × event is a row of the table', () => {
    const types: PhaseEvent['type'][] = ['up', 'down', 'echo', 'tick', 'due', 'committed', 'sendFailed', 'close'];
    const covered = new Set(rows.map((r) => `${r.given.view.phase} × ${r.event.type}`));
    const missing = ['Connecting', 'Listening', 'Failed'].flatMap((p) => types.map((t) => `${p} × ${t}`)).filter((k) => !covered.has(k) && !unreachable.has(k));
    assert.deepEqual(missing, []);
  });
});

describe('phase machine: the rest', () => {
  test('initial state: Connecting since construction; an unusable URL is Failed for good', () => {
    assert.deepEqual(connecting.view, { phase: 'Connecting', since: T0 });
    const invalid = initialState({ now: T0, echoTimeoutMs: 3_000, failure: { reason: 'InvalidURL', message: 'multiple hosts are not supported' } });
    assert.deepEqual(invalid.view, { phase: 'Failed', reason: 'InvalidURL', message: 'multiple hosts are not supported', since: T0 });
  });

  test('what the scheduler sees, and when the oldest probe becomes overdue', () => {
    assert.deepEqual([connecting, halfUp, proving, listening, failedUp].map(linkOf), [
      { ready: false, listening: false }, { ready: false, listening: false }, { ready: true, listening: false },
      { ready: true, listening: true }, { ready: true, listening: false },
    ]);
    assert.deepEqual([connecting, proving, listeningCommitted].map(echoDeadline), [undefined, 1_000 + 3_000, 4_100 + 3_000]);
  });

  test('a whole life: Connecting → Listening → Failed (sender lost) → Listening again, `since` moving at each change', () => {
    let s = connecting;
    const emitted: EndpointState[] = [];
    const run = (e: PhaseEvent) => {
      const r = step(s, e);
      s = r.state;
      for (const fx of r.effects) if (fx.kind === 'emit') emitted.push(fx.state);
      return r.effects.map((fx) => fx.kind);
    };
    const t = (now: number, mono: number) => ({ now, mono });
    run({ type: 'up', which: 'listener', again: false, ...t(T0 + 10, 10) });
    assert.deepEqual(run({ type: 'up', which: 'sender', again: false, ...t(T0 + 20, 20) }), ['wantProbe', 'send']);
    run({ type: 'committed', token: '1', ...t(T0 + 30, 30) });
    assert.deepEqual(run({ type: 'echo', token: '1', ...t(T0 + 40, 40) }), ['echoed', 'resetBackoff', 'announceAll', 'send', 'emit']);
    run({ type: 'committed', token: '2', ...t(T0 + 50, 50) });
    run({ type: 'down', which: 'sender', failure: LOST_S, ...t(T0 + 60, 60) });
    run({ type: 'up', which: 'sender', again: true, ...t(T0 + 70, 70) });
    run({ type: 'committed', token: '3', ...t(T0 + 80, 80) });
    run({ type: 'echo', token: '3', ...t(T0 + 90, 90) });
    assert.deepEqual(emitted, [listeningView(T0 + 40), failedView(LOST_S, T0 + 60), listeningView(T0 + 90)]);
    assert.equal(s.view.phase, 'Listening');
    assert.deepEqual(s.probes, [inFlight('4', 90)], 'the announcement on becoming Listening again is in flight');
  });
});
