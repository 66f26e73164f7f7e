// 5. Churn: a rolling replacement of the 100 pods of one PgCluster, the way a Deployment rolls out with
// maxSurge 5 and maxUnavailable 0: create 5 new pods, as soon as they are Ready delete 5 old ones, repeat.
// Kubernetes writes against the naive count (every membership change rewrites the ConfigMap and every
// member's annotation), the coalescing that gives, and join latency during the churn.
import { type BenchCtx, operator, pick, type Scenario } from '../lib/context.ts';
import { cleanupNamespace, createNamespace, createPgCluster, BenchKubelet, createSecret } from '../lib/kube.ts';
import { awaitJoin, awaitLeave, type ClusterRef } from '../lib/membership.ts';
import { delta, deltaBy, type OperatorProc } from '../lib/operator.ts';
import { atMost } from '../lib/report.ts';
import { Tracker, type Latency } from '../lib/tracker.ts';
import { channelName, mono, pool, range, say, summarize, until, withTimeout } from '../lib/util.ts';
import { fanOutFloor, round1, settle } from './join.ts';

export const churn: Scenario = {
  name: 'churn',
  title: 'churn: rolling replacement of 100 pods (maxSurge 5, maxUnavailable 0)',
  async run(ctx: BenchCtx) {
    const { kube, databaseUrl } = ctx.stack;
    const kubelet = new BenchKubelet(kube);
    const size = pick(ctx.mode, { full: 100, quick: 100, smoke: 6 });
    const surge = pick(ctx.mode, { full: 5, quick: 5, smoke: 2 });
    const ns = await createNamespace(kube, 'churn');
    const c: ClusterRef = { ns, app: 'churn', basename: 'churn', cm: 'churn-peers' };
    const tracker = new Tracker(kube, [ns]);
    let op: OperatorProc | undefined;
    try {
      await tracker.start();
      await createSecret(kube, ns, 'db', databaseUrl);
      await createPgCluster(kube, ns, 'churn', { app: 'churn', secret: 'db', channel: channelName(ns, 'churn') });
      const old = range(size).map((i) => `churn-a-${String(i).padStart(3, '0')}`);
      await pool(old, 16, (p) => kubelet.start(ns, p, { app: 'churn' }));
      await until('all pods Ready', () => tracker.members(ns, 'churn').length === size, 120_000);
      // The fan-out floor of this run, on as many pods no PgCluster selects (item 5 of issue 13: the tail is
      // judged against it, not in absolute ms).
      const floorPods = range(size).map((i) => `floor-${i}`);
      await pool(floorPods, 16, (p) => kubelet.start(ns, p, { app: 'floor' }));
      await until('floor pods Ready', () => tracker.members(ns, 'floor').length === size, 120_000);
      const floor = summarize(await fanOutFloor(kube, ns, floorPods, pick(ctx.mode, { full: 10, quick: 5, smoke: 2 }), 'o')).p50;
      op = await operator(ctx, 'churn', [ns]);
      await withTimeout(tracker.expectAll([{ ns, cm: c.cm, pods: old, app: 'churn', basename: 'churn' }]), 120_000, 'initial members published');
      await settle(op);

      // The naive count: every membership change rewrites the ConfigMap and the annotation of every member.
      const members = new Set(tracker.members(ns, 'churn').map((p) => p.name));
      let changes = 0;
      let naive = 0;
      const offNaive = tracker.onPod((st) => {
        if (st.ns !== ns || st.labels.app !== 'churn') return;
        const member = st.ready && !!st.ip && !st.deleting && !st.gone;
        if (member === members.has(st.name)) return;
        if (member) members.add(st.name); else members.delete(st.name);
        changes++;
        naive += 1 + members.size;
      });

      say(`churn: replacing ${size} pods, ${surge} at a time`);
      const s0 = await op.scrape();
      const t0 = mono();
      const joins: Promise<Latency>[] = [];
      const leaves: Promise<Latency>[] = [];
      for (let i = 0; i < size; i += surge) {
        const fresh = range(Math.min(surge, size - i)).map((j) => `churn-b-${String(i + j).padStart(3, '0')}`);
        for (const p of fresh) joins.push(awaitJoin(tracker, c, p));
        await Promise.all(fresh.map((p) => kubelet.start(ns, p, { app: 'churn' })));
        await until(`${fresh.join(',')} Ready`, () => fresh.every((p) => tracker.pods.get(`${ns}/${p}`)?.readyAt !== undefined), 60_000, 10);
        const victims = old.slice(i, i + fresh.length);
        for (const p of victims) leaves.push(awaitLeave(tracker, c, p));
        await Promise.all(victims.map((p) => kubelet.stop(ns, p)));
      }
      const rolloutS = (mono() - t0) / 1000;
      const j = await withTimeout(Promise.all(joins), 120_000, 'every new pod in the outputs');
      const l = await withTimeout(Promise.all(leaves), 120_000, 'every old pod gone from the outputs');
      const convergedS = (mono() - t0) / 1000;
      await settle(op);
      offNaive();
      const s1 = await op.scrape();
      const byResource = deltaBy(s0, s1, 'pgcluster_kube_writes_total', 'resource');
      const outputWrites = (byResource.pods ?? 0) + (byResource.configmaps ?? 0);
      const total = delta(s0, s1, 'pgcluster_kube_writes_total');
      const js = summarize(j.map((x) => x.ms));
      const ls = summarize(l.map((x) => x.ms));
      const S = 'churn';
      const r = ctx.report;
      r.add(S, 'rollout_s', `rollout: ${size} pods replaced, ${surge} at a time`, rolloutS, 's');
      r.add(S, 'converged_s', 'rollout start -> outputs final', convergedS, 's');
      r.add(S, 'membership_changes', 'membership changes', changes, '');
      r.add(S, 'naive_writes', 'naive writes (ConfigMap + every member, per change)', naive, '');
      r.add(S, 'output_writes', 'actual output writes (ConfigMap + pod annotations)', outputWrites, '');
      r.add(S, 'total_writes', 'actual Kubernetes writes, all (incl. status)', total, '');
      r.add(S, 'coalescing', 'coalescing: naive / actual output writes', outputWrites ? naive / outputWrites : null, 'x');
      r.add(S, 'join_p50_ms', `join latency during churn p50 (${js.n} joins)`, js.p50, 'ms');
      r.add(S, 'join_p99_ms', 'join latency during churn p99', js.p99, 'ms', atMost(250, 'ms'));
      r.add(S, 'floor_fanout_p50_ms', `floor: ${size} annotation PATCHes at the operator's concurrency, p50`, floor, 'ms');
      r.add(S, 'join_p99_vs_floor', 'join latency during churn p99 / fan-out floor', js.p99 / floor, 'x', atMost(2, 'x'));
      r.add(S, 'leave_p99_ms', 'leave latency during churn p99', ls.p99, 'ms');
      r.add(S, 'cm_join_p99_ms', 'ConfigMap alone: join latency during churn p99', summarize(j.map((x) => x.cmMs)).p99, 'ms');
      r.detail(S, {
        size, surge, floorFanOutMs: floor, rolloutSeconds: rolloutS, convergedSeconds: convergedS, changes, naive, outputWrites, totalWrites: total,
        writesByResource: byResource, joinMs: js, leaveMs: ls, 
        samples: { joins: j.map((x) => round1(x.ms)), leaves: l.map((x) => round1(x.ms)) },
      });
    } finally {
      tracker.stop();
      await op?.stop();
      await kubelet.drain();
      await cleanupNamespace(kube, ns).catch(() => {});
    }
  },
};
