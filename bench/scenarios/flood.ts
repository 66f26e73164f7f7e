// 8. NOTIFY flood (issue 11, item 5): a client with access to the database NOTIFYs distinct valid names on a
// PgCluster's channel at a set pace (50,000 a second quick, 100,000 full: batches of pg_notify ... FROM generate_series, two
// connections). Figures: the rate reached, the heartbeat gaps a plain LISTEN client sees (every member, 1 s
// heartbeat) without and during the flood, output writes per second, reconnects, operator CPU and RSS.
import { type BenchCtx, operator, pick, type Scenario } from '../lib/context.ts';
import { BenchKubelet, cleanupNamespace, createNamespace, createPgCluster, createSecret } from '../lib/kube.ts';
import { delta, deltaBy, histogramMeanMs, metric, type OperatorProc, type Sample } from '../lib/operator.ts';
import { atMost, exactly } from '../lib/report.ts';
import { Tracker } from '../lib/tracker.ts';
import { channelName, range, say, sleep, summarize, until, type Summary } from '../lib/util.ts';
import { heartbeatEar, startFlood, type FloodResult, type HeartbeatEar } from '../../test/support/flood.ts';
import type { PostgresServer } from '../../test/harness/postgres.ts';

const HEARTBEAT_MS = 1000;

interface Window {
  seconds: number;
  gaps: Summary;
  maxGapMs: number;
  kubeWrites: number;
  kubeWritesByResource: Record<string, number>;
  reconnects: number;
  received: number;
  /** The operator's own probe, NOTIFY to hearing it back on its listener (behind whatever is queued): mean and max bucket. */
  probeRttMeanMs: number;
  probeRttOver250ms: number;
  cpuPercent: number;
  rssMB: number;
  maxRssMB: number;
  flood?: FloodResult;
}

/** Observes one window of `seconds` (the flood, if given, runs for exactly that window). */
async function measure(op: OperatorProc, ear: HeartbeatEar, seconds: number, flood?: () => Promise<{ stop(): Promise<FloodResult> }>): Promise<Window> {
  const f = flood ? await flood() : undefined;
  ear.reset();
  const s0 = await op.scrape();
  let maxRss = metric(s0, 'process_resident_memory_bytes');
  const end = performance.now() + seconds * 1000;
  let s1: Sample = s0;
  while (performance.now() < end) {
    await sleep(Math.min(1000, Math.max(0, end - performance.now())));
    s1 = await op.scrape();
    maxRss = Math.max(maxRss, metric(s1, 'process_resident_memory_bytes'));
  }
  const maxGaps = ear.maxGaps();
  const gaps = ear.gaps();
  const result = await f?.stop();
  const dt = (s1.at - s0.at) / 1000;
  return {
    seconds: dt,
    gaps: summarize(gaps),
    maxGapMs: Math.max(...maxGaps.values()),
    kubeWrites: delta(s0, s1, 'pgcluster_kube_writes_total'),
    kubeWritesByResource: deltaBy(s0, s1, 'pgcluster_kube_writes_total', 'resource'),
    reconnects: delta(s0, s1, 'pgcluster_postgres_reconnects_total'),
    received: delta(s0, s1, 'pgcluster_notifications_received_total'),
    probeRttMeanMs: histogramMeanMs(s0, s1, 'pgcluster_heartbeat_rtt_seconds').meanMs,
    probeRttOver250ms: delta(s0, s1, 'pgcluster_heartbeat_rtt_seconds_count') - delta(s0, s1, 'pgcluster_heartbeat_rtt_seconds_bucket', { le: '0.25' }),
    cpuPercent: (delta(s0, s1, 'process_cpu_seconds_total') / dt) * 100,
    rssMB: metric(s1, 'process_resident_memory_bytes') / 2 ** 20,
    maxRssMB: maxRss / 2 ** 20,
    ...(result ? { flood: result } : {}),
  };
}

