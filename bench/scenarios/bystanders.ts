// Bystanders (issue 13, goal 1): the same clustered fleet (200 pods in 20 PgClusters) twice in one run, once
// alone and once among tens of thousands of pods that no PgCluster selects — half in the fleet's own
// namespaces, half in other namespaces the operator also watches. Each time a fresh operator starts on
// fresh PgClusters: time to every output published, RSS when published, and a steady window's CPU and RSS.
// The pod cache (kube/watchSet.ts) should make the two runs alike: bystanders are filtered out by the API
// server and never reach the operator.
import type { KubeClient } from '../../src/kube/client.ts';
import { paths } from '../../src/kube/resources.ts';
import { type BenchCtx, pick, type Scenario } from '../lib/context.ts';
import { buildFleet, publishAndMeasure, type Fleet } from '../lib/fleet.ts';
import { cleanupNamespace, createNamespace } from '../lib/kube.ts';
import { metric } from '../lib/operator.ts';
import { atMost } from '../lib/report.ts';
import type { PostgresServer } from '../../test/harness/postgres.ts';
import { mono, pool, range, say } from '../lib/util.ts';

/** Pods no PgCluster selects: bound to no node (nothing runs them), labelled like an unrelated app. */
async function createBystanders(kube: KubeClient, namespaces: string[], count: number): Promise<void> {
  const jobs = range(count).map((i) => ({ ns: namespaces[i % namespaces.length] as string, name: `bystander-${i}` }));
  const t0 = mono();
  let done = 0;
  const progress = setInterval(() => say(`bystanders: ${done}/${count} pods created`), 10_000);
  try {
    await pool(jobs, 32, async (j) => {
      await kube.create(paths.pods(j.ns), {
        apiVersion: 'v1', kind: 'Pod',
        metadata: { name: j.name, labels: { app: 'bystander', 'pod-template-hash': String(j.name.length) } },
        spec: { containers: [{ name: 'app', image: 'registry.invalid/bystander:1', resources: { requests: { cpu: '10m' } } }] },
      }, 'pods');
      done++;
    });
  } finally {
    clearInterval(progress);
  }
  say(`bystanders: ${count} pods in ${namespaces.length} namespace(s) in ${((mono() - t0) / 1000).toFixed(1)} s`);
}

export const bystanders: Scenario = {
  name: 'bystanders',
  title: 'bystanders: 200 clustered pods alone, then among 50,000 pods no PgCluster selects (quick: 5,000; smoke: 20 among 60)',
  async run(ctx: BenchCtx) {
    const { count, otherNamespaces, seconds, clusters } = pick(ctx.mode, {
      full: { count: 50_000, otherNamespaces: 5, seconds: 60, clusters: 20 },
      quick: { count: 5_000, otherNamespaces: 2, seconds: 30, clusters: 20 },
      smoke: { count: 60, otherNamespaces: 1, seconds: 10, clusters: 2 },
    });
    const fleetOpts = { clusters, podsPerCluster: 10, clustersPerNamespace: Math.ceil(clusters / 2), heartbeat: '5s', node: ctx.stack.kwokNode };
    const kube = ctx.stack.kube;
    let pgSrv: PostgresServer | undefined;
    let fleet: Fleet | undefined;
    const others: string[] = [];
    try {
      pgSrv = await ctx.stack.newPostgres('bystanders');
      // Alone.
      fleet = await buildFleet(kube, { ...fleetOpts, prefix: 'alone', databaseUrl: pgSrv.url });
      const alone = await publishAndMeasure(ctx, 'bystanders-alone', fleet, fleet.namespaces, pgSrv.url, seconds);
      await fleet.cleanup();
      fleet = undefined;
      // Among bystanders: half in other watched namespaces, half in the fleet's namespaces.
      for (const _ of range(otherNamespaces)) others.push(await createNamespace(kube, 'bystanders'));
      fleet = await buildFleet(kube, { ...fleetOpts, prefix: 'among', databaseUrl: pgSrv.url });
      await createBystanders(kube, others, Math.floor(count / 2));
      await createBystanders(kube, fleet.namespaces, count - Math.floor(count / 2));
      const among = await publishAndMeasure(ctx, 'bystanders-among', fleet, [...fleet.namespaces, ...others], pgSrv.url, seconds);

      const S = 'bystanders';
      const ratio = (a: number, b: number) => (b > 0 ? a / b : NaN);
      ctx.report.add(S, 'bystander_pods', 'pods no PgCluster selects (half in the fleet\'s namespaces, half in others)', count, 'pods');
      ctx.report.add(S, 'cached_pods_among', 'pods in the operator\'s cache among the bystanders (200 clustered)', metric(among.atPublish, 'pgcluster_cached_pods'), 'pods', atMost(fleetOpts.clusters * fleetOpts.podsPerCluster, 'pods'));
      ctx.report.add(S, 'rss_alone_mb', 'operator RSS, steady, clustered pods alone', alone.steady.rssMB, 'MB');
      ctx.report.add(S, 'rss_among_mb', 'operator RSS, steady, among the bystanders', among.steady.rssMB, 'MB');
      ctx.report.add(S, 'rss_ratio', 'RSS among / alone (steady)', ratio(among.steady.rssMB, alone.steady.rssMB), 'x', atMost(1.1, 'x'));
      ctx.report.add(S, 'cpu_alone_percent', 'operator CPU, steady, alone', alone.steady.cpuPercent, '%');
      ctx.report.add(S, 'cpu_among_percent', 'operator CPU, steady, among the bystanders', among.steady.cpuPercent, '%');
      ctx.report.add(S, 'publish_alone_s', 'operator start -> every output published, alone', alone.publishS, 's');
      ctx.report.add(S, 'publish_among_s', 'operator start -> every output published, among the bystanders', among.publishS, 's');
      ctx.report.add(S, 'publish_ratio', 'publish time among / alone', ratio(among.publishS, alone.publishS), 'x', atMost(1.1, 'x'));
      const summary = (r: typeof alone) => ({ publishS: r.publishS, rssAtPublishMB: r.rssAtPublishMB, cachedPods: metric(r.atPublish, 'pgcluster_cached_pods'), podWatches: metric(r.atPublish, 'pgcluster_pod_watches'), steady: r.steady });
      ctx.report.detail(S, { count, otherNamespaces, alone: summary(alone), among: summary(among) });
    } finally {
      await fleet?.cleanup();
      for (const ns of others) await cleanupNamespace(kube, ns).catch(() => {});
      await pgSrv?.destroy();
    }
  },
};
