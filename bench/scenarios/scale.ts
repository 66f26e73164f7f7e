// 4. Scale: 10,000 kwok pods across 1,000 PgClusters (100 PgClusters per namespace, 10 pods each), all
// created before the operator starts. Time from starting the operator process to every ConfigMap and every
// pod annotation being right (< 60 s), RSS (< 500 MB), and the steady-state figures at that size.
import { type BenchCtx, operator, pick, type Scenario } from '../lib/context.ts';
import { awaitPublished, buildFleet, measureSteady, reportSteady, type Fleet } from '../lib/fleet.ts';
import { deltaBy, metric, type OperatorProc } from '../lib/operator.ts';
import { below } from '../lib/report.ts';
import type { PostgresServer } from '../../test/harness/postgres.ts';
import { say } from '../lib/util.ts';

export const scale: Scenario = {
  name: 'scale',
  title: 'scale: 10,000 pods in 1,000 PgClusters (quick: 2,000 in 200)',
  async run(ctx: BenchCtx) {
    const { clusters, podsPerCluster, seconds } = pick(ctx.mode, {
      full: { clusters: 1000, podsPerCluster: 10, seconds: 60 },
      quick: { clusters: 200, podsPerCluster: 10, seconds: 30 },
      smoke: { clusters: 4, podsPerCluster: 3, seconds: 10 },
    });
    let pgSrv: PostgresServer | undefined;
    let fleet: Fleet | undefined;
    let op: OperatorProc | undefined;
    try {
      pgSrv = await ctx.stack.newPostgres('scale');
      fleet = await buildFleet(ctx.stack.kube, {
        prefix: 'scale', clusters, podsPerCluster, clustersPerNamespace: 100, databaseUrl: pgSrv.url, heartbeat: '5s', node: ctx.stack.kwokNode,
      });
      op = await operator(ctx, 'scale', fleet.namespaces);
      const publishedAt = await awaitPublished(fleet, 'scale', pick(ctx.mode, { full: 900_000, quick: 600_000, smoke: 120_000 }));
      const s1 = await op.scrape();
      const memAtPublish = op.memory();
      const publishS = (publishedAt - op.startedAt) / 1000;
      // A fresh process: its counters started at zero.
      const writes = metric(s1, 'pgcluster_kube_writes_total');
      say(`scale: every output right ${publishS.toFixed(1)} s after the operator started (${writes} writes); measuring ${seconds} s of steady state`);
      const r = await measureSteady(op, fleet.tracker, pgSrv.url, seconds, 5000);
      const S = 'scale';
      ctx.report.add(S, 'pods', `fleet: pods in ${clusters} PgClusters (${fleet.namespaces.length} namespaces)`, fleet.pods, 'pods');
      ctx.report.add(S, 'publish_s', 'operator start -> every output published', publishS, 's', below(60, 's'));
      ctx.report.add(S, 'ready_s', 'operator start -> /readyz (caches synced)', (op.readyAt - op.startedAt) / 1000, 's');
      ctx.report.add(S, 'startup_writes', 'Kubernetes writes to publish everything', writes, '');
      ctx.report.add(S, 'startup_writes_per_s', 'Kubernetes writes per second while publishing', writes / ((publishedAt - op.readyAt) / 1000), '/s');
      ctx.report.add(S, 'rss_at_publish_mb', 'operator RSS when all published', memAtPublish.rss / 2 ** 20, 'MB', below(500, 'MB'));
      reportSteady(ctx.report, S, r, 1, { cpuPercent: 5, rssMB: 500 });
      ctx.report.detail(S, {
        pods: fleet.pods, clusters, namespaces: fleet.namespaces.length, podsReadySeconds: fleet.podsReadySeconds,
        publishSeconds: publishS, readySeconds: (op.readyAt - op.startedAt) / 1000,
        startupWrites: writes, startupWritesByResource: deltaBy({ series: new Map(), at: 0 }, s1, 'pgcluster_kube_writes_total', 'resource'),
        rssAtPublishMB: memAtPublish.rss / 2 ** 20, peakRssAtPublishMB: memAtPublish.peak / 2 ** 20, steady: r,
        operatorWarnings: op.logLines('"level":40'), watchRestartWarnings: op.logLines('list/watch failed'), kwokIpChanges: fleet.tracker.ipChanges.length,
      });
    } finally {
      await op?.stop();
      await fleet?.cleanup();
      await pgSrv?.destroy();
    }
  },
};
