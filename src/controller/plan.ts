// The pure middle of a reconcile (docs/architecture.md, "Observe, plan, apply"): from what was observed —
// the PgCluster, the pods and outputs as cached (or as we last wrote them), the peer list, the listener's
// state — to what should be written. No I/O, no clock: `now` comes in. apply.ts carries the plan out.
import { getCondition, nowRfc3339, setCondition, statusEqual, type ConditionInput } from '../core/conditions.ts';
import { formatDuration } from '../core/duration.ts';
import { isEligible, podNodeName } from '../core/nodeName.ts';
import { annotationValue, configMapData } from '../core/outputs.ts';
import type { Member, Peer } from '../core/peerTable.ts';
import { matchesSelector } from '../core/selector.ts';
import { CLUSTER_KEY, MANAGED_BY, MANAGED_BY_LABEL, type Condition, type EffectiveSpec, type PgClusterStatus } from '../core/spec.ts';
import { podView, type PodObject } from '../kube/pods.ts';
import { ownerReference, type ConfigMapObject, type EventInput, type PgClusterObject } from '../kube/resources.ts';
import type { EndpointState } from '../postgres/endpoint.ts';

// ---- members ------------------------------------------------------------------------------------------

export interface Selection {
  /** Pods the selector matches that are neither deleting nor terminated: they carry the annotation. */
  selected: PodObject[];
  /** Selected, eligible pods with a valid, distinct node name: announced on the channel. */
  members: Member[];
  /** Why selected pods are not announced (shown in the Ready condition). */
  unannounced: string[];
}

export function selectMembers(pods: Iterable<PodObject>, spec: EffectiveSpec): Selection {
  const selected: PodObject[] = [];
  const members: Member[] = [];
  const unannounced: string[] = [];
  for (const pod of pods) {
    const view = podView(pod);
    if (!matchesSelector(view.labels, spec.selector) || view.deleting || view.terminated) continue;
    selected.push(pod);
    if (!isEligible(view, spec.publishNotReadyPods)) continue;
    const naming = podNodeName(view, spec);
    if (naming.ok) members.push({ node: naming.node, host: naming.host, pod: view.name });
    else if (naming.reason !== 'NoPodIP') unannounced.push(naming.message);
  }
  unannounced.push(...dedupeMembers(members));
  return { selected, members, unannounced };
}

/** Two pods with one node name (e.g. the same override): announce it once, and say so. */
function dedupeMembers(members: Member[]): string[] {
  const seen = new Map<string, string>();
  const problems: string[] = [];
  for (let i = members.length - 1; i >= 0; i--) {
    const m = members[i] as Member;
    const other = seen.get(m.node);
    if (other !== undefined) {
      problems.push(`pods ${m.pod} and ${other} have the same node name ${m.node}`);
      members.splice(i, 1);
    } else seen.set(m.node, m.pod);
  }
  return problems;
}

// ---- conditions ---------------------------------------------------------------------------------------

export function connectedCondition(state: EndpointState, channel: string, endpointId: string): ConditionInput {
  switch (state.phase) {
    case 'Listening':
      return { type: 'Connected', status: 'True', reason: 'Listening', message: `LISTENing on channel ${channel} (endpoint ${endpointId}); own heartbeats are heard` };
    case 'Connecting':
      return { type: 'Connected', status: 'Unknown', reason: 'Connecting', message: `connecting to Postgres (endpoint ${endpointId})` };
    case 'Failed':
      return { type: 'Connected', status: 'False', reason: state.reason, message: state.message };
  }
}

export interface ReadyInput {
  spec: Pick<EffectiveSpec, 'configMapName' | 'podAnnotation' | 'maxPeers' | 'heartbeatMs'>;
  connection: ConditionInput;
  /** The PgCluster is attached to an endpoint (its URL was usable). */
  attached: boolean;
  /** The endpoint has been Listening since the PgCluster attached to it. */
  everListening: boolean;
  members: number;
  remote: number;
  dropped: number;
  unannounced: readonly string[];
}

