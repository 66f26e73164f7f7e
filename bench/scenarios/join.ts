// 1. Join and leave latency: one PgCluster of 100 pods (run by the BenchKubelet, bench/lib/kube.ts); one pod
// leaves, one joins, many times, one at a time. Beside it the floors measured in the same run, and libcluster's
// Kubernetes-strategy polling baseline.
import { type BenchCtx, operator, pick, type Scenario } from '../lib/context.ts';
import { createNamespace, createPgCluster, BenchKubelet, createSecret, cleanupNamespace } from '../lib/kube.ts';
import { awaitJoin, awaitLeave, diagnose, type ClusterRef } from '../lib/membership.ts';
import { delta, histogramMeanMs, metric, type OperatorProc } from '../lib/operator.ts';
import { notifyRoundTrips } from '../lib/pg.ts';
import { atMost } from '../lib/report.ts';
import { Tracker, type Latency } from '../lib/tracker.ts';
import { WRITE_CONCURRENCY as OPERATOR_WRITE_CONCURRENCY } from '../../src/controller/reconcile.ts';
import { cpuByRoleSince, sampleCpu } from '../lib/procstat.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import { channelName, mono, pool, range, say, sleep, summarize, until, withTimeout } from '../lib/util.ts';
import { paths } from '../../src/kube/resources.ts';

const TARGET_MS = 250;
const IDLE_MS = 6000;

