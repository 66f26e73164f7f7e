// 3. Steady state: 1,000 pods across 100 PgClusters on one Postgres URL, 5 s heartbeat, nothing changing.
// Kubernetes writes per minute (target 0), commits per heartbeat interval as the Postgres server counts them
// (target 1 per URL), operator CPU (< 5 % of a core) and RSS (< 200 MB).
import { type BenchCtx, operator, pick, type Scenario } from '../lib/context.ts';
import { awaitPublished, buildFleet, measureSteady, reportSteady, type Fleet } from '../lib/fleet.ts';
import type { OperatorProc } from '../lib/operator.ts';
import type { PostgresServer } from '../../scripts/stack/postgres.ts';
import { say } from '../lib/util.ts';

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
      fleet = await buildFleet(ctx.stack.kube, {
        prefix: 'steady', clusters, podsPerCluster, clustersPerNamespace: 100, databaseUrl: pgSrv.url, heartbeat: '5s', node: ctx.stack.kwokNode,
      });
      op = await operator(ctx, 'steady', fleet.namespaces);
      const publishedAt = await awaitPublished(fleet, 'steady', 300_000);
      say(`steady: all outputs published ${((publishedAt - op.startedAt) / 1000).toFixed(1)} s after the operator started; measuring ${seconds} s`);
      const r = await measureSteady(op, fleet.tracker, pgSrv.url, seconds, 5000);
      const S = 'steady';
      ctx.report.add(S, 'pods', `fleet: pods in ${clusters} PgClusters, one Postgres URL`, fleet.pods, 'pods');
      reportSteady(ctx.report, S, r, 1, { cpuPercent: 5, rssMB: 200 });
      ctx.report.detail(S, { pods: fleet.pods, clusters, publishSeconds: (publishedAt - op.startedAt) / 1000, ...r, operatorWarnings: op.logLines('"level":40'), watchRestartWarnings: op.logLines('list/watch failed'), kwokIpChanges: fleet.tracker.ipChanges.length });
    } finally {
      await op?.stop();
      await fleet?.cleanup();
      await pgSrv?.destroy();
    }
  },
};