export function readyCondition(r: ReadyInput): ConditionInput {
  const { spec, connection } = r;
  const unannouncedNote = r.unannounced.length ? `; ${r.unannounced.length} selected pod(s) not announced: ${r.unannounced.slice(0, 3).join('; ')}` : '';
  if (connection.status !== 'True' && (!r.attached || !r.everListening)) {
    return { type: 'Ready', status: 'False', reason: r.attached ? 'WaitingForListener' : 'NotConnected', message: `peers not yet heard from the channel (${connection.reason}); outputs list members only${unannouncedNote}` };
  }
  if (connection.status !== 'True') {
    return { type: 'Ready', status: 'False', reason: 'Disconnected', message: `Postgres listener is down (${connection.reason}): outputs keep the last known peers and follow the pods; remote peers do not expire until it is back${unannouncedNote}` };
  }
  const published = `${r.members} member(s) and ${r.remote} remote peer(s) published to ConfigMap ${spec.configMapName}${spec.podAnnotation ? ` and pod annotation ${spec.podAnnotation}` : ''}`;
  if (r.dropped > 0) {
    return { type: 'Ready', status: 'True', reason: 'MaxPeersExceeded', message: `${published}; ${r.dropped} name(s) not published: maxPeers is ${spec.maxPeers}${unannouncedNote}` };
  }
  return { type: 'Ready', status: 'True', reason: 'PeersPublished', message: `${published}; heartbeat every ${formatDuration(spec.heartbeatMs)}${unannouncedNote}` };
}

// ---- writes -------------------------------------------------------------------------------------------

export type ConfigMapWrite =
  | { kind: 'create'; object: ConfigMapObject }
  | { kind: 'patch'; name: string; data: Record<string, string | null>; labels: Record<string, string>; before: ConfigMapObject };

export interface PodPatch {
  /** The pod as cached: its resourceVersion is what the write memo waits for the cache to move past. */
  pod: PodObject;
  annotations: Record<string, string | null>;
}

export interface StatusWrite {
  status: PgClusterStatus;
  /** What the status was compared against (the cached PgCluster, or our last write). */
  before: PgClusterObject | undefined;
  /** Events for the conditions that changed, recorded once the status is written. */
  events: EventInput[];
}

export interface OutputsPlan {
  configMap: ConfigMapWrite | undefined;
  /** ConfigMaps of this PgCluster under an old output.configMapName: deleted before the patch. */
  deleteConfigMaps: string[];
  podPatches: PodPatch[];
}

export interface ObservedOutputs {
  /** Our ConfigMap as cached, or as we last wrote it. */
  configMap: ConfigMapObject | undefined;
  /** Every ConfigMap of ours in the namespace (cached). */
  configMaps: readonly ConfigMapObject[];
  /** Every pod in the namespace: as cached, and as observed through our writes. */
  pods: readonly { cached: PodObject; observed: PodObject }[];
  /** The annotation key written before, if it differs from the one wanted now (it comes off the pods). */
  staleKey: string | undefined;
}

export function planOutputs(pc: PgClusterObject, spec: EffectiveSpec, selected: readonly PodObject[], peers: readonly Peer[], o: ObservedOutputs): OutputsPlan {
  return { ...planConfigMap(pc, spec, peers, o), podPatches: planAnnotations(pc, spec, selected, peers, o) };
}

