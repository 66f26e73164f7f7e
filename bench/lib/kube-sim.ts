// Members discovering each other the way libcluster's Cluster.Strategy.Kubernetes does: every member GETs
// the Endpoints of its service by label selector (`/api/v1/namespaces/<ns>/endpoints?labelSelector=...`,
// the strategy's default :endpoints lookup) every polling interval (5 s), over a connection of its own (each
// BEAM node is its own client). In a child process, like libcluster-sim.ts, so that its work is not the
// bench's; the parent talks to it over IPC (startKubeSim below). Plus what the API server says it served
// (apiserverRequests), read from its /metrics.
import { Agent, request } from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';
import { errorMessage } from '../../src/errors.ts';
import { forkSim, serveSim } from './simChild.ts';
import { parseMetrics, sumMetric } from '../../test/support/metrics.ts';

export interface KubeSimStats {
  requests: number;
  errors: number;
  /** Response bytes received. */
  bytes: number;
  /** user+system CPU seconds of the simulator process. */
  cpuSeconds: number;
}

interface Target { server: string; ca: string; token: string }
interface StartMsg { cmd: 'start'; target: Target; path: string; clients: number; intervalMs: number }
type Msg = StartMsg | { cmd: 'stats' } | { cmd: 'stop' };

export interface KubeSim {
  stats(): Promise<KubeSimStats>;
  stop(): Promise<void>;
}

/** The API server, its CA and the bearer token of the kubeconfig's current context. */
function targetOf(kubeconfig: string): Target {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  const cluster = kc.getCurrentCluster();
  const token = kc.getCurrentUser()?.token;
  if (!cluster || !token || !cluster.caData) throw new Error(`${kubeconfig}: need a cluster with certificate-authority-data and a user token`);
  return { server: cluster.server, ca: Buffer.from(cluster.caData, 'base64').toString('utf8'), token };
}

function get(t: Target, agent: Agent, path: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, t.server), { agent, ca: t.ca, headers: { authorization: `Bearer ${t.token}`, accept: 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** apiserver_request_total (every verb, every client) as the API server counts it now. */
export async function apiserverRequests(kubeconfig: string): Promise<number> {
  const t = targetOf(kubeconfig);
  const agent = new Agent({ keepAlive: false });
  const r = await get(t, agent, '/metrics');
  if (r.status !== 200) throw new Error(`GET /metrics: ${r.status}`);
  return sumMetric(parseMetrics(r.body.toString('utf8')), 'apiserver_request_total', {});
}

/** Starts `clients` pollers of `path`; resolves once each has made its first request. */
export async function startKubeSim(kubeconfig: string, path: string, clients: number, intervalMs: number): Promise<KubeSim> {
  const sim = await forkSim<Msg>(import.meta.url, 'Kubernetes-strategy simulator', { cmd: 'start', target: targetOf(kubeconfig), path, clients, intervalMs });
  return {
    stats: () => sim.ask<KubeSimStats>({ cmd: 'stats' }),
    stop: () => sim.stop(10_000),
  };
}

// ---- the child process ----

function child(): void {
  const stats = { requests: 0, errors: 0, bytes: 0 };
  const timers: NodeJS.Timeout[] = [];
  serveSim<StartMsg, KubeSimStats>({
    stats: () => stats,
    stop: () => { for (const t of timers) clearTimeout(t); },
    start: (msg, reply) => {
      const { target, path, clients, intervalMs } = msg;
      let first = 0;
      let firstError: string | undefined;
      for (let i = 0; i < clients; i++) {
        // One keep-alive connection per member, as each node's :httpc keeps its own.
        const agent = new Agent({ keepAlive: true, maxSockets: 1 });
        const poll = async () => {
          try {
            const r = await get(target, agent, path);
            stats.requests++;
            stats.bytes += r.body.length;
            if (r.status !== 200) { stats.errors++; firstError ??= `GET ${path}: ${r.status} ${r.body.toString('utf8').slice(0, 200)}`; }
          } catch (e) {
            stats.errors++;
            firstError ??= errorMessage(e);
          }
          if (++first === clients) reply(stats.errors ? { error: `Kubernetes-strategy simulator: ${firstError}` } : { ok: true });
        };
        // Polls spread evenly over the interval (nodes start at different times), each every interval.
        timers.push(setTimeout(() => {
          void poll();
          timers.push(setInterval(() => void poll(), intervalMs));
        }, (i * intervalMs) / clients));
      }
    },
  });
}

if (process.argv.includes('--child')) child();
