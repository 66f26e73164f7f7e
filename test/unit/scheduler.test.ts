// scheduler.ts: what goes into the next statement, and when — tables on a hand-moved wall clock.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HeartbeatScheduler, validChannel, validPayload, type Link } from '../../src/postgres/scheduler.ts';

const T0 = 1_000_000; // a multiple of every interval below
const up: Link = { ready: true, listening: true };
const probe = { channel: 'pgco_probe_x', token: '1' };
const names = (...n: string[]) => new Set(n);

function listeningScheduler() {
  const s = new HeartbeatScheduler({ coalesceMs: 10, livenessIntervalMs: 5000 });
  s.listening(T0);
  s.take(T0, true, probe); // the announcement on becoming Listening
  return s;
}
const sent = (s: HeartbeatScheduler, now: number) => s.take(now, true, probe).payloads.slice(0, -1);

describe('HeartbeatScheduler', () => {
  test('an announcer with a side signer: the names it sends, signed, on the side channel, before the bare names; not counted as names', () => {
    const s = listeningScheduler();
    const signed: [string[], number][] = [];
    const side = { channel: 'c_side', sign: (n: readonly string[], now: number) => { signed.push([[...n], now]); return [`signed:${n.join(',')}`]; } };
    s.set('a', { channel: 'c', intervalMs: 1000, names: names('a@h'), side }, T0 + 100, true);
    s.set('a', { channel: 'c', intervalMs: 1000, names: names('a@h', 'b@h'), side }, T0 + 105, true);
    const fresh = s.take(T0 + 110, true, probe);
    assert.deepEqual([fresh.channels, fresh.payloads, fresh.names], [['c_side', 'c', 'c', probe.channel], ['signed:a@h,b@h', 'a@h', 'b@h', '1'], 2]);
    assert.ok(s.due(T0 + 1000, up));
    assert.deepEqual(sent(s, T0 + 1000), ['signed:a@h,b@h', 'a@h', 'b@h'], 'every heartbeat');
    assert.deepEqual(signed.map(([, now]) => now), [T0 + 110, T0 + 1000], 'signed at the time of sending');
  });

  test('a new name is due within coalesceMs; a burst of them shares one statement', () => {
    const s = listeningScheduler();
    s.set('a', { channel: 'c', intervalMs: 1000, names: names('a@h') }, T0 + 100, true);
    s.set('b', { channel: 'c', intervalMs: 1000, names: names('b@h') }, T0 + 105, true);
    assert.equal(s.due(T0 + 107, up), false, 'not before the first name has waited coalesceMs');
    assert.equal(s.due(T0 + 110, up), true);
    assert.deepEqual(sent(s, T0 + 110), ['a@h', 'b@h']);
    assert.equal(s.dueNow(T0 + 111), false);
  });

  test('names already announced are not repeated by an update; a channel change announces all again', () => {
    const s = listeningScheduler();
    s.set('a', { channel: 'c', intervalMs: 1000, names: names('a@h') }, T0 + 100, true);
    sent(s, T0 + 110);
    s.set('a', { channel: 'c', intervalMs: 1000, names: names('a@h', 'b@h') }, T0 + 200, true);
    assert.deepEqual(sent(s, T0 + 210), ['b@h']);
    s.set('a', { channel: 'd', intervalMs: 1000, names: names('a@h', 'b@h') }, T0 + 300, true);
    assert.deepEqual(sent(s, T0 + 310), ['a@h', 'b@h']);
  });

  test('heartbeats fire at wall-clock multiples; announcers with dividing intervals fire together', () => {
    const s = listeningScheduler();
    s.set('fast', { channel: 'a', intervalMs: 1000, names: names('f@h') }, T0 + 1, true);
    s.set('slow', { channel: 'b', intervalMs: 2000, names: names('s@h') }, T0 + 1, true);
    sent(s, T0 + 11);
    const rows: [number, string[]][] = [];
    for (let t = T0 + 1000; t <= T0 + 4000; t += 1000) {
      assert.equal(s.wakeAt(t - 500, up), t, `next wake before ${t}`);
      assert.equal(s.due(t, up), true);
      rows.push([t - T0, sent(s, t)]);
    }
    assert.deepEqual(rows, [[1000, ['f@h']], [2000, ['f@h', 's@h']], [3000, ['f@h']], [4000, ['f@h', 's@h']]]);
  });

  test('one payload per distinct channel and name; the probe goes last and is not a name', () => {
    const s = listeningScheduler();
    s.set('a', { channel: 'c', intervalMs: 1000, names: names('x@h') }, T0 + 1, true);
    s.set('b', { channel: 'c', intervalMs: 1000, names: names('x@h', 'y@h') }, T0 + 1, true);
    const b = s.take(T0 + 11, true, probe);
    assert.deepEqual([b.channels, b.payloads, b.names], [['c', 'c', 'pgco_probe_x'], ['x@h', 'y@h', '1'], 2]);
  });

  const cases: { name: string; link: Link; want: boolean }[] = [
    { name: 'not ready: nothing is sent', link: { ready: false, listening: false }, want: false },
    { name: 'ready, not listening: the liveness probe only', link: { ready: true, listening: false }, want: true },
  ];
  for (const c of cases) {
    test(`liveness: ${c.name}`, () => {
      const s = new HeartbeatScheduler({ coalesceMs: 10, livenessIntervalMs: 5000 });
      s.set('a', { channel: 'c', intervalMs: 1000, names: names('a@h') }, T0, false);
      assert.equal(s.due(T0 + 5000, c.link), c.want);
      if (c.want) assert.deepEqual(s.take(T0 + 5000, false, probe).payloads, ['1'], 'no announcement while not listening');
    });
  }

  test('the liveness deadline moves to the next wall-clock multiple after every statement', () => {
    const s = listeningScheduler();
    assert.equal(s.wakeAt(T0 + 1, up), T0 + 5000);
    s.take(T0 + 6000, true, probe);
    assert.equal(s.wakeAt(T0 + 6001, up), T0 + 10_000);
  });

  test('not ready: never wakes; becoming Listening makes every name due at once', () => {
    const s = new HeartbeatScheduler({ coalesceMs: 10, livenessIntervalMs: 5000 });
    s.set('a', { channel: 'c', intervalMs: 60_000, names: names('a@h', 'b@h') }, T0, false);
    assert.equal(s.wakeAt(T0, { ready: false, listening: false }), Infinity);
    s.listening(T0 + 1234);
    assert.equal(s.dueNow(T0 + 1234), true);
    assert.deepEqual(sent(s, T0 + 1234), ['a@h', 'b@h']);
  });

  test('a wall clock stepped back realigns instead of waiting out the jump', () => {
    const s = listeningScheduler();
    s.set('a', { channel: 'c', intervalMs: 1000, names: names('a@h') }, T0 + 1, true);
    sent(s, T0 + 11);
    assert.equal(s.wakeAt(T0 - 60_000 + 300, up), T0 - 60_000 + 1000);
  });

  test('a removed announcer stops', () => {
    const s = listeningScheduler();
    s.set('a', { channel: 'c', intervalMs: 1000, names: names('a@h') }, T0 + 1, true);
    sent(s, T0 + 11);
    s.set('a', null, T0 + 20, true);
    assert.equal(s.due(T0 + 1000, up), false);
  });

  test('what pg_notify can carry', () => {
    assert.deepEqual(['', 'a\0b', 'x'.repeat(64), 'é'.repeat(31), 'chat'].map(validChannel), [false, false, false, true, true]);
    assert.deepEqual(['', 'a\0b', 'x'.repeat(8000), 'x'.repeat(7999)].map(validPayload), [false, false, false, true]);
  });
});
