// 2. Remote expiry: a foreign node (a plain pg client NOTIFYing its name every second, as a libcluster_postgres
// node on another cluster would) is heard, then stops; how long until it is gone from the ConfigMap?
import pg from 'pg';
import { type BenchCtx, operator, pick, type Scenario } from '../lib/context.ts';
import { BenchKubelet, cleanupNamespace, createNamespace, createPgCluster, createSecret } from '../lib/kube.ts';
import type { OperatorProc } from '../lib/operator.ts';
import { atMost } from '../lib/report.ts';
import { Tracker } from '../lib/tracker.ts';
import { channelName, mono, range, say, summarize, testNetIp, until, withTimeout } from '../lib/util.ts';
import { round1 } from './join.ts';

export const expiry: Scenario = {
  name: 'expiry',
  title: 'remote expiry: a foreign node stops, gone within peerTimeout + 1 s',
  async run(ctx: BenchCtx) {
    const { kube, databaseUrl } = ctx.stack;
    // Pods run by the BenchKubelet: kwok may give a pod the operator annotated while Pending a second IP.
    const kubelet = new BenchKubelet(kube);
    // Full: the defaults (5 s heartbeat, 15 s peerTimeout). Quick/smoke: 1 s heartbeat, 3 s peerTimeout.
    const { heartbeat, peerTimeoutMs } = pick(ctx.mode, {
      full: { heartbeat: '5s', peerTimeoutMs: 15_000 },
      quick: { heartbeat: '1s', peerTimeoutMs: 3_000 },
      smoke: { heartbeat: '1s', peerTimeoutMs: 2_000 },
    });
    const reps = pick(ctx.mode, { full: 5, quick: 4, smoke: 1 });
    const ns = await createNamespace(kube, 'expiry');
    const channel = channelName(ns, 'expiry');
    const cm = 'expiry-peers';
    const tracker = new Tracker(kube, [ns]);
    const sender = new pg.Client({ connectionString: databaseUrl });
    sender.on('error', () => {});
    let op: OperatorProc | undefined;
    try {
      await tracker.start();
      await sender.connect();
      await createSecret(kube, ns, 'db', databaseUrl);
      await createPgCluster(kube, ns, 'expiry', {
        app: 'expiry', secret: 'db', channel, heartbeatInterval: heartbeat, peerTimeout: `${peerTimeoutMs / 1000}s`,
      });
      for (const i of range(3)) await kubelet.start(ns, `expiry-${i}`, { app: 'expiry' });
      op = await operator(ctx, 'expiry', [ns]);
      await until('3 members published', () => tracker.cms.get(`${ns}/${cm}`)?.size === 3, 60_000);

      const gone: number[] = [];
      for (const r of range(reps)) {
        const node = `remote${r}@${testNetIp(r)}`;
        // Announce every second, as the foreign node would, until it is published and then some.
        let lastCommit = 0;
        const beat = async () => { await sender.query('SELECT pg_notify($1, $2)', [channel, node]); lastCommit = mono(); };
        await beat();
        const timer = setInterval(() => { void beat().catch(() => {}); }, 1000);
        await until(`${node} in the ConfigMap`, () => tracker.cms.get(`${ns}/${cm}`)?.has(node), 30_000, 20);
        await new Promise((res) => setTimeout(res, 2500));
        clearInterval(timer);
        await new Promise((res) => setTimeout(res, 50)); // a beat already in flight lands
        const stoppedAt = lastCommit;
        const t = await withTimeout(until(`${node} gone`, () => !tracker.cms.get(`${ns}/${cm}`)?.has(node) && mono(), peerTimeoutMs * 3, 5), peerTimeoutMs * 3 + 1000, `${node} to expire`);
        gone.push(t - stoppedAt);
        say(`expiry: ${node} gone ${((t - stoppedAt) / 1000).toFixed(2)} s after its last NOTIFY`);
      }
      const s = summarize(gone);
      const S = 'expiry';
      ctx.report.add(S, 'peer_timeout_ms', 'peerTimeout', peerTimeoutMs, 'ms');
      ctx.report.add(S, 'gone_mean_ms', `last NOTIFY -> gone from ConfigMap, mean (${s.n} nodes)`, s.mean, 'ms');
      ctx.report.add(S, 'gone_max_ms', 'last NOTIFY -> gone from ConfigMap, max', s.max, 'ms', atMost(peerTimeoutMs + 1000, 'ms'));
      ctx.report.add(S, 'overshoot_max_ms', 'max beyond peerTimeout', s.max - peerTimeoutMs, 'ms', atMost(1000, 'ms'));
      ctx.report.detail(S, { heartbeat, peerTimeoutMs, goneMs: s, samples: gone.map(round1) });
    } finally {
      tracker.stop();
      await sender.end().catch(() => {});
      await op?.stop();
      await cleanupNamespace(kube, ns).catch(() => {});
    }
  },
};
