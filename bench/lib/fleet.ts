// Many PgClusters of kwok pods at once (steady state, scale, Postgres load), and the steady-state window that
// measures what the operator costs when nothing changes.
import { readFileSync } from 'node:fs';
import type { KubeClient } from '../../src/kube/client.ts';
import { createNamespace, createPgCluster, createPod, createSecret, cleanupNamespace } from './kube.ts';
import { delta, deltaBy, metric, type OperatorProc, type Sample } from './operator.ts';
import { operator, pick, type BenchCtx } from './context.ts';
import { PgStats } from './pg.ts';
import type { Report } from './report.ts';
import { exactly, below } from './report.ts';
import { Tracker, type ClusterOutputs } from './tracker.ts';
import { channelName, mono, pool, range, say, sleep, until } from './util.ts';

export interface FleetOpts {
  prefix: string;
  clusters: number;
  podsPerCluster: number;
  clustersPerNamespace: number;
  databaseUrl: string;
  heartbeat?: string;
  node: string;
}

export interface Fleet {
  namespaces: string[];
  clusters: ClusterOutputs[];
  tracker: Tracker;
  pods: number;
  /** Seconds to create the pods and see them all Ready (kwok). */
  podsReadySeconds: number;
  cleanup(): Promise<void>;
}

/** Namespaces, a Secret in each, the pods (Ready via kwok), then the PgClusters; the operator is not started. */
export async function buildFleet(kube: KubeClient, o: FleetOpts): Promise<Fleet> {
  const nsCount = Math.ceil(o.clusters / o.clustersPerNamespace);
  const namespaces: string[] = [];
  for (const _ of range(nsCount)) namespaces.push(await createNamespace(kube, o.prefix));
  const tracker = new Tracker(kube, namespaces);
  const cleanup = async () => {
    tracker.stop();
    for (const ns of namespaces) await cleanupNamespace(kube, ns).catch(() => {});
  };
  try {
    await tracker.start();
    const plan = range(o.clusters).map((i) => {
      const ns = namespaces[Math.floor(i / o.clustersPerNamespace)]!;
      const name = `c${String(i).padStart(4, '0')}`;
      return { ns, name, pods: range(o.podsPerCluster).map((j) => `${name}-${j}`) };
    });
    for (const ns of namespaces) await createSecret(kube, ns, 'db', o.databaseUrl);
    const total = o.clusters * o.podsPerCluster;
    say(`${o.prefix}: creating ${total} pods in ${nsCount} namespace(s)`);
    const t0 = mono();
    const progress = setInterval(() => say(`${o.prefix}: ${[...tracker.pods.values()].filter((p) => p.ready && p.ip).length}/${total} pods Ready`), 10_000);
    try {
      const podJobs = plan.flatMap((c) => c.pods.map((p) => ({ ns: c.ns, pod: p, app: c.name })));
      await pool(podJobs, 32, (j) => createPod(kube, j.ns, j.pod, { app: j.app }, o.node));
      await until(`${total} pods Ready`, () => {
        let n = 0;
        for (const p of tracker.pods.values()) if (p.ready && p.ip) n++;
        return n >= total;
      }, 60_000 + total * 20, 250);
    } finally {
      clearInterval(progress);
    }
    const podsReadySeconds = (mono() - t0) / 1000;
    say(`${o.prefix}: ${total} pods Ready in ${podsReadySeconds.toFixed(1)} s; creating ${o.clusters} PgClusters`);
    await pool(plan, 16, (c) => createPgCluster(kube, c.ns, c.name, {
      app: c.name, secret: 'db', channel: channelName(o.prefix, c.ns.slice(-6), c.name), ...(o.heartbeat ? { heartbeatInterval: o.heartbeat } : {}),
    }));
    const clusters: ClusterOutputs[] = plan.map((c) => ({
      ns: c.ns, cm: `${c.name}-peers`, pods: c.pods,
      app: c.name, basename: c.name,
    }));
    return { namespaces, clusters, tracker, pods: total, podsReadySeconds, cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/** Waits for every output of the fleet; resolves with mono() of the event that completed them. */
export async function awaitPublished(fleet: Fleet, what: string, timeoutMs: number): Promise<number> {
  const done = fleet.tracker.expectAll(fleet.clusters);
  const progress = setInterval(() => {
    const p = fleet.tracker.allProgress();
    say(`${what}: ${p.ok}/${p.total} outputs right`);
  }, 10_000);
  try {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, rej) => { timer = setTimeout(() => {
      const p = fleet.tracker.allProgress();
      // What is wrong, so that a failure in CI can be read: the bench's view of a few outputs against the pods.
      const wrong = fleet.tracker.allWrong(3).map((w) => `${w.key} has [${w.have.slice(0, 5).join(' ')}] wants [${w.want.slice(0, 5).join(' ')}]`);
      rej(new Error(`${what}: only ${p.ok}/${p.total} outputs right after ${timeoutMs / 1000} s; ${wrong.join('; ')}; kwok IP changes seen: ${fleet.tracker.ipChanges.length}`));
    }, timeoutMs); });
    return await Promise.race([done, timeout]).finally(() => clearTimeout(timer));
  } finally {
    clearInterval(progress);
  }
}

export interface SteadyResult {
  seconds: number;
  kubeWrites: number;
  kubeWritesByResource: Record<string, number>;
  kubeWritesPerMinute: number;
  watchEvents: number;
  pgCommits: number;
  pgCommitsPerInterval: number;
  notifyTx: number;
  notifyTxPerInterval: number;
  namesPerTx: number;
  cpuPercent: number;
  rssMB: number;
  peakRssMB: number;
  heapUsedMB: number;
  heapTotalMB: number;
  externalMB: number;
  /** RSS by mapping at the end of the window (MB): the node executable, other files, anonymous. */
  rssByMappingMB: { nodeBinary: number; otherFiles: number; anonymous: number };
}

/**
 * Waits for the operator to go quiet (no Kubernetes write for 3 s), then measures a window of `seconds`:
 * Kubernetes writes (its own counter, and every watch event in the namespaces as a cross-check), commits
 * as the Postgres server counts them (transaction ids assigned on a server only the operator uses), CPU and RSS.
 */
export async function measureSteady(op: OperatorProc, tracker: Tracker, databaseUrl: string, seconds: number, heartbeatMs: number): Promise<SteadyResult> {
  const stats = await PgStats.open(databaseUrl);
  try {
    let last = await op.scrape();
    for (const _ of range(20)) {
      await sleep(3000);
      const now = await op.scrape();
      if (delta(last, now, 'pgcluster_kube_writes_total') === 0) break;
      last = now;
    }
    // Heartbeats fire at wall-clock multiples of the interval: a window from mid-interval to mid-interval,
    // a whole number of intervals long, holds exactly that many heartbeat boundaries.
    await sleep((heartbeatMs * 1.5 - (Date.now() % heartbeatMs)) % heartbeatMs);
    const windowMs = Math.max(1, Math.round((seconds * 1000) / heartbeatMs)) * heartbeatMs;
    const ev0 = { ...tracker.events };
    const c0 = await stats.nextXid();
    const s0 = await op.scrape();
    await sleep(windowMs);
    const s1 = await op.scrape();
    const c1 = await stats.nextXid();
    const ev1 = { ...tracker.events };
    const dt = (s1.at - s0.at) / 1000;
    const intervals = windowMs / heartbeatMs;
    const writes = delta(s0, s1, 'pgcluster_kube_writes_total');
    const tx = delta(s0, s1, 'pgcluster_notify_transactions_total');
    const sent = delta(s0, s1, 'pgcluster_notifications_sent_total');
    const mem = op.memory();
    const map = op.memoryMap();
    return {
      rssByMappingMB: { nodeBinary: map.nodeBinary / 2 ** 20, otherFiles: map.otherFiles / 2 ** 20, anonymous: map.anonymous / 2 ** 20 },
      seconds: dt,
      kubeWrites: writes,
      kubeWritesByResource: deltaBy(s0, s1, 'pgcluster_kube_writes_total', 'resource'),
      kubeWritesPerMinute: writes / (dt / 60),
      watchEvents: ev1.pods - ev0.pods + ev1.configmaps - ev0.configmaps + ev1.pgclusters - ev0.pgclusters,
      pgCommits: c1 - c0,
      pgCommitsPerInterval: (c1 - c0) / intervals,
      notifyTx: tx,
      notifyTxPerInterval: tx / intervals,
      namesPerTx: tx ? sent / tx : NaN,
      cpuPercent: (delta(s0, s1, 'process_cpu_seconds_total') / dt) * 100,
      rssMB: metric(s1, 'process_resident_memory_bytes') / 2 ** 20,
      peakRssMB: mem.peak / 2 ** 20,
      heapUsedMB: metric(s1, 'nodejs_heap_size_used_bytes') / 2 ** 20,
      heapTotalMB: metric(s1, 'nodejs_heap_size_total_bytes') / 2 ** 20,
      externalMB: metric(s1, 'nodejs_external_memory_bytes') / 2 ** 20,
    };
  } finally {
    await stats.close();
  }
}

/** The steady-state rows, with the targets of issue 5. */
export function reportSteady(report: Report, scenario: string, r: SteadyResult, urls: number, targets: { cpuPercent: number; rssMB: number }): void {
  report.add(scenario, 'kube_writes_per_min', `Kubernetes writes per minute (${Math.round(r.seconds)} s window)`, r.kubeWritesPerMinute, '/min', exactly(0));
  report.add(scenario, 'watch_events', 'object changes seen by a watch in the window (any writer)', r.watchEvents, '');
  report.add(scenario, 'pg_commits_per_interval', `Postgres commits per heartbeat interval (server-side XIDs, ${urls} URL)`, r.pgCommitsPerInterval, '', { text: `${urls} per URL`, ok: (v) => Math.abs(v - urls) <= 0.15 * urls });
  report.add(scenario, 'notify_tx_per_interval', 'NOTIFY transactions per interval (operator metric)', r.notifyTxPerInterval, '');
  report.add(scenario, 'names_per_tx', 'node names per transaction', r.namesPerTx, '');
  report.add(scenario, 'cpu_percent', 'operator CPU, % of one core', r.cpuPercent, '%', below(targets.cpuPercent, '%'));
  report.add(scenario, 'rss_mb', 'operator RSS', r.rssMB, 'MB', below(targets.rssMB, 'MB'));
  report.add(scenario, 'peak_rss_mb', 'operator peak RSS (VmHWM)', r.peakRssMB, 'MB');
}

export interface PublishedRun {
  /** Operator start -> every output of the fleet published. */
  publishS: number;
  rssAtPublishMB: number;
  /** The operator's metrics when everything was published. */
  atPublish: Sample;
  steady: SteadyResult;
}

/** A fresh operator on the fleet: time to publish everything, then a steady window; the operator is stopped after. */
export async function publishAndMeasure(ctx: BenchCtx, name: string, fleet: Fleet, watch: string[], databaseUrl: string, seconds: number,
  publishTimeoutMs = pick(ctx.mode, { full: 600_000, quick: 300_000, smoke: 120_000 })): Promise<PublishedRun> {
  let op: OperatorProc | undefined;
  try {
    op = await operator(ctx, name, watch);
    const started = op;
    const publishedAt = await awaitPublished(fleet, name, publishTimeoutMs).catch((e: Error) => {
      // The operator's own account of why, for a failure read in CI: its warnings and errors.
      const said = readFileSync(started.logFile, 'utf8').split('\n').filter((l) => /"level":(40|50|60)/.test(l)).slice(-10);
      throw new Error(`${e.message}\noperator ${name}'s last warnings and errors (${started.logFile}):\n${said.join('\n') || '(none)'}`);
    });
    const atPublish = await op.scrape();
    const mem = op.memory();
    const steady = await measureSteady(op, fleet.tracker, databaseUrl, seconds, 5000);
    return { publishS: (publishedAt - op.startedAt) / 1000, rssAtPublishMB: mem.rss / 2 ** 20, atPublish, steady };
  } finally {
    await op?.stop();
  }
}
