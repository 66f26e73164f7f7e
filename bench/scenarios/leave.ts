// Leave across clusters: two operators (two Kubernetes clusters' worth: a namespace each, an operator each)
// share one database and channel, 100 members each. Members of cluster A leave one at a time; the figure is
// when cluster B's outputs (its ConfigMap and the annotation of each of its members) drop them — said on the
// operators' side channel, against peerTimeout (15 s by default), which is what B would wait without it.
import { type BenchCtx, operator, pick, type Scenario } from '../lib/context.ts';
import { cleanupNamespace, createNamespace, createPgCluster, BenchKubelet, createSecret } from '../lib/kube.ts';
import type { OperatorProc } from '../lib/operator.ts';
import { atMost } from '../lib/report.ts';
import { Tracker, type Latency } from '../lib/tracker.ts';
import { channelName, pool, range, say, sleep, summarize, until, withTimeout } from '../lib/util.ts';
import { round1 } from './join.ts';

export const leave: Scenario = {
  name: 'leave',
  title: 'leave across clusters: two operators, one database, a leave in one seen by the other',
  async run(ctx: BenchCtx) {
    const { kube, databaseUrl } = ctx.stack;
    const kubelet = new BenchKubelet(kube);
    const size = pick(ctx.mode, { full: 100, quick: 100, smoke: 4 });
    const leaves = pick(ctx.mode, { full: 50, quick: 20, smoke: 2 });
    const nsA = await createNamespace(kube, 'leave-a');
    const nsB = await createNamespace(kube, 'leave-b');
    const channel = channelName(nsA, 'leave');
    const tracker = new Tracker(kube, [nsA, nsB]);
    const ops: OperatorProc[] = [];
    try {
      await tracker.start();
      for (const ns of [nsA, nsB]) {
        await createSecret(kube, ns, 'db', databaseUrl);
        await createPgCluster(kube, ns, 'leave', { app: 'leave', secret: 'db', channel });
      }
      const pods = (ns: string, tag: string) => range(size).map((i) => `leave-${tag}-${String(i).padStart(3, '0')}`).map((name) => ({ ns, name }));
      const all = [...pods(nsA, 'a'), ...pods(nsB, 'b')];
      await pool(all, 16, (p) => kubelet.start(p.ns, p.name, { app: 'leave' }));
      await until('all pods Ready', () => tracker.members(nsA, 'leave').length === size && tracker.members(nsB, 'leave').length === size, 120_000);
      ops.push(await operator(ctx, 'leave-a', [nsA]), await operator(ctx, 'leave-b', [nsB]));
      const cmB = `${nsB}/leave-peers`;
      await until('each cluster lists both clusters\' members', () => (tracker.cms.get(cmB)?.size ?? 0) === 2 * size && (tracker.cms.get(`${nsA}/leave-peers`)?.size ?? 0) === 2 * size, 120_000);

      say(`leave: ${leaves} members of cluster A leave, one at a time; measured at cluster B`);
      const seen: Latency[] = [];
      for (const { name } of pods(nsA, 'a').slice(0, leaves)) {
        const ip = tracker.pods.get(`${nsA}/${name}`)?.ip;
        if (!ip) throw new Error(`pod ${nsA}/${name} has no IP`);
        const done = new Promise<Latency>((resolve) => {
          const off = tracker.onPod((st, prev, at) => {
            if (st.ns !== nsA || st.name !== name || !st.deleting || prev?.deleting) return;
            off();
            resolve(tracker.expect(nsB, 'leave-peers', `leave@${ip}`, 'absent', tracker.members(nsB, 'leave').map((m) => m.name), at));
          });
        });
        await kubelet.stop(nsA, name);
        seen.push(await withTimeout(done, 60_000, `${name} gone from cluster B's outputs`));
        await sleep(200);
      }
      const s = summarize(seen.map((x) => x.ms));
      const cm = summarize(seen.map((x) => x.cmMs));
      const S = 'leave';
      const r = ctx.report;
      r.add(S, 'leave_p50_ms', `leave seen by the other cluster's outputs p50 (${s.n} leaves, ${size} members each)`, s.p50, 'ms');
      r.add(S, 'leave_p99_ms', 'leave seen by the other cluster\'s outputs p99', s.p99, 'ms', atMost(1000, 'ms'));
      r.add(S, 'cm_leave_p99_ms', 'its ConfigMap alone p99', cm.p99, 'ms');
      r.add(S, 'baseline_ms', 'without the side channel: peerTimeout (default)', 15_000, 'ms');
      r.detail(S, { size, leaves: s.n, leaveMs: s, configMapMs: cm, samples: { leaves: seen.map((x) => round1(x.ms)) } });
    } finally {
      tracker.stop();
      for (const op of ops) await op.stop();
      await kubelet.drain();
      for (const ns of [nsA, nsB]) await cleanupNamespace(kube, ns).catch(() => {});
    }
  },
};