function planConfigMap(pc: PgClusterObject, spec: EffectiveSpec, peers: readonly Peer[], o: ObservedOutputs): Omit<OutputsPlan, 'podPatches'> {
  const ns = pc.metadata.namespace;
  const data = configMapData(spec.channel, peers);
  const labels = { [MANAGED_BY_LABEL]: MANAGED_BY, [CLUSTER_KEY]: pc.metadata.name };
  const observed = o.configMap;
  if (!observed) {
    return { configMap: { kind: 'create', object: { metadata: { name: spec.configMapName, namespace: ns, labels, ownerReferences: [ownerReference(pc)] }, data } }, deleteConfigMaps: [] };
  }
  const deleteConfigMaps = o.configMaps
    .filter((cm) => cm.metadata.labels?.[CLUSTER_KEY] === pc.metadata.name && cm.metadata.ownerReferences?.some((r) => r.uid === pc.metadata.uid))
    .map((cm) => cm.metadata.name)
    .filter((name) => name !== spec.configMapName);
  const current = observed.data ?? {};
  const stale = Object.keys(current).filter((k) => !(k in data));
  const same = stale.length === 0 && Object.entries(data).every(([k, v]) => current[k] === v) && observed.metadata.labels?.[CLUSTER_KEY] === pc.metadata.name;
  if (same) return { configMap: undefined, deleteConfigMaps };
  const patch: Record<string, string | null> = { ...data };
  for (const k of stale) patch[k] = null;
  return { configMap: { kind: 'patch', name: spec.configMapName, data: patch, labels, before: observed }, deleteConfigMaps };
}

function planAnnotations(pc: PgClusterObject, spec: EffectiveSpec, selected: readonly PodObject[], peers: readonly Peer[], o: ObservedOutputs): PodPatch[] {
  const name = pc.metadata.name;
  const value = annotationValue(peers);
  const selectedNames = new Set(selected.map((p) => p.metadata.name));
  const { staleKey } = o;
  const patches: PodPatch[] = [];
  if (spec.podAnnotation) {
    for (const { cached, observed } of o.pods) {
      if (!selectedNames.has(cached.metadata.name)) continue;
      const a = observed.metadata.annotations ?? {};
      const hasStale = staleKey !== undefined && a[staleKey] !== undefined;
      if (a[spec.podAnnotation] !== value || a[CLUSTER_KEY] !== name || hasStale) {
        patches.push({ pod: cached, annotations: { ...(hasStale ? { [staleKey]: null } : {}), [spec.podAnnotation]: value, [CLUSTER_KEY]: name } });
      }
    }
  }
  // Pods we annotated that no longer match (or the annotation was turned off): remove what we wrote.
  for (const { cached, observed } of o.pods) {
    if (observed.metadata.annotations?.[CLUSTER_KEY] !== name) continue;
    if (spec.podAnnotation && selectedNames.has(observed.metadata.name)) continue;
    if (observed.metadata.deletionTimestamp) continue;
    patches.push({ pod: cached, annotations: annotationRemoval(observed, [spec.podAnnotation, staleKey]) });
  }
  return patches;
}

/** The patch that takes our marker and each of `keys` (those present; "" or undefined: none) off a pod. */
export function annotationRemoval(pod: PodObject, keys: readonly (string | undefined)[]): Record<string, string | null> {
  const out: Record<string, string | null> = { [CLUSTER_KEY]: null };
  for (const k of keys) if (k && pod.metadata.annotations?.[k] !== undefined) out[k] = null;
  return out;
}

/**
 * A status "transaction": computed in full, written only when it differs from what is observed; an Event
 * for each condition that changed, except a first healthy one (not news) and Unknown ones.
 */
export function planStatus(
  pc: PgClusterObject, observed: PgClusterObject | undefined,
  fields: Omit<PgClusterStatus, 'conditions' | 'observedGeneration'>, conditions: readonly ConditionInput[], now: number,
): StatusWrite | undefined {
  const before = observed?.status ?? {};
  const nowIso = nowRfc3339(now);
  let conds: Condition[] = before.conditions ?? [];
  for (const c of conditions) conds = setCondition(conds, { ...c, observedGeneration: pc.metadata.generation }, nowIso);
  const desired: PgClusterStatus = { ...before, ...fields, observedGeneration: pc.metadata.generation, conditions: conds };
  if (statusEqual(before, desired)) return undefined;
  const events: EventInput[] = [];
  for (const c of conditions) {
    const prev = getCondition(before.conditions, c.type);
    if (prev && prev.status === c.status && prev.reason === c.reason) continue;
    if (!prev && c.status === 'True') continue;
    if (c.status === 'Unknown') continue;
    events.push({ type: c.status === 'True' ? 'Normal' : 'Warning', reason: c.reason, message: c.message });
  }
  return { status: desired, before: observed, events };
}
