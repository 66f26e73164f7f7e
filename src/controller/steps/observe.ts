// Step 2, observe: what the caches, the Secrets and the endpoint say now, folded into the PgCluster's runtime —
// its members into the peer table, spec.auth's keys, the attachment to its URL's endpoint, the listener's
// state (nothing expires while it is down), the paced peer list — and answered as one typed Observed value,
// from which the plan is computed without reading anything else.
import type { Instant } from '../../core/clock.ts';
import type { ConditionInput } from '../../core/conditions.ts';
import { fitPeersOnce, remotePeersFromConfigMap, renderPeers } from '../../core/outputs.ts';
import type { Peer } from '../../core/peerTable.ts';
import { keyId } from '../../core/sideAuth.ts';
import type { EffectiveSpec } from '../../core/spec.ts';
import type { PgClusterObject } from '../../kube/resources.ts';
import type { Context } from '../context.ts';
import { connectedCondition } from '../plan/conditions.ts';
import type { ObservedDns } from '../plan/dns.ts';
import { selectMembers, type Selection } from '../plan/members.ts';
import { claimOf, type ObservedOutputs } from '../plan/outputs.ts';
import { selectorClaimOf, type SelectorClaim } from '../plan/gates.ts';
import { gateCondition, type PodCondition, type PodObject } from '../../kube/pods.ts';
import { getCondition } from '../../core/conditions.ts';
import type { ClusterRuntime } from '../runtime/clusterRuntime.ts';
import { memoKeys } from '../write/apply.ts';
import { hearPayload, hearSide } from './hear.ts';

export interface Observed {
  pc: PgClusterObject;
  spec: EffectiveSpec;
  rt: ClusterRuntime;
  selection: Selection;
  /** Members' node names that joined or left since the last reconcile. */
  change: { added: readonly string[]; removed: readonly string[] };
  members: number;
  /** The Connected condition (the URL's Secret, then the endpoint's state). */
  connection: ConditionInput;
  /** The Authenticated condition; none without spec.auth. */
  authenticated: ConditionInput | undefined;
  /** The PgCluster is attached to an endpoint (its URL was usable), and it has been Listening since. */
  attached: boolean;
  everListening: boolean;
  /** The peers to publish: paced (runtime/publishPacing.ts), cut to maxPeers and to the outputs' budgets. */
  peers: readonly Peer[];
  dropped: number;
  droppedForSize: number;
  /** The PgCluster's status as cached, or as we last wrote it. */
  status: PgClusterObject | undefined;
  outputs: ObservedOutputs;
  dns: ObservedDns;
  gates: ObservedGates;
}

/** What the readiness gate needs besides the outputs (plan/gates.ts). */
export interface ObservedGates {
  /** A pod's gate condition as cached, or as we last wrote it. */
  condition(pod: PodObject): PodCondition | undefined;
  /** The other PgClusters of the namespace that select pods: the oldest selecting a pod writes its gate. */
  rivals: readonly SelectorClaim[];
  /** Writes refused lately, as the PgCluster's Ready condition (as observed) says. */
  refused: string | undefined;
}

