// The fan-out policy (controller/write/fanout.ts) with a hand-driven writer: which PATCHes go out, in which
// pass, and when, as plans follow each other faster than the writes complete.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FanOut } from '../../src/controller/write/fanout.ts';
import type { PodPatch } from '../../src/controller/plan/outputs.ts';
import { reconcile } from '../../src/controller/reconcile.ts';
import { chatSpec, NS, pgcluster, pod, testContext } from '../support/controllerKit.ts';
import { FakeClock } from '../support/fakeClock.ts';

interface Pending { pod: string; value: string | null; done(refusal?: string): void; fail(err: unknown): void }

/** A FanOut whose writes wait until the test completes them. */
function harness(concurrency = 2) {
  const clock = new FakeClock();
  const inFlight: Pending[] = [];
  const written: string[] = [];
  const passEnds: { failed: unknown; rejectedChanged: boolean; ms: number }[] = [];
  const f = new FanOut({
    clock, concurrency,
    write: (p) => new Promise((resolve, reject) => {
      const value = p.annotations.peers ?? null;
      written.push(`${p.pod.metadata.name}=${value}`);
      inFlight.push({ pod: p.pod.metadata.name, value, done: (r) => resolve(r), fail: reject });
    }),
    onPassEnd: (failed, rejectedChanged, ms) => passEnds.push({ failed, rejectedChanged, ms }),
  });
  /** Completes every write in flight, lets the promise callbacks run. */
  const flush = async () => {
    for (const w of inFlight.splice(0)) w.done();
    for (let i = 0; i < 5; i++) await Promise.resolve();
  };
  return { clock, f, inFlight, written, passEnds, flush };
}

const plan = (value: string, ...pods: string[]): PodPatch[] => pods.map((p) => ({ pod: pod(p), annotations: { peers: value } }));

test('one pass at a time: a newer plan replaces the unwritten rest of the older one; pods already written wait for the next pass', async () => {
  const h = harness(2);
  h.f.submit(plan('v1', 'a', 'b', 'c', 'd'), 0);
  assert.deepEqual(h.written, ['a=v1', 'b=v1'], 'two in flight');
  h.f.submit(plan('v2', 'a', 'b', 'c', 'd'), 0);
  assert.deepEqual(h.written, ['a=v1', 'b=v1'], 'no second write of a pod while its first is in flight');
  await h.flush();
  assert.deepEqual(h.written.slice(2), ['c=v2', 'd=v2'], 'the rest of the pass carries the newest value, never v1');
  await h.flush();
  assert.equal(h.passEnds.length, 1);
  assert.deepEqual(h.written.slice(4), ['a=v2', 'b=v2'], 'the next pass: the pods written with v1');
  await h.flush();
  assert.equal(h.passEnds.length, 2);
  assert.equal(h.f.pending, 0);
  assert.deepEqual({ writes: h.f.stats.writes, passes: h.f.stats.passes }, { writes: 6, passes: 2 });
});

test('a pod new to the PgCluster (its first write) gets its newer value in the same pass, once its first write is answered: a join is one pass', async () => {
  const h = harness(2);
  const fresh = (value: string): PodPatch => ({ pod: pod('n'), annotations: { peers: value }, first: true });
  h.f.submit([fresh('v1')], 0); // n is Pending: annotated with the list without it
  assert.deepEqual(h.written, ['n=v1']);
  h.f.submit([...plan('v2', 'a', 'b', 'c'), fresh('v2')], 0); // n is Ready: every pod gets v2, n with it
  assert.deepEqual(h.written, ['n=v1', 'a=v2'], 'not twice at once: n waits for its first write');
  await h.flush();
  await h.flush();
  await h.flush();
  assert.deepEqual(h.written.slice(2).sort(), ['b=v2', 'c=v2', 'n=v2'], 'n again in the same pass, behind the others');
  assert.equal(h.passEnds.length, 1, 'one pass');
  assert.deepEqual({ writes: h.f.stats.writes, passes: h.f.stats.passes }, { writes: 5, passes: 1 });
  // Only once per pass: a third value waits for the next pass.
  h.f.submit([fresh('w1')], 0);
  h.f.submit([fresh('w2')], 0);
  await h.flush();
  h.f.submit([fresh('w3')], 0);
  await h.flush();
  assert.deepEqual(h.written.slice(5), ['n=w1', 'n=w2', 'n=w3']);
  assert.equal(h.passEnds.length, 2, 'w1 and w2 in one pass; w3 (in flight) in the next');
  await h.flush();
  assert.equal(h.passEnds.length, 3);
});

