// ProbeTracker: which connection an overdue probe convicts, and what hearing a token settles.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ProbeTracker } from '../../src/postgres/liveness.ts';

test('overdue: in flight too long convicts the sender; committed and unheard convicts the listener', () => {
  const cases: [string, (t: ProbeTracker) => void, number, 'sender' | 'listener' | undefined][] = [
    ['nothing sent', () => {}, 10_000, undefined],
    ['in flight, within the timeout', (t) => t.send(0), 2_999, undefined],
    ['in flight, at the timeout', (t) => t.send(0), 3_000, 'sender'],
    ['committed, heard', (t) => { const p = t.send(0); p.committedAt = 5; t.heard(p.token); }, 10_000, undefined],
    ['committed, unheard within the timeout of the commit', (t) => { t.send(0).committedAt = 1_000; }, 3_999, undefined],
    ['committed, unheard at the timeout of the commit', (t) => { t.send(0).committedAt = 1_000; }, 4_000, 'listener'],
    ['dropped (its statement failed)', (t) => t.drop(t.send(0)), 10_000, undefined],
    ['reset by a reconnect', (t) => { t.send(0); t.reset(); }, 10_000, undefined],
  ];
  for (const [name, setup, now, want] of cases) {
    const t = new ProbeTracker();
    setup(t);
    assert.equal(t.overdue(now, 3_000), want, name);
  }
});

test('hearing a token settles every earlier probe; an unknown token settles nothing', () => {
  const t = new ProbeTracker();
  const a = t.send(0);
  const b = t.send(10);
  const c = t.send(20);
  assert.equal(t.heard('nope'), undefined);
  assert.equal(t.heard(b.token), b);
  assert.equal(t.heard(a.token), undefined, 'settled by b');
  assert.equal(t.deadline(3_000), c.sentAt + 3_000);
  assert.equal(t.seq, 3);
});
