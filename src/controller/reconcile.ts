// Level-based reconcile of one PgCluster (docs/architecture.md, "Observe, plan, apply"): observe the caches,
// the peer table and the listener; plan the writes (plan.ts, pure); apply them (apply.ts) only where desired
// differs from observed.
import { remotePeersFromConfigMap } from '../core/outputs.ts';
import { FINALIZER, effectiveSpec, type EffectiveSpec } from '../core/spec.ts';
import type { ConditionInput } from '../core/conditions.ts';
import type { PgClusterObject } from '../kube/resources.ts';
import { applyOutputs, applyStatus, memoKeys } from './apply.ts';
import type { Context } from './context.ts';
import { finalize } from './finalize.ts';
import { connectedCondition, planOutputs, planStatus, readyCondition, selectMembers } from './plan.ts';
import { ClusterRuntime } from './runtime.ts';

export { WRITE_CONCURRENCY } from './apply.ts';

export type ReconcileResult = { requeueAfterMs?: number };

/** Re-check everything at least this often, even with no event. */
export const RESYNC_MS = 60_000;

export async function reconcile(ctx: Context, key: string): Promise<ReconcileResult> {
  const [ns, name] = splitKey(key);
  const pc = ctx.pgclusters.get(ns, name);
  if (!pc) {
    forgetCluster(ctx, key);
    return {};
  }
  if (pc.metadata.deletionTimestamp) {
    await finalize(ctx, pc, () => forgetCluster(ctx, key));
    return {};
  }
  if (!(pc.metadata.finalizers ?? []).includes(FINALIZER)) {
    await ctx.writer.setFinalizers(pc, [...(pc.metadata.finalizers ?? []), FINALIZER]);
    return {}; // the update event requeues us with the new resourceVersion
  }
  const statusKey = memoKeys.status(ns, name);
  const resolved = effectiveSpec(pc);
  if (!resolved.ok) {
    forgetCluster(ctx, key);
    const invalid: ConditionInput = { type: 'Ready', status: 'False', reason: 'InvalidSpec', message: resolved.message };
    await applyStatus(ctx, pc, planStatus(pc, ctx.written.observe(statusKey, pc), {}, [invalid], ctx.clock.now()));
    return {};
  }
  const spec = resolved.spec;

  // Observe: members from the pods, the listener, the peers.
  const rt = runtimeFor(ctx, key, spec);
  // Peer times are monotonic: a wall-clock step (NTP, a VM resumed) must not expire every remote peer at once.
  const now = ctx.clock.monotonic();
  rt.seedOnce(() => remotePeersFromConfigMap(ctx.configMaps.get(ns, spec.configMapName)?.data), now);
  const selection = selectMembers(ctx.pods.inNamespace(ns), spec);
  const change = rt.table.setMembers(selection.members, now);
  if (change.added.length || change.removed.length) rt.changed(ctx.clock.monotonic());
  const connection = await listen(ctx, pc, spec, rt);
  const endpoint = rt.attachment?.endpoint;
  endpoint?.setAnnouncer(key, { channel: spec.channel, intervalMs: spec.heartbeatMs, names: rt.table.memberNames() });
  rt.listenerIs(endpoint?.state().phase === 'Listening', now);
  rt.table.expire(now);
  const { peers, dropped } = rt.table.peers();

  // Plan and apply the outputs.
  const observedStatus = ctx.written.observe(statusKey, pc);
  const writtenKey = observedStatus?.status?.podAnnotation;
  const outputs = planOutputs(pc, spec, selection.selected, peers, {
    configMap: ctx.written.observe(memoKeys.configMap(ns, spec.configMapName), ctx.configMaps.get(ns, spec.configMapName)),
    configMaps: [...ctx.configMaps.inNamespace(ns)],
    pods: [...ctx.pods.inNamespace(ns)].map((cached) => ({ cached, observed: ctx.written.observe(memoKeys.pod(ns, cached.metadata.name), cached) ?? cached })),
    staleKey: writtenKey !== spec.podAnnotation ? writtenKey : undefined,
  });
  await applyOutputs(ctx, pc, outputs);
  const changedAt = rt.takeChange();
  if (changedAt !== undefined) ctx.metrics.joinToPublished.observe((ctx.clock.monotonic() - changedAt) / 1000);
  const members = rt.table.memberCount;
  ctx.metrics.members.set({ namespace: ns, name }, members);
  ctx.metrics.peers.set({ namespace: ns, name }, peers.length);
  ctx.metrics.droppedPeers.set({ namespace: ns, name }, dropped);

  // Plan and apply the status (and its Events).
  const remote = peers.filter((p) => p.source === 'remote').length;
  const ready = readyCondition({ spec, connection, attached: endpoint !== undefined, everListening: rt.everListening, members, remote, dropped, unannounced: selection.unannounced });
  const fields = { channel: spec.channel, members, peers: peers.length, droppedPeers: dropped, unannouncedPods: selection.unannounced.length, podAnnotation: spec.podAnnotation };
  await applyStatus(ctx, pc, planStatus(pc, ctx.written.observe(statusKey, pc), fields, [connection, ready], ctx.clock.now()));

  const next = rt.table.nextExpiry();
  return { requeueAfterMs: next === undefined ? RESYNC_MS : Math.min(RESYNC_MS, Math.max(10, next - ctx.clock.monotonic() + 5)) };
}

