// Issues 13 (items 3 and 4) and 24. A large PgCluster rolls: 1,000 members replaced the way a Deployment rolls
// out by default (maxSurge 25 %, maxUnavailable 25 %), pods run by the BenchKubelet. Twice in the same run, with
// spec.output.podAnnotationFormat list and version (docs/outputs.md): the operator's Kubernetes writes, the API
// server's and etcd's CPU seconds, its request rate, join latency during the rollout, one full annotation pass
// at rest after it (a leave), and the targets of issue 24 with the anchor beside each figure. Beside them, what
// users run today: N members each polling the Endpoints of their
// service every 5 s (libcluster's Kubernetes strategy, bench/lib/kube-sim.ts), steady and during the same
// rollout (the bench writing the Endpoints as the endpoints controller would).
import { type BenchCtx, operator, pick, type Scenario } from '../lib/context.ts';
import { BenchKubelet, cleanupNamespace, createNamespace, createPgCluster, createSecret } from '../lib/kube.ts';
import { startKubeSim, apiserverRequests } from '../lib/kube-sim.ts';
import { awaitJoin, awaitLeave, type ClusterRef } from '../lib/membership.ts';
import { delta, deltaBy, histogramMeanMs, type OperatorProc } from '../lib/operator.ts';
import { controlPlaneCpuSince, sampleCpu } from '../lib/procstat.ts';
import { Tracker, type Latency } from '../lib/tracker.ts';
import { channelName, mono, pool, range, say, sleep, summarize, until, withTimeout } from '../lib/util.ts';
import { round1, settle } from './join.ts';
import { atMost, formatValue, type Target } from '../lib/report.ts';

const POLL_MS = 5000;
const CREATE_CONCURRENCY = 32;

/** API server + etcd CPU and the API server's request count over a window. */
interface Window { seconds: number; cpuSeconds: number; cpuSecondsPerMin: number; requests: number; requestsPerS: number }

async function openWindow(ctx: BenchCtx): Promise<() => Promise<Window>> {
  const t0 = mono();
  const c0 = sampleCpu();
  const r0 = await apiserverRequests(ctx.stack.kubeconfig);
  return async () => {
    const seconds = (mono() - t0) / 1000;
    const cpuSeconds = controlPlaneCpuSince(c0, ctx.stack.pids);
    const requests = (await apiserverRequests(ctx.stack.kubeconfig)) - r0;
    return { seconds, cpuSeconds, cpuSecondsPerMin: (cpuSeconds / seconds) * 60, requests, requestsPerS: requests / seconds };
  };
}

async function steadyWindow(ctx: BenchCtx, seconds: number): Promise<Window> {
  const close = await openWindow(ctx);
  await sleep(seconds * 1000);
  return close();
}

interface RollOut { seconds: number; joins: Promise<Latency>[]; leaves: Promise<Latency>[] }

/**
 * Replaces `old` as a Deployment does with maxSurge 25 % and maxUnavailable 25 % (rounded up and down, as it
 * rounds them): old pods go while the available ones stay at or above size - maxUnavailable, new ones come
 * while all of them stay at or below size + maxSurge. `track` registers the join/leave expectations.
 */
async function rollOut(kubelet: BenchKubelet, tracker: Tracker, ns: string, app: string, old: string[], fresh: (i: number) => string,
  o: { c?: ClusterRef; onStep?: () => Promise<void> } = {}): Promise<RollOut> {
  const size = old.length;
  const maxSurge = Math.ceil(size / 4);
  const maxUnavailable = Math.floor(size / 4);
  const alive = [...old];
  const joins: Promise<Latency>[] = [];
  const leaves: Promise<Latency>[] = [];
  const starting = new Set<Promise<void>>();
  let created = 0;
  let ready = 0;
  const t0 = mono();
  while (alive.length || created < size || starting.size) {
    const del = Math.min(alive.length, alive.length + ready - (size - maxUnavailable));
    if (del > 0) {
      const victims = alive.splice(0, del);
      if (o.c) for (const p of victims) leaves.push(awaitLeave(tracker, o.c, p));
      await pool(victims, CREATE_CONCURRENCY, (p) => kubelet.stop(ns, p));
    }
    const add = Math.min(size - created, size + maxSurge - (alive.length + created));
    if (add > 0) {
      const names = range(add).map((i) => fresh(created + i));
      created += add;
      if (o.c) for (const p of names) joins.push(awaitJoin(tracker, o.c, p));
      const batch: Promise<void> = pool(names, CREATE_CONCURRENCY, (p) => kubelet.start(ns, p, { app })).then(() => { ready += add; starting.delete(batch); });
      starting.add(batch);
    }
    await o.onStep?.();
    if (starting.size) await Promise.race(starting);
  }
  return { seconds: (mono() - t0) / 1000, joins, leaves };
}