export async function observe(ctx: Context, pc: PgClusterObject, spec: EffectiveSpec, rt: ClusterRuntime, t: Instant): Promise<Observed> {
  const { caches, writes: { memo }, env } = ctx;
  const { namespace: ns, name } = pc.metadata;
  // Peer times are monotonic: a wall-clock step (NTP, a VM resumed) must not expire every remote peer at once.
  const now = t.mono;
  rt.seedOnce(() => remotePeersFromConfigMap(caches.configMaps.get(ns, spec.configMapName)?.data), now);
  const selection = selectMembers(caches.pods.inNamespace(ns), spec, rt.selectionMemo);
  const change = rt.table.setMembers(selection.members, now);
  if (change.added.length || change.removed.length) {
    rt.changed(now);
    env.log.debug({ pgcluster: rt.key, added: change.added, removed: change.removed, members: selection.members.length }, 'members changed');
  }
  const authenticated = await authenticate(ctx, pc, spec, rt, now);
  const connection = await listen(ctx, pc, spec, rt);
  const endpoint = rt.attachment?.endpoint;
  // Detached means the URL's Secret was unusable; an Authenticated False, spec.auth's: read them again soon.
  rt.secretRetry.note(endpoint !== undefined && authenticated?.status !== 'False', now);
  rt.listenerIs(endpoint?.state().phase === 'Listening', now, rt.auth.strict && !rt.auth.signingKey);
  rt.table.expire(now);
  const capped = rt.peers(now);
  const { peers, droppedForSize } = fitPeersOnce(capped.peers, spec.channel);
  const published = renderPeers(peers, spec.channel);
  rt.versions.note(published.version, published.names);

  const status = memo.observe(memoKeys.status(ns, name), pc);
  const others = [...caches.pgclusters.inNamespace(ns)].filter((other) => other.metadata.name !== name);
  const ready = getCondition(status?.status?.conditions, 'Ready');
  const sliceOf = (n: string) => memo.observe(memoKeys.output('endpointslices', ns, n), caches.endpointSlices.get(ns, n));
  return {
    pc, spec, rt, selection, change, connection, authenticated, peers, droppedForSize, status,
    members: rt.table.memberCount,
    attached: endpoint !== undefined,
    everListening: rt.endpoint.everListening,
    dropped: capped.dropped,
    outputs: {
      configMap: memo.observe(memoKeys.configMap(ns, spec.configMapName), caches.configMaps.get(ns, spec.configMapName)),
      configMaps: [...caches.configMaps.inNamespace(ns)],
      configMapTaken: rt.taken.has('configMap', spec.configMapName, now),
      pods: [...caches.pods.inNamespace(ns)].map((cached) => ({ cached, observed: memo.observe(memoKeys.pod(ns, cached.metadata.name), cached) ?? cached })),
      legacyKey: status?.status?.podAnnotation ?? spec.podAnnotation,
      rivals: others.flatMap((other) => claimOf(other) ?? []),
      versionNames: (v) => rt.versions.names(v),
      settled: rt.settledPods,
    },
    dns: {
      service: spec.serviceName ? memo.observe(memoKeys.output('services', ns, spec.serviceName), caches.services.get(ns, spec.serviceName)) : undefined,
      services: [...caches.services.inNamespace(ns)],
      slices: [...caches.endpointSlices.inNamespace(ns)].map((s) => sliceOf(s.metadata.name) ?? s),
      slice: sliceOf,
      serviceTaken: rt.taken.has('service', spec.serviceName, now),
    },
    gates: {
      condition: (pod) => gateCondition(memo.observe(memoKeys.podStatus(ns, pod.metadata.name), pod) ?? pod),
      rivals: others.flatMap((other) => selectorClaimOf(other) ?? []),
      refused: ready?.reason === 'OutputRejected' ? ready.message : undefined,
    },
  };
}

/**
 * spec.auth (docs/protocol.md, "Authenticated peers"): reads the keys, applies the policy to the runtime, and answers the
 * Authenticated condition (none without spec.auth). A key that cannot be read stops signing and verifying,
 * never the heartbeats; with acceptUnsigned false the remote peers are then held as they are. Keys are never
 * logged or shown: the condition names them by keyId.
 */
async function authenticate(ctx: Pick<Context, 'secrets'>, pc: PgClusterObject, spec: EffectiveSpec, rt: ClusterRuntime, now: number): Promise<ConditionInput | undefined> {
  const a = spec.auth;
  if (!a) {
    rt.auth.set(undefined);
    return undefined;
  }
  const ns = pc.metadata.namespace;
  const found = await ctx.secrets.keys(rt.key, { namespace: ns, name: a.secretName, key: a.key, previousKey: a.previousKey });
  const dropped = rt.auth.set({ keys: found.ok ? found.keys : undefined, acceptUnsigned: a.acceptUnsigned });
  if (dropped.length) rt.changed(now);
  const policy = a.acceptUnsigned ? 'unsigned names and leaves are accepted too (acceptUnsigned: true)' : 'only members and signed peers are published (acceptUnsigned: false)';
  if (!found.ok) {
    const meanwhile = a.acceptUnsigned ? 'nothing is signed or verified' : 'nothing is signed or verified, no remote peer is added, and the remote peers published are kept as they are';
    return { type: 'Authenticated', status: 'False', reason: found.reason, message: `${found.message}; until then ${meanwhile}` };
  }
  const previous = found.keys.previous ? `; key ${keyId(found.keys.previous)} (Secret key "${a.previousKey}") is accepted too` : '';
  return { type: 'Authenticated', status: 'True', reason: 'KeyLoaded', message: `side-channel messages are signed with key ${keyId(found.keys.current)} (Secret ${ns}/${a.secretName} key "${a.key}")${previous}; ${policy}` };
}

/** Resolves the URL and attaches the PgCluster to its endpoint; answers the Connected condition. */
async function listen(ctx: Context, pc: PgClusterObject, spec: EffectiveSpec, rt: ClusterRuntime): Promise<ConditionInput> {
  const found = await ctx.secrets.url(rt.key, { namespace: pc.metadata.namespace, name: spec.secretName, key: spec.secretKey }, spec.tls);
  if (!found.ok) {
    // Without a usable URL we stop heartbeats but keep the outputs as they are: nothing is lost.
    rt.endpoint.detach();
    return { type: 'Connected', status: 'False', reason: found.reason, message: found.message };
  }
  const a = rt.endpoint.attach(found, spec.channel, {
    onPayload: (payload) => hearPayload(ctx, rt.key, payload),
    onSide: (payload) => hearSide(ctx, rt.key, payload),
  });
  return connectedCondition(a.endpoint.state(), spec.channel, a.endpoint.id);
}