test('a pass reports how long it took, from its first write issued to its last answered (pgcluster_annotation_fanout_seconds)', async () => {
  const h = harness(1);
  h.clock.advance(5000); // before the pass: not counted
  h.f.submit(plan('v1', 'a', 'b'), 0);
  h.clock.advance(30);
  await h.flush(); // a answered at 30 ms, b issued
  h.clock.advance(45);
  await h.flush(); // b answered at 75 ms: the pass ends
  assert.deepEqual(h.passEnds.map((e) => e.ms), [75]);
});

test('ten plans during one pass cost one more pass, not ten', async () => {
  const h = harness(4);
  const pods = ['a', 'b', 'c', 'd'];
  h.f.submit(plan('v0', ...pods), 0);
  for (let i = 1; i <= 10; i++) h.f.submit(plan(`v${i}`, ...pods), 0);
  await h.flush();
  await h.flush();
  assert.deepEqual(h.written, [...pods.map((p) => `${p}=v0`), ...pods.map((p) => `${p}=v10`)]);
  assert.equal(h.f.stats.passes, 2);
});

test('a write in flight with the same content is not planned again; a pod the newer plan leaves out is not written', async () => {
  const h = harness(1);
  h.f.submit(plan('v1', 'a', 'b'), 0);
  h.f.submit(plan('v1', 'a'), 0);
  await h.flush();
  await h.flush();
  assert.deepEqual(h.written, ['a=v1']);
  assert.equal(h.f.pending, 0);
});

test('the next pass starts annotationMinInterval after the previous one ended', async () => {
  const h = harness(4);
  h.f.submit(plan('v1', 'a', 'b'), 1000);
  await h.flush();
  assert.equal(h.passEnds.length, 1);
  h.clock.advance(300);
  h.f.submit(plan('v2', 'a', 'b'), 1000);
  assert.deepEqual(h.written, ['a=v1', 'b=v1'], 'held back: only 300 ms since the last pass');
  h.f.submit(plan('v3', 'a', 'b'), 1000);
  h.clock.advance(699);
  assert.equal(h.written.length, 2);
  h.clock.advance(1);
  assert.deepEqual(h.written.slice(2), ['a=v3', 'b=v3'], 'one pass with the newest value once the interval is over');
});

test('a failed write is retried in a later pass after a backoff; a refusal is reported, and forgotten once not planned', async () => {
  const h = harness(2);
  h.f.submit(plan('v1', 'a', 'b'), 0);
  const [a, b] = h.inFlight.splice(0);
  a!.fail(new Error('500'));
  b!.done('pod b: 422 Invalid');
  for (let i = 0; i < 5; i++) await Promise.resolve();
  assert.equal(h.passEnds.length, 1);
  assert.match(String(h.passEnds[0]!.failed), /500/);
  assert.equal(h.passEnds[0]!.rejectedChanged, true);
  assert.deepEqual(h.f.rejected(), ['pod b: 422 Invalid']);
  assert.deepEqual(h.written, ['a=v1', 'b=v1'], 'no hot retry');
  h.clock.advance(30_000);
  assert.deepEqual(h.written.slice(2), ['a=v1'], 'a again after the backoff');
  await h.flush();
  h.f.submit(plan('v1', 'a'), 0);
  assert.deepEqual(h.f.rejected(), []);
});

test('stop: no more writes, resolves once those in flight have ended', async () => {
  const h = harness(1);
  h.f.submit(plan('v1', 'a', 'b'), 0);
  let stopped = false;
  const s = h.f.stop().then(() => { stopped = true; });
  await Promise.resolve();
  assert.equal(stopped, false, 'a write is in flight');
  await h.flush();
  await s;
  h.f.submit(plan('v2', 'a', 'b'), 0);
  assert.deepEqual(h.written, ['a=v1']);
});

test('reconcile: the ConfigMap and the status of a change are written while the previous fan-out is still in flight', async () => {
  const ctx = testContext({ pgclusters: [pgcluster('chat', chatSpec)], pods: [pod('a', { labels: { app: 'chat' }, ip: '10.0.0.1' }), pod('b', { labels: { app: 'chat' }, ip: '10.0.0.2' })] });
  const stuck: string[] = [];
  ctx.writer.patchPodAnnotations = (_ns, name) => { stuck.push(name); return new Promise(() => {}); };
  const within = <T>(p: Promise<T>) => Promise.race([p, new Promise<never>((_, rej) => setTimeout(() => rej(new Error('reconcile waited for the fan-out')), 2000))]);
  await within(reconcile(ctx, 'prod/chat'));
  assert.deepEqual(stuck, ['a', 'b']);
  ctx.pods.delete(NS, 'b');
  ctx.writer.calls = [];
  await within(reconcile(ctx, 'prod/chat'));
  const cm = ctx.writer.calls.find((c) => c.verb === 'patchConfigMap' || c.verb === 'createConfigMap');
  assert.ok(cm, 'the ConfigMap follows the leave at once');
  assert.deepEqual(stuck, ['a', 'b'], 'no second PATCH of a pod while its first is in flight');
});