export const join: Scenario = {
  name: 'join',
  title: 'join/leave latency, 100 pods in one PgCluster',
  async run(ctx: BenchCtx) {
    const { kube, databaseUrl } = ctx.stack;
    const kubelet = new BenchKubelet(kube);
    const size = pick(ctx.mode, { full: 100, quick: 100, smoke: 5 });
    const rounds = pick(ctx.mode, { full: 60, quick: 25, smoke: 3 });
    const idleRounds = pick(ctx.mode, { full: 5, quick: 3, smoke: 1 });
    const ns = await createNamespace(kube, 'join');
    const c: ClusterRef = { ns, app: 'join', basename: 'join', cm: 'join-peers' };
    const tracker = new Tracker(kube, [ns]);
    let op: OperatorProc | undefined;
    try {
      await tracker.start();
      await createSecret(kube, ns, 'db', databaseUrl);
      await createPgCluster(kube, ns, 'join', { app: 'join', secret: 'db', channel: channelName(ns, 'join') });
      op = await operator(ctx, 'join', [ns]);
      let seq = 0;
      const podName = () => `join-${String(seq++).padStart(4, '0')}`;
      const initial = range(size).map(() => podName());
      // Unselected pods for the write floors: patching them wakes no reconcile.
      const floorPods = range(size).map((i) => `floor-${i}`);
      say(`join: creating ${size} member pods and ${size} unselected pods`);
      await pool(initial, 16, (p) => kubelet.start(ns, p, { app: 'join' }));
      await pool(floorPods, 16, (p) => kubelet.start(ns, p, { app: 'floor' }));
      await until('all pods Ready', () => tracker.members(ns, 'join').length === size && tracker.members(ns, 'floor').length === size, 120_000);
      await withTimeout(tracker.expectAll([{ ns, cm: c.cm, pods: initial, app: 'join', basename: 'join' }]), 120_000, `${size} members published`).catch(async (e: Error) => {
        const wrong = tracker.allWrong().map((w) => `${w.key}: ${w.have.length} names, missing ${w.want.filter((n) => !w.have.includes(n)).join(' ') || '-'}, extra ${w.have.filter((n) => !w.want.includes(n)).join(' ') || '-'}`);
        const first = tracker.allWrong(1)[0];
        throw new Error(`${e.message}: ${tracker.allProgress().ok}/${tracker.allProgress().total} right; ${wrong.slice(0, 2).join('; ')}; `
          + `IP changes seen: ${tracker.ipChanges.slice(0, 10).join(', ') || '-'}; ${await livePodsWithIps(kube, ns, first ? [...first.have, ...first.want] : [])}`);
      });
      await settle(op);

      // Floors, measured now on the same machine and stack.
      say('join: floors (pg_notify round trip, annotation PATCH round trip)');
      const notify = await notifyRoundTrips(databaseUrl, pick(ctx.mode, { full: 100, quick: 50, smoke: 10 }));
      // The floor is a PATCH over an open connection, alone and as the operator fans out (same concurrency,
      // and 4x as wide to show whether more in flight would help). While the fan-out runs, the CPU every
      // process on the machine spends on it: what a PATCH costs the API server, etcd and the watchers.
      const patch = (pod: string, v: string) => kube.patch(paths.pod(ns, pod), { metadata: { annotations: { 'bench.pgcluster.io/probe': v } } }, 'pods');
      const patchOne: number[] = [];
      for (const i of range(pick(ctx.mode, { full: 50, quick: 30, smoke: 5 }))) {
        const t0 = mono();
        await patch('floor-0', `p${i}`);
        patchOne.push(mono() - t0);
      }
      const fanOut: number[] = [];
      const fanOutWide: number[] = [];
      const fanOutRounds = pick(ctx.mode, { full: 10, quick: 5, smoke: 2 });
      const roles = { operator: op.pid, 'bench (this process)': process.pid };
      const cpu0 = sampleCpu();
      fanOut.push(...await fanOutFloor(kube, ns, floorPods, fanOutRounds, 'o'));
      await sleep(200); // let the watchers finish with the last events
      const fanOutCpu = cpuByRoleSince(cpu0, roles);
      const patches = fanOutRounds * size;
      const cpuMsPerPatch = Object.fromEntries(Object.entries(fanOutCpu).map(([role, s]) => [role, round1(((s * 1000) / patches) * 100) / 100]));
      for (const r of range(fanOutRounds)) {
        const t0 = mono();
        await pool(floorPods, 4 * OPERATOR_WRITE_CONCURRENCY, (p) => patch(p, `w${r}`));
        fanOutWide.push(mono() - t0);
      }

      const opState = async () => {
        const m = await op!.scrape().catch(() => undefined);
        if (!m) return '';
        const v = (n: string) => metric(m, n);
        return `; operator: members ${v('pgcluster_members')}, peers ${v('pgcluster_peers')}, reconciles ${v('controller_runtime_reconcile_total')} (errors ${v('controller_runtime_reconcile_errors_total')}), `
          + `active workers ${v('controller_runtime_active_workers')}, queue depth ${v('workqueue_depth')}, writes issued ${v('pgcluster_kube_writes_total')}`;
      };
      const explain = async (e: Error): Promise<never> => { throw new Error(`${e.message} (${await diagnose(kube, tracker, c)}${await opState()})`); };
      say(`join: ${rounds} leaves and ${rounds} joins, one at a time`);
      const s0 = await op.scrape();
      const joins: Latency[] = [];
      const leaves: Latency[] = [];
      // The floor again after every round, so that it samples the machine as the rounds do: its tail is the
      // API server's on this machine at that moment, which a floor measured once beforehand does not show.
      const floorDuring: number[] = [];
      for (const r of range(rounds)) {
        const victim = tracker.members(ns, 'join').map((p) => p.name).sort()[0]!;
        const left = awaitLeave(tracker, c, victim);
        await kubelet.stop(ns, victim);
        leaves.push(await withTimeout(left, 30_000, `${victim} gone from the outputs`).catch(explain));
        await sleep(100 + Math.random() * 300);
        const pod = podName();
        const joined = awaitJoin(tracker, c, pod);
        await kubelet.start(ns, pod, { app: 'join' });
        joins.push(await withTimeout(joined, 30_000, `${pod} in the outputs`).catch(explain));
        await sleep(100 + Math.random() * 300);
        floorDuring.push(...await fanOutFloor(kube, ns, floorPods, 1, `r${r}-`));
        await sleep(100 + Math.random() * 300);
        if ((r + 1) % 10 === 0) say(`join: ${r + 1}/${rounds} rounds`);
      }
      const s1 = await op.scrape();

      // Joins in a real cluster come after quiet spells, when an HTTP/1.1 client would have let its
      // keep-alive connections go (undici: after 4 s) and would open one per PATCH in flight again.
      const idleJoins: number[] = [];
      for (const _ of range(idleRounds)) {
        await sleep(IDLE_MS);
        const pod = podName();
        const joined = awaitJoin(tracker, c, pod);
        await kubelet.start(ns, pod, { app: 'join' });
        idleJoins.push((await withTimeout(joined, 30_000, `${pod} in the outputs`).catch(explain)).ms);
      }
      const internalMean = histogramMeanMs(s0, s1, 'pgcluster_join_to_published_seconds').meanMs;
      const { meanMs: passMean, count: passes } = histogramMeanMs(s0, s1, 'pgcluster_annotation_fanout_seconds');
      const { meanMs: reconcileMean, count: reconciles } = histogramMeanMs(s0, s1, 'controller_runtime_reconcile_time_seconds');

      const j = summarize(joins.map((x) => x.ms));
      const l = summarize(leaves.map((x) => x.ms));
      const all = summarize([...joins, ...leaves].map((x) => x.ms));
      const cmOnly = summarize([...joins, ...leaves].map((x) => x.cmMs));
      const p = ctx.report;
      const S = 'join';
      p.add(S, 'join_p50_ms', `join latency p50 (${j.n} joins, ${size} members)`, j.p50, 'ms');
      p.add(S, 'join_p99_ms', 'join latency p99', j.p99, 'ms', atMost(TARGET_MS, 'ms'));
      p.add(S, 'join_max_ms', 'join latency max', j.max, 'ms');
      p.add(S, 'leave_p50_ms', `leave latency p50 (${l.n} leaves)`, l.p50, 'ms');
      p.add(S, 'leave_p99_ms', 'leave latency p99', l.p99, 'ms', atMost(TARGET_MS, 'ms'));
      p.add(S, 'leave_max_ms', 'leave latency max', l.max, 'ms');
      p.add(S, 'all_p99_ms', 'join+leave latency p99', all.p99, 'ms', atMost(TARGET_MS, 'ms'));
      p.add(S, 'idle_join_max_ms', `join latency after ${IDLE_MS / 1000} s without any Kubernetes request, max of ${idleJoins.length}`, summarize(idleJoins).max, 'ms');
      p.add(S, 'cm_p50_ms', 'ConfigMap alone: join+leave latency p50', cmOnly.p50, 'ms');
      p.add(S, 'cm_p99_ms', 'ConfigMap alone: join+leave latency p99', cmOnly.p99, 'ms');
      // Issue 13 item 5: the tail against the fan-out floor of the same run (absolute times drift here): p99
      // against the p99 of the floor taken between the rounds (as many samples, the same moments), and
      // against the median of the floor taken before them.
      const during = summarize(floorDuring);
      const floor = summarize(fanOut).p50;
      p.add(S, 'join_p99_vs_floor', `join latency p99 / fan-out floor p99 (${during.n} floors between the rounds)`, j.p99 / during.p99, 'x', atMost(1.5, 'x'));
      p.add(S, 'leave_p99_vs_floor', 'leave latency p99 / fan-out floor p99 (between the rounds)', l.p99 / during.p99, 'x', atMost(1.5, 'x'));
      p.add(S, 'join_p50_vs_floor', 'join latency p50 / fan-out floor p50 (between the rounds)', j.p50 / during.p50, 'x');
      p.add(S, 'join_p99_vs_floor_p50', 'join latency p99 / fan-out floor p50 (before the rounds)', j.p99 / floor, 'x');
      p.add(S, 'leave_p99_vs_floor_p50', 'leave latency p99 / fan-out floor p50 (before the rounds)', l.p99 / floor, 'x');
      p.add(S, 'floor_during_p50_ms', `floor between the rounds: ${size} annotation PATCHes, ${OPERATOR_WRITE_CONCURRENCY} in flight, p50`, during.p50, 'ms');
      p.add(S, 'floor_during_p99_ms', 'floor between the rounds, p99', during.p99, 'ms');
      p.add(S, 'floor_notify_p50_ms', 'floor: pg_notify round trip p50', notify.p50, 'ms');
      p.add(S, 'floor_patch_p50_ms', 'floor: one annotation PATCH round trip p50', summarize(patchOne).p50, 'ms');
      p.add(S, 'floor_fanout_p50_ms', `floor: ${size} annotation PATCHes, ${OPERATOR_WRITE_CONCURRENCY} in flight, p50`, summarize(fanOut).p50, 'ms');
      p.add(S, 'floor_fanout_wide_p50_ms', `floor: ${size} annotation PATCHes, ${4 * OPERATOR_WRITE_CONCURRENCY} in flight, p50`, summarize(fanOutWide).p50, 'ms');
      const cpuTotal = Object.values(cpuMsPerPatch).reduce((a, b) => a + b, 0);
      p.add(S, 'floor_cpu_per_patch_ms', `floor: machine CPU per annotation PATCH (${Object.entries(cpuMsPerPatch).slice(0, 4).map(([k, v]) => `${k} ${v}`).join(', ')})`, cpuTotal, 'ms');
      p.add(S, 'operator_internal_mean_ms', 'operator: change seen -> outputs written, mean', internalMean, 'ms');
      p.add(S, 'operator_fanout_pass_mean_ms', `operator: one annotation fan-out pass (first PATCH issued -> last answered), mean of ${passes}`, passMean, 'ms');
      p.add(S, 'libcluster_k8s_poll_mean_ms', 'baseline: libcluster Kubernetes strategy, 5 s polling, mean (computed)', 2500, 'ms');
      p.add(S, 'libcluster_k8s_poll_max_ms', 'baseline: same, worst case (computed)', 5000, 'ms');
      p.detail(S, {
        members: size, rounds, joinsMs: j, leavesMs: l, allMs: all, configMapOnlyMs: cmOnly, floorNotifyMs: notify, floorPatchMs: summarize(patchOne),
        floorFanOutMs: summarize(fanOut), floorDuringRoundsMs: during, fanOutCpuMsPerPatch: cpuMsPerPatch, floorFanOutWideMs: summarize(fanOutWide), operatorJoinToPublishedMeanMs: internalMean, fanOutPassMeanMs: passMean, fanOutPasses: passes, reconcileMeanMs: reconcileMean, reconciles,
        idleJoinsMs: summarize(idleJoins), writesDuringRounds: delta(s0, s1, 'pgcluster_kube_writes_total'), 
        samples: { joins: joins.map((x) => round1(x.ms)), leaves: leaves.map((x) => round1(x.ms)), configMapJoins: joins.map((x) => round1(x.cmMs)), configMapLeaves: leaves.map((x) => round1(x.cmMs)) },
      });
    } finally {
      tracker.stop();
      await op?.stop();
      await kubelet.drain();
      await cleanupNamespace(kube, ns).catch(() => {});
    }
  },
};

