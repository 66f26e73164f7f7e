// CPU time of processes on this machine, from /proc (Linux): which process paid for a burst of work.
import { readdirSync, readFileSync } from 'node:fs';

const HZ = 100; // USER_HZ on Linux

interface ProcCpu {
  pid: number;
  ppid: number;
  /** The command name (/proc/PID/comm, at most 15 characters). */
  comm: string;
  /** user + system CPU seconds so far. */
  seconds: number;
}

/** Every process's CPU seconds so far, by pid. */
export type CpuSample = Map<number, ProcCpu>;

export function sampleCpu(): CpuSample {
  const out: CpuSample = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let stat: string;
    try { stat = readFileSync(`/proc/${d}/stat`, 'utf8'); } catch { continue; }
    const close = stat.lastIndexOf(')');
    const f = stat.slice(close + 2).split(' ');
    const pid = Number(d);
    out.set(pid, { pid, ppid: Number(f[1]), comm: stat.slice(stat.indexOf('(') + 1, close), seconds: (Number(f[11]) + Number(f[12])) / HZ });
  }
  return out;
}

/**
 * The CPU seconds each process used between two samples. Compared pid by pid, never as sums: a process that
 * exits in the window (a Postgres backend, another test's API server) is missing from `after`, and a sum would
 * subtract its whole life; here its share of the window is lost instead. A process born in the window counts
 * whole.
 */
export function cpuUsed(before: CpuSample, after: CpuSample = sampleCpu()): ProcCpu[] {
  return [...after.values()].map((p) => ({ ...p, seconds: Math.max(0, p.seconds - (before.get(p.pid)?.seconds ?? 0)) }));
}

const total = (ps: ProcCpu[]) => ps.reduce((s, p) => s + p.seconds, 0);

/** CPU seconds of the postmaster and every process it forked (the whole Postgres server) since `before`. */
export function serverCpuSince(before: CpuSample, postmasterPid: number): number {
  return total(cpuUsed(before).filter((p) => p.pid === postmasterPid || p.ppid === postmasterPid));
}

/**
 * CPU seconds by role since `before`: each named pid is its own role, every other process counts under its
 * command name (kube-apiserver, etcd, kwok, postgres, ...); roles that used at least `minSeconds`, largest first.
 */
export function cpuByRoleSince(before: CpuSample, named: Record<string, number>, minSeconds = 0.01): Record<string, number> {
  const byPid = new Map(Object.entries(named).map(([role, pid]) => [pid, role]));
  const out = new Map<string, number>();
  for (const p of cpuUsed(before)) {
    const role = byPid.get(p.pid) ?? p.comm;
    out.set(role, (out.get(role) ?? 0) + p.seconds);
  }
  return Object.fromEntries([...out].filter(([, s]) => s >= minSeconds).sort((a, b) => b[1] - a[1]));
}

/**
 * CPU seconds of the API server and etcd since `before`: this stack's processes when their pids are known,
 * otherwise every process of that name (a reused stack; other stacks on the machine then count too).
 */
export function controlPlaneCpuSince(before: CpuSample, pids: Record<string, number>): number {
  const names = ['kube-apiserver', 'etcd'];
  const known = names.map((n) => pids[n]).filter((p): p is number => p !== undefined);
  return total(cpuUsed(before).filter((p) => (known.length === names.length ? known.includes(p.pid) : names.includes(p.comm))));
}
