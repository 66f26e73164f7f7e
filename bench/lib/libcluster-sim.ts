// Members announcing themselves the libcluster_postgres way (LibclusterPostgres.Strategy): each member is a
// libcluster stand-in (test/harness/libcluster-node.ts) with its own two connections, in a child process so
// that their work is not the bench's; the parent talks to it over IPC (startSim below).
import { mapLimited } from '../../src/core/limit.ts';
import { errorMessage } from '../../src/errors.ts';
import { forkSim, serveSim } from './simChild.ts';
import { startLibclusterNode, type LibclusterNode } from '../../test/harness/libcluster-node.ts';

export interface SimMember {
  name: string;
  channel: string;
}

export interface SimStats {
  connections: number;
  sent: number;
  received: number;
  errors: number;
  /** user+system CPU seconds of the simulator process. */
  cpuSeconds: number;
}

interface StartMsg { cmd: 'start'; url: string; members: SimMember[]; intervalMs: number }
type Msg = StartMsg | { cmd: 'stats' } | { cmd: 'stop' };

export interface Sim {
  stats(): Promise<SimStats>;
  stop(): Promise<void>;
}

/** Starts the simulator; resolves once every member is connected, LISTENing and heartbeating. */
export async function startSim(url: string, members: SimMember[], intervalMs: number): Promise<Sim> {
  const sim = await forkSim<Msg>(import.meta.url, 'libcluster simulator', { cmd: 'start', url, members, intervalMs });
  return {
    stats: () => sim.ask<SimStats>({ cmd: 'stats' }),
    stop: () => sim.stop(30_000),
  };
}

// ---- the child process ----

function child(): void {
  const nodes: LibclusterNode[] = [];
  const stats = { sent: 0, received: 0, errors: 0 };
  serveSim<StartMsg, SimStats>({
    stats: () => ({ connections: 2 * nodes.length, ...stats }),
    stop: () => Promise.allSettled(nodes.map((n) => n.stop())),
    start: (msg, reply) => void (async () => {
      try {
        const { url, members, intervalMs } = msg;
        // Connect like a fleet starting up: a bounded number of handshakes (SCRAM) at a time; heartbeats
        // spread evenly over the interval (nodes start at different times).
        await mapLimited(members, 16, async (m, i) => {
          const node = await startLibclusterNode(url, m.channel, m.name, intervalMs, {
            firstBeatAfterMs: (i * intervalMs) / members.length,
            recordHeard: false,
            onSent: () => { stats.sent++; },
            onError: () => { stats.errors++; },
          });
          node.onHeard(() => { stats.received++; });
          nodes.push(node);
        });
        reply({ ok: true });
      } catch (e) {
        reply({ error: `libcluster simulator: ${errorMessage(e)}` });
      }
    })(),
  });
}

if (process.argv.includes('--child')) child();