export const flood: Scenario = {
  name: 'flood',
  title: 'NOTIFY flood: tens of thousands of names a second (250 new) on a channel, heartbeats and writes meanwhile',
  async run(ctx: BenchCtx) {
    const { kube } = ctx.stack;
    const { pods, idleSeconds, floodSeconds, perSecond, unpacedSeconds } = pick(ctx.mode, {
      full: { pods: 20, idleSeconds: 30, floodSeconds: 60, perSecond: 100_000, unpacedSeconds: 30 },
      quick: { pods: 10, idleSeconds: 10, floodSeconds: 20, perSecond: 50_000, unpacedSeconds: 10 },
      smoke: { pods: 3, idleSeconds: 3, floodSeconds: 5, perSecond: 5_000, unpacedSeconds: 2 },
    });
    const kubelet = new BenchKubelet(kube);
    let pgSrv: PostgresServer | undefined;
    let ns: string | undefined;
    let tracker: Tracker | undefined;
    let op: OperatorProc | undefined;
    let ear: HeartbeatEar | undefined;
    try {
      // A dedicated server: the flood fills its notification queue, nobody else's.
      pgSrv = await ctx.stack.newPostgres('flood');
      ns = await createNamespace(kube, 'flood');
      const channel = channelName(ns, 'flood');
      tracker = new Tracker(kube, [ns]);
      await tracker.start();
      await createSecret(kube, ns, 'db', pgSrv.url);
      await createPgCluster(kube, ns, 'flood', { app: 'flood', secret: 'db', channel, heartbeatInterval: `${HEARTBEAT_MS / 1000}s` });
      for (const i of range(pods)) await kubelet.start(ns, `flood-${i}`, { app: 'flood' });
      op = await operator(ctx, 'flood', [ns]);
      const cm = `${ns}/flood-peers`;
      await until(`${pods} members published`, () => (tracker?.cms.get(cm)?.size ?? 0) === pods, 60_000);
      const members = [...(tracker.cms.get(cm) ?? [])];
      ear = await heartbeatEar(pgSrv.url, channel, members);

      say(`flood: ${idleSeconds} s without a flood`);
      const idle = await measure(op, ear, idleSeconds);
      say(`flood: ${floodSeconds} s of flood`);
      const url = pgSrv.url;
      const during = await measure(op, ear, floodSeconds, () => startFlood(url, channel, { perSecond, newPerSecond: 250, batch: 200 }));
      const rate = during.flood?.perSecond ?? NaN;
      say(`flood: ${Math.round(rate)} notifications/s; heartbeat gap p99 ${during.gaps.p99.toFixed(0)} ms (idle ${idle.gaps.p99.toFixed(0)} ms); ${during.kubeWrites} writes`);

      const S = 'flood';
      ctx.report.add(S, 'rate_per_s', `flood: names NOTIFYed per second, 250 of them new (2 connections, paced at ${perSecond})`, rate, '/s');
      ctx.report.add(S, 'received_per_s', 'flood: notifications the operator received per second', during.received / during.seconds, '/s');
      ctx.report.add(S, 'gap_p99_idle_ms', `heartbeat gap p99 at a plain listener, no flood (interval ${HEARTBEAT_MS} ms, ${pods} members)`, idle.gaps.p99, 'ms');
      ctx.report.add(S, 'gap_p99_flood_ms', 'heartbeat gap p99 at a plain listener, during the flood', during.gaps.p99, 'ms', atMost(2 * HEARTBEAT_MS, 'ms'));
      ctx.report.add(S, 'gap_max_flood_ms', 'heartbeat gap max, during the flood', during.maxGapMs, 'ms');
      ctx.report.add(S, 'writes_per_s_flood', 'Kubernetes writes per second during the flood (1 PgCluster)', during.kubeWrites / during.seconds, '/s', atMost(pods + 2, '/s'));
      ctx.report.add(S, 'probe_rtt_idle_ms', 'operator\'s probe NOTIFY -> heard back, mean, no flood', idle.probeRttMeanMs, 'ms');
      ctx.report.add(S, 'probe_rtt_flood_ms', 'operator\'s probe NOTIFY -> heard back, mean, during the flood (echo timeout 3 s)', during.probeRttMeanMs, 'ms');
      ctx.report.add(S, 'reconnects_flood', 'reconnects during the flood', during.reconnects, '', exactly(0));
      ctx.report.add(S, 'cpu_percent_idle', 'operator CPU, no flood', idle.cpuPercent, '%');
      ctx.report.add(S, 'cpu_percent_flood', 'operator CPU, during the flood', during.cpuPercent, '%');
      ctx.report.add(S, 'rss_mb_idle', 'operator RSS, no flood', idle.rssMB, 'MB');
      ctx.report.add(S, 'rss_mb_flood', 'operator RSS, max during the flood', during.maxRssMB, 'MB', atMost(400, 'MB'));

      // Beyond the design load: every name new, as fast as two connections commit. What gives first?
      say(`flood: ${unpacedSeconds} s of an unpaced flood (every name new)`);
      const unpaced = await measure(op, ear, unpacedSeconds, () => startFlood(url, channel, { batch: 2000, prefix: 'max' }));
      const U = 'unpaced flood (every name new)';
      ctx.report.add(S, 'unpaced_rate_per_s', `${U}: NOTIFYed per second`, unpaced.flood?.perSecond, '/s');
      ctx.report.add(S, 'unpaced_received_per_s', `${U}: received by the operator per second`, unpaced.received / unpaced.seconds, '/s');
      ctx.report.add(S, 'unpaced_gap_p99_ms', `${U}: heartbeat gap p99 at a plain listener`, unpaced.gaps.p99, 'ms');
      ctx.report.add(S, 'unpaced_probe_rtt_ms', `${U}: operator's probe round trip, mean`, unpaced.probeRttMeanMs, 'ms');
      ctx.report.add(S, 'unpaced_reconnects', `${U}: reconnects`, unpaced.reconnects, '');
      ctx.report.add(S, 'unpaced_writes_per_s', `${U}: Kubernetes writes per second`, unpaced.kubeWrites / unpaced.seconds, '/s');
      ctx.report.add(S, 'unpaced_cpu_percent', `${U}: operator CPU`, unpaced.cpuPercent, '%');
      ctx.report.add(S, 'unpaced_rss_mb', `${U}: operator RSS, max`, unpaced.maxRssMB, 'MB');
      ctx.report.detail(S, { unpaced });
      ctx.report.detail(S, { pods, heartbeatMs: HEARTBEAT_MS, floodTargetPerSecond: perSecond, idle, during, operatorWarnings: op.logLines('"level":40') });
    } finally {
      await ear?.close();
      tracker?.stop();
      await op?.stop();
      if (ns) await cleanupNamespace(kube, ns).catch(() => {});
      await pgSrv?.destroy();
    }
  },
};
