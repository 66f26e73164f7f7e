// The benchmark's CPU windows (bench/lib/procstat.ts): CPU time is compared process by process, so a process
// that exits inside a window (a Postgres backend, another test's API server) never makes the window's figure
// shrink or go negative. A CI run at 23cd669 reported the API server's CPU during a rollout as <= 0 when summed.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { controlPlaneCpuSince, cpuUsed, sampleCpu, type CpuSample } from '../../bench/lib/procstat.ts';
import { waitFor } from '../support/poll.ts';

const sample = (rows: [pid: number, comm: string, seconds: number][]): CpuSample =>
  new Map(rows.map(([pid, comm, seconds]) => [pid, { pid, ppid: 1, comm, seconds }]));

test('cpuUsed: per process; one that exited counts nothing, one born in the window counts whole', () => {
  const before = sample([[10, 'etcd', 3], [11, 'kube-apiserver', 40], [12, 'kube-apiserver', 7]]);
  const after = sample([[10, 'etcd', 3.5], [11, 'kube-apiserver', 41], [13, 'kube-apiserver', 0.25]]);
  const used = new Map(cpuUsed(before, after).map((p) => [p.pid, p.seconds]));
  assert.deepEqual([...used], [[10, 0.5], [11, 1], [13, 0.25]]);
});

test('controlPlaneCpuSince: an API server that exits inside the window never takes its past CPU with it', async () => {
  // A process named like the control plane burns CPU, is sampled, then exits inside the window.
  // It burns until its own CPU time (not wall time: on a busy machine 400 ms of wall time once held less than the
  // 0.2 s awaited below, and the test waited forever) passes 0.3 s.
  const burn = 'const used = () => { const c = process.cpuUsage(); return c.user + c.system; }; while (used() < 300_000);';
  const child = spawn(process.execPath, ['-e', `process.title = "kube-apiserver"; ${burn} setInterval(() => {}, 1000)`], { stdio: 'ignore' });
  const exited = new Promise((res) => child.once('exit', res));
  let before: CpuSample;
  try {
    await waitFor(() => (sampleCpu().get(child.pid!)?.seconds ?? 0) >= 0.2, { message: 'the child used 0.2 s of CPU', intervalMs: 20 });
    before = sampleCpu();
    assert.equal(before.get(child.pid!)?.comm, 'kube-apiserver', 'the child is named as the API server is');
  } finally {
    child.kill('SIGKILL');
  }
  await exited;
  // Every kube-apiserver and etcd on the machine (no pids given): the exited one takes nothing away.
  assert.ok(controlPlaneCpuSince(before, {}) >= 0, 'a CPU figure is never negative');
});
