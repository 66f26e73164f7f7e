// liveness.ts: which connection an overdue probe convicts, and what hearing a token settles.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deadline, heard, overdue, type Probe } from '../../src/postgres/liveness.ts';

const inFlight = (token: string, sentAt: number): Probe => ({ token, sentAt, committedAt: 0 });
const committed = (token: string, sentAt: number, committedAt: number): Probe => ({ token, sentAt, committedAt });

test('overdue: in flight too long convicts the sender; committed and unheard convicts the listener', () => {
  const cases: [string, Probe[], number, 'sender' | 'listener' | undefined][] = [
    ['nothing pending (none sent, all heard, its statement failed, or reset by a reconnect)', [], 10_000, undefined],
    ['in flight, within the timeout', [inFlight('1', 0)], 2_999, undefined],
    ['in flight, at the timeout', [inFlight('1', 0)], 3_000, 'sender'],
    ['committed, unheard within the timeout of the commit', [committed('1', 0, 1_000)], 3_999, undefined],
    ['committed, unheard at the timeout of the commit', [committed('1', 0, 1_000)], 4_000, 'listener'],
    ['only the oldest counts', [committed('1', 0, 1_000), inFlight('2', 0)], 3_500, undefined],
  ];
  for (const [name, probes, now, want] of cases) {
    assert.equal(overdue(probes, now, 3_000), want, name);
  }
});

test('hearing a token settles every earlier probe; an unknown token settles nothing', () => {
  const a = committed('1', 0, 5);
  const b = committed('2', 10, 15);
  const c = inFlight('3', 20);
  assert.equal(heard([a, b, c], 'nope'), undefined);
  const h = heard([a, b, c], b.token);
  assert.deepEqual(h, { probe: b, rest: [c] });
  assert.equal(heard(h?.rest ?? [], a.token), undefined, 'settled by b');
  assert.equal(deadline(h?.rest ?? [], 3_000), c.sentAt + 3_000, 'in flight: from its sending');
  assert.equal(deadline([b, c], 3_000), b.committedAt + 3_000, 'committed: from its commit');
  assert.equal(deadline([], 3_000), undefined);
});