type HistogramMean = ReturnType<typeof histogramMeanMs>;

interface OperatorPhase {
  key: string;
  interval: string;
  format: 'list' | 'version';
  steady?: Window;
  rollout: Window;
  rolloutSeconds: number;
  convergedSeconds: number;
  writes: number;
  writesByResource: Record<string, number>;
  requestMs: { configMapPatch: HistogramMean; podPatch: HistogramMean };
  reconcileMs: HistogramMean;
  /** The annotation passes during the rollout (pgcluster_annotation_fanout_seconds). */
  passMs: HistogramMean;
  /** After the rollout, at rest: one member leaves; its pass(es) over every other member, and its latency. */
  restPassMs: HistogramMean;
  restLeaveMs: number;
  joinMs: ReturnType<typeof summarize>;
  leaveMs: ReturnType<typeof summarize>;
  cmJoinMs: ReturnType<typeof summarize>;
  samples: { joins: number[] };
}

async function operatorPhase(ctx: BenchCtx, key: string, size: number, interval: string, format: 'list' | 'version', steadyS: number | undefined): Promise<OperatorPhase> {
  const { kube, databaseUrl } = ctx.stack;
  const kubelet = new BenchKubelet(kube);
  const ns = await createNamespace(kube, `roll-${key.toLowerCase()}`);
  const c: ClusterRef = { ns, app: 'roll', basename: 'roll', cm: 'roll-peers' };
  const tracker = new Tracker(kube, [ns]);
  let op: OperatorProc | undefined;
  try {
    await tracker.start();
    await createSecret(kube, ns, 'db', databaseUrl);
    await createPgCluster(kube, ns, 'roll', { app: 'roll', secret: 'db', channel: channelName(ns, 'roll'), annotationMinInterval: interval, podAnnotationFormat: format });
    const old = range(size).map((i) => `roll-a-${String(i).padStart(4, '0')}`);
    say(`rollout ${key}: ${size} pods`);
    await pool(old, CREATE_CONCURRENCY, (p) => kubelet.start(ns, p, { app: 'roll' }));
    await until('all pods Ready', () => tracker.members(ns, 'roll').length === size, 120_000 + size * 100);
    op = await operator(ctx, `rollout-${key}`, [ns]);
    await withTimeout(tracker.expectAll([{ ns, cm: c.cm, pods: old, app: 'roll', basename: 'roll' }]), 120_000 + size * 200, 'initial members published');
    await settle(op);
    const steady = steadyS ? await steadyWindow(ctx, steadyS) : undefined;

    say(`rollout ${key}: replacing ${size} pods (podAnnotationFormat ${format}, annotationMinInterval ${interval})`);
    const s0 = await op.scrape();
    const close = await openWindow(ctx);
    const t0 = mono();
    const r = await rollOut(kubelet, tracker, ns, 'roll', old, (i) => `roll-b-${String(i).padStart(4, '0')}`, { c });
    const j = await withTimeout(Promise.all(r.joins), 300_000, 'every new pod in the outputs');
    const l = await withTimeout(Promise.all(r.leaves), 300_000, 'every old pod gone from the outputs');
    const convergedSeconds = (mono() - t0) / 1000;
    await settle(op);
    const rollout = await close();
    const s1 = await op.scrape();
    // One full pass at rest, the anchor of the join tail: a member leaves, every other member's annotation
    // changes, nothing else happens meanwhile.
    const victim = 'roll-b-0000';
    const leaving = awaitLeave(tracker, c, victim);
    await kubelet.stop(ns, victim);
    const rest = await withTimeout(leaving, 120_000, 'the leave at rest');
    await settle(op);
    const s2 = await op.scrape();
    return {
      key, interval, format, ...(steady ? { steady } : {}), rollout, rolloutSeconds: r.seconds, convergedSeconds,
      passMs: histogramMeanMs(s0, s1, 'pgcluster_annotation_fanout_seconds'),
      restPassMs: histogramMeanMs(s1, s2, 'pgcluster_annotation_fanout_seconds'),
      restLeaveMs: rest.ms,
      writes: delta(s0, s1, 'pgcluster_kube_writes_total'), writesByResource: deltaBy(s0, s1, 'pgcluster_kube_writes_total', 'resource'),
      // How long the API server took to answer the operator's writes: a ConfigMap that waits here waits there.
      requestMs: {
        configMapPatch: histogramMeanMs(s0, s1, 'pgcluster_kube_request_duration_seconds', { verb: 'PATCH', resource: 'configmaps' }),
        podPatch: histogramMeanMs(s0, s1, 'pgcluster_kube_request_duration_seconds', { verb: 'PATCH', resource: 'pods' }),
      },
      reconcileMs: histogramMeanMs(s0, s1, 'controller_runtime_reconcile_time_seconds'),
      joinMs: summarize(j.map((x) => x.ms)), leaveMs: summarize(l.map((x) => x.ms)), cmJoinMs: summarize(j.map((x) => x.cmMs)),
      samples: { joins: j.map((x) => round1(x.ms)) },
    };
  } finally {
    tracker.stop();
    await op?.stop();
    await kubelet.drain();
    await cleanupNamespace(kube, ns).catch(() => {});
  }
}

