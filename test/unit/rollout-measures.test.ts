// The measures over a recorded rollout (test/harness/rollout.ts) that the readiness-gate e2e asserts and the
// gate benchmark reports: on hand-made records, so that a wrong measure cannot pass the e2e or flatter the gate.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { disconnectedMs, gateAfterOutputs, joinChecks, leaveChecks, type PodTrack } from '../harness/rollout.ts';

const track = (name: string, ip: number, o: Partial<PodTrack> = {}): PodTrack => ({
  name, node: `a@10.0.0.${ip}`, ready: [], gateTrueAt: undefined, gateTrueRv: undefined, gate: [], annotations: [], deletingAt: undefined, files: [], app: [], ...o,
});
const nodes = (at: number, ...ips: number[]) => ({ at, event: 'nodes', arg: ips.map((i) => `a@10.0.0.${i}`).join(',') });
const file = (at: number, f: 'annotation' | 'configmap', ...ips: number[]) => ({ at, file: f, names: ips.map((i) => `a@10.0.0.${i}`) });

test('joinChecks: each member Ready when a pod became Ready, and when its files first listed it (either file)', () => {
  const old = track('old', 1, { ready: [{ at: 0, ready: true }], files: [file(0, 'annotation', 1), file(900, 'configmap', 1, 2), file(950, 'annotation', 1, 2)] });
  const late = track('late', 3, { ready: [{ at: 0, ready: true }], files: [file(0, 'annotation', 1, 3), file(1200, 'annotation', 1, 2, 3)] });
  const notReady = track('starting', 4, { ready: [{ at: 2000, ready: true }] });
  const fresh = track('new', 2, { ready: [{ at: 1000, ready: true }] });
  const checks = joinChecks([old, late, notReady, fresh], 500);
  assert.deepEqual(checks.map((c) => [c.pod, c.readyAt, c.margins]), [
    ['starting', 2000, [{ member: 'old', ms: undefined }, { member: 'late', ms: undefined }, { member: 'new', ms: undefined }]],
    ['new', 1000, [{ member: 'old', ms: -100 }, { member: 'late', ms: 200 }]],
  ]);
});

test('leaveChecks: in each peer that saw it go (and was not going itself), how long before that both its files dropped it', () => {
  const gone = track('gone', 1, { deletingAt: 1000 });
  const peer = track('peer', 2, {
    files: [file(0, 'annotation', 1, 2), file(0, 'configmap', 1, 2), file(1300, 'annotation', 2), file(1400, 'configmap', 2)],
    app: [{ at: 4000, event: 'disconnected', arg: 'a@10.0.0.1' }],
  });
  const slow = track('slow', 3, { files: [file(0, 'annotation', 1), file(4500, 'annotation', 3)], app: [{ at: 4000, event: 'disconnected', arg: 'a@10.0.0.1' }] });
  const never = track('never-listed', 4, { files: [file(0, 'annotation', 4)], app: [{ at: 4000, event: 'disconnected', arg: 'a@10.0.0.1' }] });
  const leaving = track('leaving', 5, { deletingAt: 900, app: [{ at: 4000, event: 'disconnected', arg: 'a@10.0.0.1' }] });
  const [c] = leaveChecks([gone, peer, slow, never, leaving], 0).filter((x) => x.pod === 'gone');
  assert.deepEqual(c?.leads, [{ member: 'peer', ms: 2600 }, { member: 'slow', ms: -500 }, { member: 'never-listed', ms: 3000 }]);
});

test('disconnectedMs: the time some Ready pod lacks some other Ready pod in its Node.list(); pods not Ready or being deleted do not count', () => {
  const a = track('a', 1, { ready: [{ at: 0, ready: true }], app: [nodes(0, 2), nodes(1500, 2, 3)] });
  const b = track('b', 2, { ready: [{ at: 0, ready: true }], app: [nodes(0, 1), nodes(1200, 1, 3)] });
  // c is Ready at 1000; a lists it at 1500, b at 1200; c lists both at 1100.
  const c = track('c', 3, { ready: [{ at: 1000, ready: true }], app: [nodes(800, 1), nodes(1100, 1, 2)] });
  assert.equal(disconnectedMs([a, b, c], 0, 3000), 500);
  // A pod being deleted is not Ready: that it is missing from a list from then on costs nothing.
  const leaving = track('d', 4, { ready: [{ at: 0, ready: true }, { at: 2000, ready: false }], app: [nodes(0, 1, 2, 3)] });
  assert.equal(disconnectedMs([a, b, c, leaving], 1600, 3000), 400, 'a, b and c lack d until it stops being Ready at 2000');
});

test('gateAfterOutputs: the ConfigMap and each Ready member\'s annotation listed the pod at an earlier resourceVersion than its gate\'s', () => {
  const m1 = track('m1', 1, { ready: [{ at: 0, ready: true }], annotations: [{ rv: '90', names: ['a@10.0.0.1'] }, { rv: '105', names: ['a@10.0.0.1', 'a@10.0.0.3'] }] });
  const m2 = track('m2', 2, { ready: [{ at: 0, ready: true }], annotations: [{ rv: '99', names: ['a@10.0.0.3'] }] });
  const starting = track('starting', 4, { annotations: [] });
  const p = track('p', 3, { gateTrueAt: 1000, gateTrueRv: '100' });
  const cm = [{ rv: '9', names: ['a@10.0.0.1'] }, { rv: '98', names: ['a@10.0.0.1', 'a@10.0.0.3'] }];
  assert.deepEqual(gateAfterOutputs([m1, m2, starting, p], cm, 0), [{ pod: 'p', node: 'a@10.0.0.3', late: ['annotation of m1'] }], '105 is after 100 (and 99 before it: compared as numbers)');
  assert.deepEqual(gateAfterOutputs([m2, p], [{ rv: '101', names: ['a@10.0.0.3'] }], 0)[0]?.late, ['ConfigMap']);
});
