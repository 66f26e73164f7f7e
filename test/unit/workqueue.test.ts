import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkQueue } from '../../src/controller/workqueue.ts';
import { Backoff } from '../../src/core/backoff.ts';

test('a burst of adds for one key coalesces into one run', async () => {
  const q = new WorkQueue();
  const runs: string[] = [];
  for (let i = 0; i < 100; i++) q.add('a');
  q.add('b');
  const done = q.run(2, async (k) => void runs.push(k), () => {});
  await sleep(20);
  q.shutDown();
  await done;
  assert.deepEqual(runs.sort(), ['a', 'b']);
});

test('a key never runs twice at once; an add during a run runs it once more afterwards', async () => {
  const q = new WorkQueue();
  let active = 0;
  let maxActive = 0;
  let runs = 0;
  q.add('k');
  const done = q.run(4, async () => {
    active++;
    maxActive = Math.max(maxActive, active);
    runs++;
    if (runs === 1) for (let i = 0; i < 10; i++) q.add('k');
    await sleep(10);
    active--;
  }, () => {});
  await sleep(60);
  q.shutDown();
  await done;
  assert.equal(maxActive, 1);
  assert.equal(runs, 2);
});

test('failures back off per key, doubling, and success forgets', async () => {
  const q = new WorkQueue({ backoffBaseMs: 10, backoffMaxMs: 1000 });
  const delays: number[] = [];
  for (let i = 0; i < 5; i++) delays.push(q.addRateLimited('x'));
  assert.deepEqual(delays, [10, 20, 40, 80, 160]);
  assert.equal(q.addRateLimited('y'), 10, 'another key has its own backoff');
  q.forget('x');
  assert.equal(q.addRateLimited('x'), 10);
  q.shutDown();
});

test('a failing reconcile is retried after its backoff', async () => {
  const q = new WorkQueue({ backoffBaseMs: 5 });
  let attempts = 0;
  const errors: string[] = [];
  q.add('k');
  const done = q.run(1, async () => {
    attempts++;
    if (attempts < 3) throw new Error(`boom ${attempts}`);
  }, (key, err) => errors.push(`${key}: ${(err as Error).message}`));
  await sleep(100);
  q.shutDown();
  await done;
  assert.equal(attempts, 3);
  assert.deepEqual(errors, ['k: boom 1', 'k: boom 2']);
});

test('addAfter keeps the earliest pending time', async () => {
  const q = new WorkQueue();
  const runs: number[] = [];
  const t0 = Date.now();
  q.addAfter('k', 30);
  q.addAfter('k', 500);
  const done = q.run(1, async () => void runs.push(Date.now() - t0), () => {});
  await sleep(120);
  q.shutDown();
  await done;
  assert.equal(runs.length, 1);
});

test('backoff is capped', () => {
  const b = new Backoff(100, 1000, () => 1);
  const d = Array.from({ length: 8 }, () => b.next());
  assert.deepEqual(d, [100, 200, 400, 800, 1000, 1000, 1000, 1000]);
});