export function splitKey(key: string): [string, string] {
  const i = key.indexOf('/');
  return [key.slice(0, i), key.slice(i + 1)];
}

function runtimeFor(ctx: Context, key: string, spec: EffectiveSpec): ClusterRuntime {
  let rt = ctx.runtimes.get(key);
  if (!rt) {
    rt = new ClusterRuntime(key, spec.peerTimeoutMs, spec.maxPeers);
    ctx.runtimes.set(key, rt);
  }
  rt.table.peerTimeoutMs = spec.peerTimeoutMs;
  rt.table.maxPeers = spec.maxPeers;
  return rt;
}

function forgetCluster(ctx: Context, key: string): void {
  ctx.secrets.forget(key);
  const rt = ctx.runtimes.get(key);
  if (!rt) return;
  rt.detach(ctx.pool);
  ctx.runtimes.delete(key);
  const [namespace, name] = splitKey(key);
  for (const g of [ctx.metrics.members, ctx.metrics.peers, ctx.metrics.droppedPeers]) g.remove({ namespace, name });
}

/** Resolves the URL and attaches the PgCluster to its endpoint; returns the Connected condition. */
async function listen(ctx: Context, pc: PgClusterObject, spec: EffectiveSpec, rt: ClusterRuntime): Promise<ConditionInput> {
  const found = await ctx.secrets.url(rt.key, { namespace: pc.metadata.namespace, name: spec.secretName, key: spec.secretKey });
  if (!found.ok) {
    // Without a usable URL we stop heartbeats but keep the outputs as they are: nothing is lost.
    rt.detach(ctx.pool);
    return { type: 'Connected', status: 'False', reason: found.reason, message: found.message };
  }
  const a = rt.attach(ctx.pool, found, spec.channel, (payload) => onPayload(ctx, rt.key, payload));
  return connectedCondition(a.endpoint.state(), spec.channel, a.endpoint.id);
}

/** A NOTIFY heard on the PgCluster's channel (docs/architecture.md, "From a NOTIFY to a published peer"). */
function onPayload(ctx: Context, key: string, payload: string): void {
  const rt = ctx.runtimes.get(key);
  if (!rt) return;
  const r = rt.receive(payload, ctx.clock.monotonic());
  if (r.outcome === 'invalid') {
    const [namespace, name] = splitKey(key);
    ctx.metrics.invalidPayloads.inc({ namespace, name, problem: r.problem ?? 'unknown' });
    ctx.log.debug({ pgcluster: key, problem: r.problem, bytes: Buffer.byteLength(payload) }, 'dropped an invalid payload');
  } else if (r.outcome === 'changed') {
    rt.changed(ctx.clock.monotonic());
    ctx.queue.add(key);
  }
}
