// The work queue on a FakeClock: time moves only when the test says so, so nothing here sleeps.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WorkQueue } from '../../src/controller/workqueue.ts';
import { Backoff } from '../../src/core/backoff.ts';
import { FakeClock } from '../support/fakeClock.ts';
import { eventually as until } from '../support/poll.ts';
import { errorMessage } from '../../src/errors.ts';

test('a burst of adds for one key coalesces into one run', async () => {
  const q = new WorkQueue({ clock: new FakeClock() });
  const runs: string[] = [];
  for (let i = 0; i < 100; i++) q.add('a');
  q.add('b');
  const done = q.run(2, async (k) => void runs.push(k), () => {});
  await until(() => q.pending === 0, 'the queue drained');
  q.shutDown();
  await done;
  assert.deepEqual(runs.sort(), ['a', 'b']);
});

test('a key never runs twice at once; an add during a run runs it once more afterwards', async () => {
  const q = new WorkQueue({ clock: new FakeClock() });
  let active = 0;
  let maxActive = 0;
  let runs = 0;
  let release: () => void = () => {};
  q.add('k');
  const done = q.run(4, async () => {
    active++;
    maxActive = Math.max(maxActive, active);
    runs++;
    if (runs === 1) {
      for (let i = 0; i < 10; i++) q.add('k');
      await new Promise<void>((r) => { release = r; }); // held until the adds are in and the workers idle
    }
    active--;
  }, () => {});
  await until(() => runs === 1 && q.length === 0, 'the first run holds the key');
  release();
  await until(() => q.pending === 0, 'the queue drained');
  q.shutDown();
  await done;
  assert.equal(maxActive, 1);
  assert.equal(runs, 2);
});

test('failures back off per key, doubling, and success forgets', () => {
  const q = new WorkQueue({ backoffBaseMs: 10, backoffMaxMs: 1000, clock: new FakeClock() });
  const delays: number[] = [];
  for (let i = 0; i < 5; i++) delays.push(q.addRateLimited('x'));
  assert.deepEqual(delays, [10, 20, 40, 80, 160]);
  assert.equal(q.addRateLimited('y'), 10, 'another key has its own backoff');
  q.forget('x');
  assert.equal(q.addRateLimited('x'), 10);
  q.shutDown();
});

test('a failing reconcile is retried after its backoff, not before', async () => {
  const clock = new FakeClock();
  const q = new WorkQueue({ backoffBaseMs: 5, clock });
  let attempts = 0;
  const errors: string[] = [];
  q.add('k');
  const done = q.run(1, async () => {
    attempts++;
    if (attempts < 3) throw new Error(`boom ${attempts}`);
  }, (key, err) => errors.push(`${key}: ${errorMessage(err)}`));
  await until(() => attempts === 1 && q.pending === 1, 'first attempt failed and is waiting');
  clock.advance(4);
  await until(() => q.length === 0, 'settled');
  assert.equal(attempts, 1, 'not retried before the 5 ms backoff');
  clock.advance(1);
  await until(() => attempts === 2 && q.pending === 1, 'second attempt');
  clock.advance(10);
  await until(() => attempts === 3 && q.pending === 0, 'third attempt succeeded');
  q.shutDown();
  await done;
  assert.deepEqual(errors, ['k: boom 1', 'k: boom 2']);
});

for (const delays of [[30, 500], [500, 30]]) {
  test(`addAfter ${delays.join(' then ')} ms: the earliest pending time wins, and the key runs once`, async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock });
    const runs: number[] = [];
    for (const d of delays) q.addAfter('k', d);
    const done = q.run(1, async () => void runs.push(clock.monotonic()), () => {});
    clock.advance(29);
    await until(() => q.length === 0, 'settled');
    assert.deepEqual(runs, []);
    clock.advance(1);
    await until(() => runs.length === 1 && q.pending === 0, 'ran at 30 ms');
    clock.advance(1000);
    await until(() => q.pending === 0, 'settled');
    q.shutDown();
    await done;
    assert.deepEqual(runs, [30]);
  });
}

test('backoff is capped', () => {
  const b = new Backoff(100, 1000, () => 1);
  const d = Array.from({ length: 8 }, () => b.next());
  assert.deepEqual(d, [100, 200, 400, 800, 1000, 1000, 1000, 1000]);
});
