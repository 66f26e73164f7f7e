// Level-based reconcile of one PgCluster (docs/architecture.md, "Observe, plan, apply"): observe the caches,
// the peer table and the listener; plan the writes (plan.ts, pure); apply them (apply.ts) only where desired
// differs from observed.
import { fitPeers, remotePeersFromConfigMap } from '../core/outputs.ts';
import { encodeLeave } from '../core/sideChannel.ts';
import { encodeSigned, keyId } from '../core/sideAuth.ts';
import { FINALIZER, effectiveSpec, podWatchSelectors, type EffectiveSpec } from '../core/spec.ts';
import type { ConditionInput } from '../core/conditions.ts';
import type { PgClusterObject } from '../kube/resources.ts';
import { applyConfigMap, applyDns, applyPodPatch, applyStatus, memoKeys, WRITE_CONCURRENCY, WritesFenced } from './apply.ts';
import { FanOut } from './fanout.ts';
import { errorMessage } from '../errors.ts';
import { planDns, serviceConflictMessage } from './dnsOutput.ts';
import { splitKey, type Context } from './context.ts';
import { finalize } from './finalize.ts';
import { remoteChanged, remoteLeft, reportFlood } from './flood.ts';
import { claimOf, configMapTakenMessage, connectedCondition, degradedCondition, planOutputs, planStatus, readyCondition, selectMembers } from './plan.ts';
import { ClusterRuntime } from './runtime.ts';
import { CONDITION_TYPES } from '../metrics.ts';

export { WRITE_CONCURRENCY } from './apply.ts';

export type ReconcileResult = { requeueAfterMs?: number };

/** Re-check everything at least this often, even with no event. */
export const RESYNC_MS = 60_000;
/** How often to try the create again of a ConfigMap whose name an object we cannot watch holds. */
export const TAKEN_RECHECK_MS = 30_000;

