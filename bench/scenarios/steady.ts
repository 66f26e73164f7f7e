// 3. Steady state: 1,000 pods across 100 PgClusters on one Postgres URL, 5 s heartbeat, nothing changing.
// Kubernetes writes per minute (target 0), commits per heartbeat interval as the Postgres server counts them
// (target 1 per URL), operator CPU (< 5 % of a core) and RSS (< 120 MB). Before it, the idle footprint: one
// PgCluster of 3 pods (RSS < 80 MB).
import { type BenchCtx, operator, pick, type Scenario } from '../lib/context.ts';
import { awaitPublished, buildFleet, measureSteady, publishAndMeasure, reportSteady, type Fleet } from '../lib/fleet.ts';
import type { OperatorProc } from '../lib/operator.ts';
import type { PostgresServer } from '../../test/harness/postgres.ts';
import { say } from '../lib/util.ts';
import { below } from '../lib/report.ts';

export const steady: Scenario = {
  name: 'steady',
  title: 'steady state: 1,000 pods in 100 PgClusters, 5 s heartbeat',
  async run(ctx: BenchCtx) {
    const { clusters, seconds } = pick(ctx.mode, {
      full: { clusters: 100, seconds: 300 },
      quick: { clusters: 100, seconds: 60 },
      smoke: { clusters: 3, seconds: 10 },
    });
    const podsPerCluster = ctx.mode === 'smoke' ? 3 : 10;
    let pgSrv: PostgresServer | undefined;
    let fleet: Fleet | undefined;
    let op: OperatorProc | undefined;
    try {
      // A dedicated server: its commit counter sees only the operator.
      pgSrv = await ctx.stack.newPostgres('steady');
      // Idle first: one small PgCluster (3 pods), the footprint of the operator itself.
      fleet = await buildFleet(ctx.stack.kube, { prefix: 'idle', clusters: 1, podsPerCluster: 3, clustersPerNamespace: 1, databaseUrl: pgSrv.url, heartbeat: '5s', node: ctx.stack.kwokNode });
      const idle = (await publishAndMeasure(ctx, 'idle', fleet, fleet.namespaces, pgSrv.url, pick(ctx.mode, { full: 60, quick: 30, smoke: 5 }), 120_000)).steady;
      ctx.report.add('steady', 'idle_rss_mb', 'operator RSS idle: one PgCluster of 3 pods', idle.rssMB, 'MB', below(80, 'MB'));
      ctx.report.add('steady', 'idle_heap_mb', 'operator V8 heap used, idle', idle.heapUsedMB, 'MB');
      // What the idle RSS is made of (/proc/<pid>/smaps): what a smaller footprint would have to cut.
      ctx.report.add('steady', 'idle_rss_node_binary_mb', 'of the idle RSS: the node executable (code, read-only data)', idle.rssByMappingMB.nodeBinary, 'MB');
      ctx.report.add('steady', 'idle_rss_files_mb', 'of the idle RSS: other files (shared libraries)', idle.rssByMappingMB.otherFiles, 'MB');
      ctx.report.add('steady', 'idle_rss_anon_mb', 'of the idle RSS: anonymous (V8 heap and code, malloc, stacks)', idle.rssByMappingMB.anonymous, 'MB');
      await fleet.cleanup();
      fleet = undefined;
      ctx.report.detail('steady-idle', { ...idle });
      fleet = await buildFleet(ctx.stack.kube, {
        prefix: 'steady', clusters, podsPerCluster, clustersPerNamespace: 100, databaseUrl: pgSrv.url, heartbeat: '5s', node: ctx.stack.kwokNode,
      });
      op = await operator(ctx, 'steady', fleet.namespaces);
      const publishedAt = await awaitPublished(fleet, 'steady', 300_000);
      say(`steady: all outputs published ${((publishedAt - op.startedAt) / 1000).toFixed(1)} s after the operator started; measuring ${seconds} s`);
      const r = await measureSteady(op, fleet.tracker, pgSrv.url, seconds, 5000);
      const S = 'steady';
      ctx.report.add(S, 'pods', `fleet: pods in ${clusters} PgClusters, one Postgres URL`, fleet.pods, 'pods');
      reportSteady(ctx.report, S, r, 1, { cpuPercent: 5, rssMB: 120 });
      ctx.report.detail(S, { pods: fleet.pods, clusters, publishSeconds: (publishedAt - op.startedAt) / 1000, ...r, operatorWarnings: op.logLines('"level":40'), watchRestartWarnings: op.logLines('list/watch failed'), kwokIpChanges: fleet.tracker.ipChanges.length });
    } finally {
      await op?.stop();
      await fleet?.cleanup();
      await pgSrv?.destroy();
    }
  },
};
