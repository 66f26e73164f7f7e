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

/** Every process's CPU seconds so far. */
export function processCpu(): ProcCpu[] {
  const out: ProcCpu[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let stat: string;
    try { stat = readFileSync(`/proc/${d}/stat`, 'utf8'); } catch { continue; }
    const close = stat.lastIndexOf(')');
    const f = stat.slice(close + 2).split(' ');
    out.push({ pid: Number(d), ppid: Number(f[1]), comm: stat.slice(stat.indexOf('(') + 1, close), seconds: (Number(f[11]) + Number(f[12])) / HZ });
  }
  return out;
}

/** CPU seconds of the postmaster and every process it forked: the whole Postgres server. */
export function serverCpuSeconds(postmasterPid: number): number {
  return processCpu().filter((p) => p.pid === postmasterPid || p.ppid === postmasterPid).reduce((s, p) => s + p.seconds, 0);
}

/**
 * CPU seconds by role: each named pid is its own role, every other process counts under its command name
 * (kube-apiserver, etcd, kwok, postgres, ...).
 */
export function cpuByRole(named: Record<string, number>): Map<string, number> {
  const byPid = new Map(Object.entries(named).map(([role, pid]) => [pid, role]));
  const out = new Map<string, number>();
  for (const p of processCpu()) {
    const role = byPid.get(p.pid) ?? p.comm;
    out.set(role, (out.get(role) ?? 0) + p.seconds);
  }
  return out;
}

/** after - before, per role, keeping roles that used at least `minSeconds`. */
export function cpuDelta(before: Map<string, number>, after: Map<string, number>, minSeconds = 0.01): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [role, s] of after) {
    const d = s - (before.get(role) ?? 0);
    if (d >= minSeconds) out[role] = d;
  }
  return Object.fromEntries(Object.entries(out).sort((a, b) => b[1] - a[1]));
}

/**
 * CPU seconds of the API server and etcd: this stack's processes when their pids are known, otherwise every
 * process of that name (a reused stack; other stacks on the machine then count too).
 */
export function controlPlaneCpuSeconds(pids: Record<string, number>): number {
  const names = ['kube-apiserver', 'etcd'];
  const known = names.map((n) => pids[n]).filter((p): p is number => p !== undefined);
  return processCpu().filter((p) => (known.length === names.length ? known.includes(p.pid) : names.includes(p.comm))).reduce((s, p) => s + p.seconds, 0);
}