interface LibclusterPhase { clients: number; steady: Window; rollout: Window; rolloutSeconds: number; endpointsWrites: number; simRequests: number; simErrors: number; simMB: number }

/** N members polling the Endpoints of their service (N addresses), steady and while the N pods roll. */
async function libclusterPhase(ctx: BenchCtx, n: number, steadyS: number): Promise<LibclusterPhase> {
  const { kube } = ctx.stack;
  const kubelet = new BenchKubelet(kube);
  const ns = await createNamespace(kube, 'roll-lc');
  const tracker = new Tracker(kube, [ns]);
  const path = `/api/v1/namespaces/${ns}/endpoints?labelSelector=${encodeURIComponent('app=kl')}`;
  let sim: Awaited<ReturnType<typeof startKubeSim>> | undefined;
  let endpointsWrites = 0;
  // What the endpoints controller keeps there: one address per Ready pod (written by the bench here: this
  // stack runs no controller manager).
  const writeEndpoints = async () => {
    const addresses = tracker.members(ns, 'kl').map((p) => ({ ip: p.ip!, targetRef: { kind: 'Pod', namespace: ns, name: p.name } }));
    await kube.request('PUT', `/api/v1/namespaces/${ns}/endpoints/kl`, {
      body: { apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'kl', namespace: ns, labels: { app: 'kl' } }, subsets: addresses.length ? [{ addresses, ports: [{ name: 'epmd', port: 4369 }] }] : [] },
    });
    endpointsWrites++;
  };
  try {
    await tracker.start();
    const old = range(n).map((i) => `kl-a-${String(i).padStart(4, '0')}`);
    await pool(old, CREATE_CONCURRENCY, (p) => kubelet.start(ns, p, { app: 'kl' }));
    await until('all pods Ready', () => tracker.members(ns, 'kl').length === n, 120_000 + n * 100);
    await kube.create(`/api/v1/namespaces/${ns}/endpoints`, { apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'kl', namespace: ns, labels: { app: 'kl' } } }, 'endpoints');
    await writeEndpoints();
    say(`rollout: ${n} libcluster Kubernetes-strategy clients polling every ${POLL_MS / 1000} s`);
    sim = await startKubeSim(ctx.stack.kubeconfig, path, n, POLL_MS);
    await sleep(POLL_MS);
    const steady = await steadyWindow(ctx, steadyS);
    say(`rollout: replacing ${n} pods under ${n} polling clients`);
    const close = await openWindow(ctx);
    let writing = Promise.resolve();
    const r = await rollOut(kubelet, tracker, ns, 'kl', old, (i) => `kl-b-${String(i).padStart(4, '0')}`, {
      // One Endpoints write per step of the rollout, never two at once (the controller batches as well).
      onStep: async () => { await writing; writing = writeEndpoints(); },
    });
    await writing;
    await writeEndpoints();
    // Past the last change, one full polling interval: every member has seen it (what the operator's settle is).
    await sleep(POLL_MS);
    const rollout = await close();
    const st = await sim.stats();
    return { clients: n, steady, rollout, rolloutSeconds: r.seconds, endpointsWrites, simRequests: st.requests, simErrors: st.errors, simMB: st.bytes / 2 ** 20 };
  } finally {
    await sim?.stop();
    tracker.stop();
    await kubelet.drain();
    await cleanupNamespace(kube, ns).catch(() => {});
  }
}

/** One row of the targets table: the figure, its goal, and the anchor it is judged against. */
interface TargetRow { key: string; figure: string; value: number | null; unit: string; goal: Target; anchor: string }