export const round1 = (x: number) => Math.round(x * 10) / 10;

/** Which live pods (any namespace) hold the IPs of these node names: for a timeout message. */
async function livePodsWithIps(kube: KubeClient, ns: string, names: string[]): Promise<string> {
  const ips = new Set(names.map((n) => n.slice(n.indexOf('@') + 1)));
  const all = await kube.list<{ metadata: { namespace?: string; name: string; deletionTimestamp?: string }; status?: { podIP?: string } }>('/api/v1/pods');
  const hits = all.items.filter((p) => p.status?.podIP && ips.has(p.status.podIP))
    .map((p) => `${p.metadata.namespace === ns ? '' : `${p.metadata.namespace}/`}${p.metadata.name}=${p.status?.podIP}${p.metadata.deletionTimestamp ? '(deleting)' : ''}`);
  return `live pods with those IPs: ${hits.join(' ') || '-'}`;
}

/**
 * The fan-out floor: `pods.length` annotation PATCHes at the operator's concurrency, `rounds` times, over the
 * bench's open connection, on pods no PgCluster selects (no reconcile wakes); the durations in ms.
 */
export async function fanOutFloor(kube: KubeClient, ns: string, pods: string[], rounds: number, tag: string): Promise<number[]> {
  const out: number[] = [];
  for (const r of range(rounds)) {
    const t0 = mono();
    await pool(pods, OPERATOR_WRITE_CONCURRENCY, (p) => kube.patch(paths.pod(ns, p), { metadata: { annotations: { 'bench.pgcluster.io/probe': `${tag}${r}` } } }, 'pods'));
    out.push(mono() - t0);
  }
  return out;
}

/** Waits until the operator has made no Kubernetes write for 3 s (status and Events after startup). */
export async function settle(op: OperatorProc, maxMs = 60_000): Promise<void> {
  const deadline = mono() + maxMs;
  let last = await op.scrape();
  for (;;) {
    await sleep(3000);
    const now = await op.scrape();
    if (delta(last, now, 'pgcluster_kube_writes_total') === 0 || mono() > deadline) return;
    last = now;
  }
}