export async function reconcile(ctx: Context, key: string): Promise<ReconcileResult> {
  const [ns, name] = splitKey(key);
  const pc = ctx.pgclusters.get(ns, name);
  if (!pc) {
    forgetCluster(ctx, key);
    return {};
  }
  // Until the pod watches this PgCluster needs have filled, its members are unknown: publishing now would
  // publish too few. The watch's first sync queues it again.
  if (!ctx.pods.synced(ns, podWatchSelectors(pc))) return {};
  if (pc.metadata.deletionTimestamp) {
    // The finalizer's removals must not race annotation writes still in flight.
    await ctx.runtimes.get(key)?.stopFanOut();
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
    ctx.metrics.setConditions(ns, name, [invalid]);
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
  if (change.added.length || change.removed.length) {
    rt.changed(ctx.clock.monotonic());
    ctx.log.debug({ pgcluster: key, added: change.added, removed: change.removed, members: selection.members.length }, 'members changed');
  }
  const authenticated = await authenticate(ctx, pc, spec, rt);
  const connection = await listen(ctx, pc, spec, rt);
  const attachment = rt.attachment;
  const endpoint = attachment?.endpoint;
  const signingKey = rt.signingKey;
  const signer = (type: 'alive' | 'leave', nodes: readonly string[], at: number): string[] =>
    signingKey && attachment ? encodeSigned(type, nodes, { channel: attachment.side, from: ctx.identity, key: signingKey, now: at }) : [];
  // Members that left: said at once to the other operators on the channel (they drop them now, not after
  // their peerTimeout), signed when there is a key. Sent only while Listening; a leave missed while down is
  // covered by peerTimeout.
  if (attachment && change.removed.length) {
    const leaves = signingKey ? signer('leave', change.removed, ctx.clock.now()) : change.removed.map((node) => encodeLeave(node, ctx.identity));
    for (const m of leaves) attachment.endpoint.notifyOnce(attachment.side, m);
  }
  // With a key, every heartbeat also says the members signed ("alive") on the side channel.
  const side = signingKey && attachment ? { channel: attachment.side, sign: (names: readonly string[], at: number) => signer('alive', names, at) } : undefined;
  endpoint?.setAnnouncer(key, { channel: spec.channel, intervalMs: spec.heartbeatMs, names: rt.table.memberNames(), side });
  rt.listenerIs(endpoint?.state().phase === 'Listening', now, rt.strict && !signingKey);
  rt.table.expire(now);
  const capped = rt.peers(now);
  const { peers, droppedForSize } = fitPeers(capped.peers, spec.channel);
  const dropped = capped.dropped;

  // Plan and apply the outputs.
  const observedStatus = ctx.written.observe(statusKey, pc);
  const outputs = planOutputs(pc, spec, selection.selected, peers, {
    configMap: ctx.written.observe(memoKeys.configMap(ns, spec.configMapName), ctx.configMaps.get(ns, spec.configMapName)),
    configMaps: [...ctx.configMaps.inNamespace(ns)],
    configMapTaken: rt.isTaken('configMap', spec.configMapName, now),
    pods: [...ctx.pods.inNamespace(ns)].map((cached) => ({ cached, observed: ctx.written.observe(memoKeys.pod(ns, cached.metadata.name), cached) ?? cached })),
    legacyKey: observedStatus?.status?.podAnnotation ?? spec.podAnnotation,
    rivals: [...ctx.pgclusters.inNamespace(ns)].filter((other) => other.metadata.name !== name).flatMap((other) => claimOf(other) ?? []),
  });
  // The ConfigMap now; the pods' annotations by the fan-out, beside this reconcile (fanout.ts).
  const applied = await applyConfigMap(ctx, pc, outputs);
  const fanOut = (rt.fanOut ??= newFanOut(ctx, key));
  fanOut.submit(outputs.podPatches, spec.annotationMinIntervalMs);
  const sliceOf = (n: string) => ctx.written.observe(memoKeys.output('endpointslices', ns, n), ctx.endpointSlices.get(ns, n));
  const dns = planDns(pc, spec, peers, {
    service: spec.serviceName ? ctx.written.observe(memoKeys.output('services', ns, spec.serviceName), ctx.services.get(ns, spec.serviceName)) : undefined,
    services: [...ctx.services.inNamespace(ns)],
    slices: [...ctx.endpointSlices.inNamespace(ns)].map((s) => sliceOf(s.metadata.name) ?? s),
    slice: sliceOf,
    serviceTaken: rt.isTaken('service', spec.serviceName, now),
  });
  const dnsApplied = await applyDns(ctx, pc, dns.writes);
  if (dnsApplied.taken) rt.markTaken('service', spec.serviceName, ctx.clock.monotonic() + TAKEN_RECHECK_MS);
  if (applied.configMapTaken) rt.markTaken('configMap', spec.configMapName, ctx.clock.monotonic() + TAKEN_RECHECK_MS);
  const changedAt = rt.takeChange();
  if (changedAt !== undefined) ctx.metrics.joinToPublished.observe((ctx.clock.monotonic() - changedAt) / 1000);
  const members = rt.table.memberCount;
  ctx.metrics.members.set({ namespace: ns, name }, members);
  ctx.metrics.peers.set({ namespace: ns, name }, peers.length);
  ctx.metrics.droppedPeers.set({ namespace: ns, name }, dropped + droppedForSize);
  reportFlood(ctx, pc, rt, spec.channel);

  // Plan and apply the status (and its Events).
  const remote = peers.filter((p) => p.source === 'remote').length;
  const report = {
    configMapConflict: outputs.configMapConflict ?? (applied.configMapTaken ? configMapTakenMessage(ns, spec.configMapName) : undefined),
    serviceConflict: dns.conflict ?? (dnsApplied.taken ? serviceConflictMessage(ns, spec.serviceName) : undefined),
    podConflicts: outputs.podConflicts,
    rejected: [...applied.rejected, ...fanOut.rejected(), ...dnsApplied.rejected],
  };
  const ready = readyCondition({ spec, connection, attached: endpoint !== undefined, everListening: rt.everListening, members, remote, dropped, droppedForSize, unannounced: selection.unannounced, outputs: report });
  const fields = {
    channel: spec.channel, members, peers: peers.length, droppedPeers: dropped + droppedForSize, unannouncedPods: selection.unannounced.length,
    conflictingPods: outputs.podConflicts.length, podAnnotation: spec.podAnnotation,
  };
  const conditions = [connection, ready, ...(spec.minMembers > 0 ? [degradedCondition(members, spec.minMembers)] : []), ...(authenticated ? [authenticated] : [])];
  const drop = [...(spec.minMembers > 0 ? [] : ['Degraded']), ...(authenticated ? [] : ['Authenticated'])];
  await applyStatus(ctx, pc, planStatus(pc, observedStatus, fields, conditions, ctx.clock.now(), drop));
  ctx.metrics.setConditions(ns, name, conditions, drop);

  const next = Math.min(rt.nextWake() ?? Infinity, rt.takenRecheckAt(ctx.clock.monotonic()) ?? Infinity);
  return { requeueAfterMs: next === Infinity ? RESYNC_MS : Math.min(RESYNC_MS, Math.max(10, next - ctx.clock.monotonic() + 5)) };
}


/**
 * The fan-out of one PgCluster: each PATCH against the pod as cached when it is issued (the plan may be
 * older); a pass that failed or changed which writes are refused brings a reconcile (the status says so).
 */
function newFanOut(ctx: Context, key: string): FanOut {
  const [ns] = splitKey(key);
  return new FanOut({
    clock: ctx.clock,
    concurrency: WRITE_CONCURRENCY,
    write: async (p) => {
      const pod = ctx.pods.get(ns, p.pod.metadata.name);
      if (!pod || pod.metadata.deletionTimestamp) return undefined; // gone, or going: nothing to tell it
      return ctx.podWrites.run(() => applyPodPatch(ctx, ns, { ...p, pod }));
    },
    onPassEnd: (failed, rejectedChanged, ms) => {
      if (failed instanceof WritesFenced) return; // this replica is stopping: nothing to retry
      ctx.metrics.fanOutPass.observe(ms / 1000);
      if (failed !== undefined) ctx.log.warn({ pgcluster: key, err: errorMessage(failed) }, 'annotation writes failed; retrying');
      if (failed !== undefined || rejectedChanged) ctx.queue.add(key);
    },
  });
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
  void rt.stopFanOut();
  rt.detach(ctx.pool);
  ctx.runtimes.delete(key);
  const [namespace, name] = splitKey(key);
  for (const g of [ctx.metrics.members, ctx.metrics.peers, ctx.metrics.droppedPeers, ctx.metrics.notifyFlood]) g.remove({ namespace, name });
  ctx.metrics.setConditions(namespace, name, [], CONDITION_TYPES);
}

/**
 * spec.auth (README, "Authenticated peers"): reads the keys, applies the policy to the runtime, and answers the
 * Authenticated condition (none without spec.auth). A key that cannot be read stops signing and verifying,
 * never the heartbeats; with acceptUnsigned false the remote peers are then held as they are. Keys are never
 * logged or shown: the condition names them by keyId.
 */
async function authenticate(ctx: Context, pc: PgClusterObject, spec: EffectiveSpec, rt: ClusterRuntime): Promise<ConditionInput | undefined> {
  const a = spec.auth;
  if (!a) {
    rt.setAuth(undefined);
    return undefined;
  }
  const ns = pc.metadata.namespace;
  const found = await ctx.secrets.keys(rt.key, { namespace: ns, name: a.secretName, key: a.key, previousKey: a.previousKey });
  const dropped = rt.setAuth({ keys: found.ok ? found.keys : undefined, acceptUnsigned: a.acceptUnsigned });
  if (dropped.length) rt.changed(ctx.clock.monotonic());
  const policy = a.acceptUnsigned ? 'unsigned names and leaves are accepted too (acceptUnsigned: true)' : 'only members and signed peers are published (acceptUnsigned: false)';
  if (!found.ok) {
    const meanwhile = a.acceptUnsigned ? 'nothing is signed or verified' : 'nothing is signed or verified, no remote peer is added, and the remote peers published are kept as they are';
    return { type: 'Authenticated', status: 'False', reason: found.reason, message: `${found.message}; until then ${meanwhile}` };
  }
  const previous = found.keys.previous ? `; key ${keyId(found.keys.previous)} (Secret key "${a.previousKey}") is accepted too` : '';
  return { type: 'Authenticated', status: 'True', reason: 'KeyLoaded', message: `side-channel messages are signed with key ${keyId(found.keys.current)} (Secret ${ns}/${a.secretName} key "${a.key}")${previous}; ${policy}` };
}

/** Resolves the URL and attaches the PgCluster to its endpoint; returns the Connected condition. */
async function listen(ctx: Context, pc: PgClusterObject, spec: EffectiveSpec, rt: ClusterRuntime): Promise<ConditionInput> {
  const found = await ctx.secrets.url(rt.key, { namespace: pc.metadata.namespace, name: spec.secretName, key: spec.secretKey });
  if (!found.ok) {
    // Without a usable URL we stop heartbeats but keep the outputs as they are: nothing is lost.
    rt.detach(ctx.pool);
    return { type: 'Connected', status: 'False', reason: found.reason, message: found.message };
  }
  const a = rt.attach(ctx.pool, found, spec.channel, (payload) => onPayload(ctx, rt.key, payload), (payload) => onSideMessage(ctx, rt.key, payload));
  return connectedCondition(a.endpoint.state(), spec.channel, a.endpoint.id);
}

/**
 * A message on the operators' side channel: a "leave" takes remote peers out at once (README, "Instant leave
 * across clusters"); a signed "alive" adds or refreshes them ("Authenticated peers").
 */
function onSideMessage(ctx: Context, key: string, payload: string): void {
  const rt = ctx.runtimes.get(key);
  if (!rt) return;
  const now = ctx.clock.monotonic();
  const r = rt.receiveSide(payload, ctx.clock.now(), now);
  if (r.outcome === 'dropped') {
    const [namespace, name] = splitKey(key);
    ctx.metrics.invalidPayloads.inc({ namespace, name, problem: r.problem });
    ctx.log.debug({ pgcluster: key, problem: r.problem, bytes: Buffer.byteLength(payload) }, 'dropped a side-channel message');
  } else if (r.outcome === 'left') {
    ctx.log.debug({ pgcluster: key }, 'remote peers left (side channel)');
    remoteLeft(ctx, rt);
  } else if (r.outcome === 'changed') {
    remoteChanged(ctx, rt);
  }
}

/** A NOTIFY heard on the PgCluster's channel (docs/architecture.md, "From a NOTIFY to a published peer"). */
function onPayload(ctx: Context, key: string, payload: string): void {
  const rt = ctx.runtimes.get(key);
  if (!rt) return;
  const r = rt.receive(payload, ctx.clock.monotonic());
  if (r.outcome === 'invalid' || r.outcome === 'refused') {
    const [namespace, name] = splitKey(key);
    ctx.metrics.invalidPayloads.inc({ namespace, name, problem: r.problem ?? 'unknown' });
    ctx.log.debug({ pgcluster: key, problem: r.problem, bytes: Buffer.byteLength(payload) }, r.outcome === 'refused' ? 'not published: an unsigned name (spec.auth.acceptUnsigned is false)' : 'dropped an invalid payload');
  } else if (r.outcome === 'changed') {
    remoteChanged(ctx, rt);
  }
}