export const rollout: Scenario = {
  name: 'rollout',
  title: 'rollout: 1,000 members replaced (surge 25 %), annotation format list vs version, beside libcluster Kubernetes-strategy polling',
  async run(ctx: BenchCtx) {
    const o = pick(ctx.mode, {
      full: { size: 1000, clients: [100, 1000], steadyS: 30 },
      quick: { size: 200, clients: [50, 200], steadyS: 15 },
      // smoke: one whole poll interval, so each of the staggered pollers GETs once inside the steady window
      // (3 s caught 3 or 4 of the 6: 4 requests in 3.06 s, 1.31/s, in a run alone; one fewer is under 1/s).
      smoke: { size: 6, clients: [6], steadyS: POLL_MS / 1000 },
    });
    // BENCH_ROLLOUT_LIBCLUSTER=0 leaves the pollers out (their phases take as long as the operator's).
    const withPollers = process.env.BENCH_ROLLOUT_LIBCLUSTER !== '0';
    const list = await operatorPhase(ctx, 'list', o.size, '0s', 'list', o.steadyS);
    const version = await operatorPhase(ctx, 'version', o.size, '0s', 'version', undefined);
    const lc: LibclusterPhase[] = [];
    if (withPollers) for (const n of o.clients) lc.push(await libclusterPhase(ctx, n, o.steadyS));

    const S = 'rollout';
    const r = ctx.report;
    for (const p of [list, version]) {
      const k = p.key;
      const label = `operator, podAnnotationFormat ${p.format}`;
      r.add(S, `${k}_rollout_s`, `${label}: ${o.size} pods replaced (maxSurge/maxUnavailable 25 %)`, p.rolloutSeconds, 's');
      r.add(S, `${k}_converged_s`, `${label}: rollout start -> outputs final`, p.convergedSeconds, 's');
      r.add(S, `${k}_kube_writes`, `${label}: operator's Kubernetes writes (all)`, p.writes, '');
      r.add(S, `${k}_annotation_writes`, `${label}: of them pod annotation PATCHes`, p.writesByResource.pods ?? 0, '');
      r.add(S, `${k}_control_plane_cpu_s`, `${label}: API server + etcd CPU over the rollout`, p.rollout.cpuSeconds, 's');
      r.add(S, `${k}_control_plane_cpu_s_per_min`, `${label}: API server + etcd CPU per minute of rollout`, p.rollout.cpuSecondsPerMin, 's/min');
      r.add(S, `${k}_requests_per_s`, `${label}: API server requests/s during the rollout (every client)`, p.rollout.requestsPerS, '/s');
      r.add(S, `${k}_join_p50_ms`, `${label}: join latency during the rollout p50 (${p.joinMs.n} joins)`, p.joinMs.p50, 'ms');
      r.add(S, `${k}_join_p99_ms`, `${label}: join latency during the rollout p99 (every member's pod carries the change)`, p.joinMs.p99, 'ms');
      r.add(S, `${k}_leave_p99_ms`, `${label}: leave latency during the rollout p99`, p.leaveMs.p99, 'ms');
      r.add(S, `${k}_cm_join_p50_ms`, `${label}: ConfigMap alone: join latency p50`, p.cmJoinMs.p50, 'ms');
      r.add(S, `${k}_cm_join_p99_ms`, `${label}: ConfigMap alone: join latency p99`, p.cmJoinMs.p99, 'ms');
      r.add(S, `${k}_cm_patch_mean_ms`, `${label}: ConfigMap PATCH, sent to answered, mean (${p.requestMs.configMapPatch.count})`, p.requestMs.configMapPatch.meanMs, 'ms');
      r.add(S, `${k}_pod_patch_mean_ms`, `${label}: pod annotation PATCH, sent to answered, mean (${p.requestMs.podPatch.count})`, p.requestMs.podPatch.meanMs, 'ms');
      r.add(S, `${k}_reconcile_mean_ms`, `${label}: reconcile duration mean (${p.reconcileMs.count})`, p.reconcileMs.meanMs, 'ms');
      r.add(S, `${k}_pass_mean_ms`, `${label}: annotation pass during the rollout, mean (${p.passMs.count} passes)`, p.passMs.meanMs, 'ms');
      r.add(S, `${k}_rest_pass_ms`, `${label}: one full pass at rest (a member leaves; ${p.restPassMs.count} pass(es), mean)`, p.restPassMs.meanMs, 'ms');
      r.add(S, `${k}_rest_leave_ms`, `${label}: that leave, deleted -> off every output`, p.restLeaveMs, 'ms');
    }
    const ratio = (a: number, b: number) => (b ? a / b : null);
    r.add(S, 'operator_steady_cpu_s_per_min', `operator, ${o.size} members, nothing changing: API server + etcd CPU per minute`, list.steady?.cpuSecondsPerMin, 's/min');
    r.add(S, 'operator_steady_requests_per_s', 'operator, nothing changing: API server requests/s (every client)', list.steady?.requestsPerS, '/s');
    for (const p of lc) {
      const label = `libcluster Kubernetes strategy, ${p.clients} members polling every 5 s`;
      r.add(S, `libcluster_${p.clients}_steady_cpu_s_per_min`, `${label}: API server + etcd CPU per minute, nothing changing`, p.steady.cpuSecondsPerMin, 's/min');
      r.add(S, `libcluster_${p.clients}_steady_requests_per_s`, `${label}: API server requests/s, nothing changing`, p.steady.requestsPerS, '/s');
      r.add(S, `libcluster_${p.clients}_rollout_cpu_s_per_min`, `${label}: API server + etcd CPU per minute while its ${p.clients} pods roll`, p.rollout.cpuSecondsPerMin, 's/min');
      r.add(S, `libcluster_${p.clients}_rollout_requests_per_s`, `${label}: API server requests/s while they roll`, p.rollout.requestsPerS, '/s');
    }

    // Issue 24's targets, each with its anchor (measured in this run, or the polling interval).
    const ms = (v: number) => formatValue(v, 'ms');
    const join = r.rows.find((x) => x.key === 'join.join_p99_vs_floor');
    const floor = r.rows.find((x) => x.key === 'join.floor_during_p99_ms');
    const targets: TargetRow[] = [
      { key: 'target_version_join_p99_ms', figure: `version: join p99 until every member's pod carries the change (${o.size} members)`, value: version.joinMs.p99, unit: 'ms', goal: atMost(POLL_MS, 'ms'), anchor: `libcluster's poll: ${POLL_MS / 1000} s` },
      { key: 'target_list_join_p99_vs_pass', figure: 'list: join p99 / one full pass at rest (same run)', value: ratio(list.joinMs.p99, list.restPassMs.meanMs), unit: 'x', goal: atMost(2, 'x'), anchor: `one full pass: ${ms(list.restPassMs.meanMs)}; join p99 ${ms(list.joinMs.p99)}` },
      { key: 'target_version_cm_join_p99_ms', figure: 'version: ConfigMap alone, join p99', value: version.cmJoinMs.p99, unit: 'ms', goal: atMost(1000, 'ms'), anchor: `ConfigMap PATCH mean ${ms(version.requestMs.configMapPatch.meanMs)}` },
      { key: 'target_list_cm_join_p99_ms', figure: 'list: ConfigMap alone, join p99', value: list.cmJoinMs.p99, unit: 'ms', goal: atMost(1000, 'ms'), anchor: `ConfigMap PATCH mean ${ms(list.requestMs.configMapPatch.meanMs)}` },
      { key: 'target_cpu_ratio', figure: 'API server + etcd CPU over the rollout, version / list', value: ratio(version.rollout.cpuSeconds, list.rollout.cpuSeconds), unit: 'x', goal: atMost(0.5, 'x'), anchor: `list: ${list.rollout.cpuSeconds.toFixed(0)} s in ${list.rollout.seconds.toFixed(0)} s; version: ${version.rollout.cpuSeconds.toFixed(0)} s in ${version.rollout.seconds.toFixed(0)} s` },
      { key: 'target_version_reconcile_mean_ms', figure: `version: mean reconcile duration at ${o.size} members`, value: version.reconcileMs.meanMs, unit: 'ms', goal: atMost(5, 'ms'), anchor: `${version.reconcileMs.count} reconciles; list: ${ms(list.reconcileMs.meanMs)} (${list.reconcileMs.count})` },
      { key: 'target_join_p99_vs_floor', figure: 'join scenario: 100-member join p99 / fan-out floor p99', value: join?.value ?? null, unit: 'x', goal: atMost(1.5, 'x'), anchor: join ? `floor p99 ${formatValue(floor?.value ?? null, 'ms')}` : 'not run: npm run bench -- join rollout' },
    ];
    for (const t of targets) r.add(S, t.key, t.figure, t.value, t.unit, t.goal);
    const lines = ['| figure | value | goal | anchor | result |', '|---|--:|---|---|---|',
      ...targets.map((t) => `| ${t.figure} | ${formatValue(t.value, t.unit)} | ${t.goal.text} | ${t.anchor} | ${t.value === null ? 'n/a' : t.goal.ok(t.value) ? 'met' : 'missed'} |`)];
    say(`rollout: targets (issue 24)\n${lines.join('\n')}`);
    r.detail(S, { size: o.size, pollMs: POLL_MS, phases: [list, version], libcluster: lc, controlPlanePids: ctx.stack.pids, targets: lines });
  },
};
