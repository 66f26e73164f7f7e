// The harness's Teardown (test/harness/teardown.ts): undone newest first, on past a failing step with every
// failure reported, once; a start that fails halfway undoes exactly what it had started.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pidAlive, startOwnedProc, type Proc } from '../harness/proc.ts';
import { Teardown, TeardownError, together } from '../harness/teardown.ts';

/** A Teardown whose steps record their undoing in `undone`. */
function recording(what = 'the thing') {
  const td = new Teardown(what);
  const undone: string[] = [];
  const start = (step: string, fail?: string) => td.push(step, async () => {
    await new Promise((r) => setTimeout(r, 1)); // each undo finishes before the next begins
    undone.push(step);
    if (fail) throw new Error(fail);
  });
  return { td, undone, start };
}

test('run() undoes the steps newest first, each after the one before has finished', async () => {
  const { td, undone, start } = recording();
  for (const s of ['etcd', 'apiserver', 'kwok']) start(s);
  assert.deepEqual(td.steps, ['etcd', 'apiserver', 'kwok']);
  await td.run();
  assert.deepEqual(undone, ['kwok', 'apiserver', 'etcd']);
});

test('a failing step does not stop the others, and every failure is reported by step', async () => {
  const { td, undone, start } = recording('the control plane');
  start('etcd', 'etcd would not die');
  start('apiserver');
  start('kwok', 'kwok hung');
  start('kcm');
  const err = await td.run().then(() => undefined, (e: unknown) => e);
  assert.deepEqual(undone, ['kcm', 'kwok', 'apiserver', 'etcd'], 'all four undone');
  assert.ok(err instanceof TeardownError, `a TeardownError, not ${String(err)}`);
  assert.deepEqual(err.failures.map((f) => f.step), ['kwok', 'etcd'], 'in the order they ran');
  assert.deepEqual(err.errors.map((e) => (e as Error).message), ['kwok hung', 'etcd would not die']);
  assert.match(err.message, /^undoing the control plane: 2 of 4 steps failed:\n {2}kwok: kwok hung\n {2}etcd: etcd would not die$/);
});

test('a step that throws synchronously is a failure like any other', async () => {
  const td = new Teardown('x');
  const undone: string[] = [];
  td.push('a', () => { undone.push('a'); });
  td.push('b', () => { throw new Error('sync'); });
  await assert.rejects(td.run(), /1 of 2 steps failed:\n {2}b: sync/);
  assert.deepEqual(undone, ['a']);
});

test('run() runs once: later calls get the same outcome without undoing anything again', async () => {
  const { td, undone, start } = recording();
  start('a');
  start('b', 'no');
  const first = td.run();
  const second = td.run();
  assert.equal(first, second);
  await assert.rejects(first, TeardownError);
  await assert.rejects(td.run(), TeardownError);
  assert.deepEqual(undone, ['b', 'a']);
});

test('a step registered after the undoing began is refused', async () => {
  const td = new Teardown('the real node');
  await td.run();
  assert.throws(() => td.push('late', () => {}), /the real node: 'late' was registered after the teardown began/);
});

test('unwindOnError: a start that fails halfway undoes exactly what it had started, in reverse, and rethrows', async () => {
  const { td, undone, start } = recording();
  const err = new Error('containerd did not come up');
  const reached: string[] = [];
  await assert.rejects(td.unwindOnError(async () => {
    for (const s of ['lock', 'bridge', 'coredns', 'containerd', 'kubelet']) {
      if (s === 'containerd') throw err;
      reached.push(s);
      start(s);
    }
  }), (e) => e === err);
  assert.deepEqual(reached, ['lock', 'bridge', 'coredns']);
  assert.deepEqual(undone, ['coredns', 'bridge', 'lock'], 'nothing of what never started');
});

test('unwindOnError: a start that succeeds undoes nothing until run()', async () => {
  const { td, undone, start } = recording();
  const v = await td.unwindOnError(async () => { start('a'); start('b'); return 42; });
  assert.equal(v, 42);
  assert.deepEqual(undone, []);
  await td.run();
  assert.deepEqual(undone, ['b', 'a']);
});

test('unwindOnError: when undoing fails too, the error says both and keeps the start error as cause', async () => {
  const { td, undone, start } = recording('the stack');
  const err = new Error('kubelet not Ready');
  const e = await td.unwindOnError(async () => {
    start('a', 'umount: busy');
    start('b');
    throw err;
  }).then(() => undefined, (x: unknown) => x as Error);
  assert.deepEqual(undone, ['b', 'a']);
  assert.equal(e?.cause, err);
  assert.match(e!.message, /^kubelet not Ready\n\(then undoing the stack: 1 of 2 steps failed:\n {2}a: umount: busy\)$/);
});

test('together: runs its undos at once, waits for all, fails with every failure', async () => {
  const order: string[] = [];
  const slow = async () => { await new Promise((r) => setTimeout(r, 20)); order.push('slow'); throw new Error('pg'); };
  const fast = async () => { order.push('fast'); };
  const failing = () => { order.push('sync'); throw new Error('kube'); };
  const e = await together(slow, fast, failing)().then(() => undefined, (x: unknown) => x);
  assert.deepEqual(order, ['fast', 'sync', 'slow'], 'started at once, all awaited');
  assert.ok(e instanceof AggregateError);
  assert.deepEqual(e.errors.map((x) => (x as Error).message), ['pg', 'kube']);
  await assert.rejects(together(failing)(), /^Error: kube$/);
  await together(fast, fast)();
});

test('with real processes: a start failing at the third server stops the two that started, and no more', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pgco-teardown-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const td = new Teardown('two sleeps');
  const procs: Proc[] = [];
  t.after(() => { for (const p of procs) if (pidAlive(p.pid)) process.kill(p.pid, 'SIGKILL'); }); // should the helper break
  await assert.rejects(td.unwindOnError(async () => {
    startOwnedProc(td, procs, 'one', 'sleep', ['60'], { logFile: join(dir, 'one.log') });
    startOwnedProc(td, procs, 'two', 'sleep', ['60'], { logFile: join(dir, 'two.log') });
    assert.ok(procs.every((p) => pidAlive(p.pid)));
    startOwnedProc(td, procs, 'three', join(dir, 'no-such-binary'), [], { logFile: join(dir, 'three.log') });
  }), /could not start three/);
  assert.deepEqual(td.steps, ['stop one', 'stop two']);
  assert.equal(procs.length, 2);
  for (const p of procs) {
    assert.equal(p.child.signalCode, 'SIGTERM', `${p.name} stopped`);
    assert.equal(pidAlive(p.pid), false);
  }
});
