// The pure middle of a reconcile (docs/architecture.md, "Observe, plan, apply"): from what was observed —
// the PgCluster, the pods and outputs as cached (or as we last wrote them), the peer list, the listener's
// state — to what should be written. No I/O, no clock: `now` comes in. apply.ts carries the plan out.
import { getCondition, nowRfc3339, setCondition, statusEqual, type ConditionInput } from '../core/conditions.ts';
import { formatDuration } from '../core/duration.ts';
import { isEligible, podNodeName } from '../core/nodeName.ts';
import { ANNOTATION_BUDGET, CONFIGMAP_DATA_BUDGET, annotationValue, configMapData } from '../core/outputs.ts';
import type { Member, Peer } from '../core/peerTable.ts';
import { matchesSelector } from '../core/selector.ts';
import { markedOwner, markerKey, markerValue, olderClaimant, ownedKeys, type Claim } from '../core/ownership.ts';
import { ANNOTATED_LABEL, CLUSTER_KEY, MANAGED_BY, MANAGED_BY_LABEL, effectiveSpec, type Condition, type EffectiveSpec, type PgClusterStatus } from '../core/spec.ts';
import { podView, type PodObject } from '../kube/pods.ts';
import { ownedBy, ownerReference, type ConfigMapObject, type EventInput, type PgClusterObject } from '../kube/resources.ts';
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
  /** Names left out for maxPeers, and for the outputs' byte budgets. */
  dropped: number;
  droppedForSize: number;
  unannounced: readonly string[];
  outputs: OutputReport;
}

/** What kept an output from being written: someone else owns it, or the API server refused it. */
export interface OutputReport {
  configMapConflict: string | undefined;
  /** The DNS output's Service is someone else's. */
  serviceConflict?: string | undefined;
  podConflicts: readonly PodConflict[];
  /** Writes the API server refused (422, 413): what and why, in its words. */
  rejected: readonly string[];
}

export function readyCondition(r: ReadyInput): ConditionInput {
  const { spec, connection } = r;
  const unannouncedNote = r.unannounced.length ? `; ${r.unannounced.length} selected pod(s) not announced: ${r.unannounced.slice(0, 3).join('; ')}` : '';
  const problem = outputProblem(spec.podAnnotation, r.outputs);
  if (problem) return { type: 'Ready', status: 'False', reason: problem.reason, message: `${problem.message}${unannouncedNote}` };
  if (connection.status !== 'True' && (!r.attached || !r.everListening)) {
    return { type: 'Ready', status: 'False', reason: r.attached ? 'WaitingForListener' : 'NotConnected', message: `peers not yet heard from the channel (${connection.reason}); outputs list members only${unannouncedNote}` };
  }
  if (connection.status !== 'True') {
    return { type: 'Ready', status: 'False', reason: 'Disconnected', message: `Postgres listener is down (${connection.reason}): outputs keep the last known peers and follow the pods; remote peers do not expire until it is back${unannouncedNote}` };
  }
  const published = `${r.members} member(s) and ${r.remote} remote peer(s) published to ConfigMap ${spec.configMapName}${spec.podAnnotation ? ` and pod annotation ${spec.podAnnotation}` : ''}`;
  if (r.droppedForSize > 0) {
    return { type: 'Ready', status: 'True', reason: 'OutputSizeExceeded', message: `${published}; ${r.droppedForSize} name(s) not published: the outputs are full (ConfigMap data ${CONFIGMAP_DATA_BUDGET / 1024} KiB, pod annotation ${ANNOTATION_BUDGET / 1024} KiB; remote peers are left out before members)${r.dropped ? `, and ${r.dropped} more for maxPeers ${spec.maxPeers}` : ''}${unannouncedNote}` };
  }
  if (r.dropped > 0) {
    return { type: 'Ready', status: 'True', reason: 'MaxPeersExceeded', message: `${published}; ${r.dropped} name(s) not published: maxPeers is ${spec.maxPeers}${unannouncedNote}` };
  }
  return { type: 'Ready', status: 'True', reason: 'PeersPublished', message: `${published}; heartbeat every ${formatDuration(spec.heartbeatMs)}${unannouncedNote}` };
}

/** Degraded (minMembers set): True below it, the alarm users otherwise build by hand. Ready is not affected. */
export function degradedCondition(members: number, minMembers: number): ConditionInput {
  return members < minMembers
    ? { type: 'Degraded', status: 'True', reason: 'BelowMinMembers', message: `${members} member(s) announced, fewer than minMembers ${minMembers}` }
    : { type: 'Degraded', status: 'False', reason: 'EnoughMembers', message: `${members} member(s) announced, at least minMembers ${minMembers}` };
}

/** Conditions whose True is the bad news (Kubernetes' "abnormal-true" polarity). */
const ABNORMAL_TRUE = new Set(['Degraded']);

function outputProblem(podAnnotation: string, o: OutputReport): { reason: 'OutputConflict' | 'OutputRejected'; message: string } | undefined {
  const conflicts: string[] = [];
  if (o.configMapConflict) conflicts.push(o.configMapConflict);
  if (o.serviceConflict) conflicts.push(o.serviceConflict);
  if (o.podConflicts.length) {
    const examples = o.podConflicts.slice(0, 3).map((c) => (c.owner ? `${c.pod} (owned by the older PgCluster ${c.owner})` : `${c.pod} (a value this PgCluster did not write)`));
    conflicts.push(`annotation ${podAnnotation} is left alone on ${o.podConflicts.length} selected pod(s): ${examples.join(', ')}; set a spec.output.podAnnotation of this PgCluster's own, or remove the value if it is stale (kubectl annotate pod <pod> ${podAnnotation}-)`);
  }
  const rejected = o.rejected.length ? `the API server refused ${o.rejected.length} write(s): ${o.rejected.slice(0, 2).join('; ')}` : '';
  if (conflicts.length) return { reason: 'OutputConflict', message: [...conflicts, ...(rejected ? [rejected] : [])].join('; ') };
  if (rejected) return { reason: 'OutputRejected', message: `${rejected}; the other outputs are written` };
  return undefined;
}

// ---- writes -------------------------------------------------------------------------------------------

export type ConfigMapWrite =
  | { kind: 'create'; object: ConfigMapObject }
  | { kind: 'patch'; name: string; data: Record<string, string | null>; labels: Record<string, string>; before: ConfigMapObject };

export interface PodPatch {
  /** The pod as cached: its resourceVersion is what the write memo waits for the cache to move past. */
  pod: PodObject;
  /** Sets (string) or removes (null) annotations. */
  annotations: Record<string, string | null>;
  /** Only while this annotation still holds this value (our marker): what we wrote is all we remove. */
  guard?: { key: string; value: string };
}

export interface StatusWrite {
  status: PgClusterStatus;
  /** What the status was compared against (the cached PgCluster, or our last write). */
  before: PgClusterObject | undefined;
  /** Events for the conditions that changed, recorded once the status is written. */
  events: EventInput[];
}

/** A selected pod whose annotation is left alone: another PgCluster owns the key there, or no PgCluster. */
export interface PodConflict {
  pod: string;
  /** The older PgCluster that owns the key on this pod; undefined: a value someone else put there. */
  owner: string | undefined;
}

export interface OutputsPlan {
  configMap: ConfigMapWrite | undefined;
  /** ConfigMaps of this PgCluster under an old output.configMapName: deleted before the patch. */
  deleteConfigMaps: string[];
  podPatches: PodPatch[];
  /** Why the ConfigMap is not ours to write (left alone, reported), if it is not. */
  configMapConflict: string | undefined;
  podConflicts: PodConflict[];
}

export interface ObservedOutputs {
  /** Our ConfigMap as cached, or as we last wrote it. */
  configMap: ConfigMapObject | undefined;
  /** Every ConfigMap of ours in the namespace (cached). */
  configMaps: readonly ConfigMapObject[];
  /** A create under configMapName was refused lately (409): an object the cache does not hold has the name. */
  configMapTaken: boolean;
  /** Every pod in the namespace: as cached, and as observed through our writes. */
  pods: readonly { cached: PodObject; observed: PodObject }[];
  /** The key in status.podAnnotation: what an earlier version's single marker (pgcluster.io/cluster) covers. */
  legacyKey: string | undefined;
  /** The other PgClusters of the namespace that write a pod annotation. */
  rivals: readonly Claim[];
}

export function planOutputs(pc: PgClusterObject, spec: EffectiveSpec, selected: readonly PodObject[], peers: readonly Peer[], o: ObservedOutputs): OutputsPlan {
  return { ...planConfigMap(pc, spec, peers, o), ...planAnnotations(pc, spec, selected, peers, o) };
}

/** A ConfigMap of this name exists and is not labelled as ours: the cache does not hold it, a create said 409. */
export function configMapTakenMessage(ns: string, name: string): string {
  return `ConfigMap ${ns}/${name} exists and is not this PgCluster's (it is not labelled ${MANAGED_BY_LABEL}=${MANAGED_BY}), so it is left alone: delete it, or set spec.output.configMapName to a free name`;
}

function planConfigMap(pc: PgClusterObject, spec: EffectiveSpec, peers: readonly Peer[], o: ObservedOutputs): Pick<OutputsPlan, 'configMap' | 'deleteConfigMaps' | 'configMapConflict'> {
  const ns = pc.metadata.namespace;
  const name = spec.configMapName;
  const data = configMapData(spec.channel, peers);
  const labels = { [MANAGED_BY_LABEL]: MANAGED_BY, [CLUSTER_KEY]: pc.metadata.name };
  const observed = o.configMap;
  const none = { configMap: undefined, deleteConfigMaps: [] };
  if (!observed) {
    if (o.configMapTaken) return { ...none, configMapConflict: configMapTakenMessage(ns, name) };
    return { configMap: { kind: 'create', object: { metadata: { name, namespace: ns, labels, ownerReferences: [ownerReference(pc)] }, data } }, deleteConfigMaps: [], configMapConflict: undefined };
  }
  if (!ownedBy(observed, pc)) {
    const owner = observed.metadata.ownerReferences?.find((r) => r.kind === 'PgCluster')?.name;
    return {
      ...none,
      configMapConflict: owner
        ? `ConfigMap ${ns}/${name} belongs to PgCluster ${owner}, so it is left alone: give this PgCluster another spec.output.configMapName`
        : `ConfigMap ${ns}/${name} is labelled ${MANAGED_BY_LABEL}=${MANAGED_BY} but is not owned by this PgCluster, so it is left alone: delete it (it is then created again, owned), or set spec.output.configMapName to a free name`,
    };
  }
  const deleteConfigMaps = o.configMaps
    .filter((cm) => cm.metadata.labels?.[CLUSTER_KEY] === pc.metadata.name && ownedBy(cm, pc))
    .map((cm) => cm.metadata.name)
    .filter((n) => n !== name);
  const current = observed.data ?? {};
  const stale = Object.keys(current).filter((k) => !(k in data));
  const same = stale.length === 0 && Object.entries(data).every(([k, v]) => current[k] === v) && observed.metadata.labels?.[CLUSTER_KEY] === pc.metadata.name;
  if (same) return { configMap: undefined, deleteConfigMaps, configMapConflict: undefined };
  const patch: Record<string, string | null> = { ...data };
  for (const k of stale) patch[k] = null;
  return { configMap: { kind: 'patch', name, data: patch, labels, before: observed }, deleteConfigMaps, configMapConflict: undefined };
}

/**
 * On each selected pod, the annotation and its marker where this PgCluster owns the key (README, "Who owns
 * what"); off every pod, what this PgCluster wrote and no longer wants (another key, a pod no longer
 * selected), each removal guarded by our marker.
 */
function planAnnotations(pc: PgClusterObject, spec: EffectiveSpec, selected: readonly PodObject[], peers: readonly Peer[], o: ObservedOutputs): Pick<OutputsPlan, 'podPatches' | 'podConflicts'> {
  const me = { name: pc.metadata.name, created: timestamp(pc.metadata.creationTimestamp) };
  const key = spec.podAnnotation;
  const value = annotationValue(peers);
  const selectedNames = new Set(selected.map((p) => p.metadata.name));
  const podPatches: PodPatch[] = [];
  const podConflicts: PodConflict[] = [];
  for (const { cached, observed } of o.pods) {
    if (observed.metadata.deletionTimestamp) continue;
    const a = observed.metadata.annotations ?? {};
    const wanted = key !== '' && selectedNames.has(observed.metadata.name);
    const owned = ownedKeys(a, me.name, o.legacyKey);
    for (const own of owned) {
      if (wanted && own.key === key) continue;
      podPatches.push({ pod: cached, annotations: removal(a, [own.key, own.marker]), guard: { key: own.marker, value: own.markerValue } });
    }
    if (!wanted) continue;
    const older = olderClaimant(me, o.rivals, key, observed.metadata.labels ?? {});
    if (older) {
      podConflicts.push({ pod: observed.metadata.name, owner: older.name });
      continue;
    }
    const owner = markedOwner(a, key);
    const legacy = owned.some((k) => k.marker === CLUSTER_KEY && k.key === key);
    if (owner === undefined && !legacy && a[key] !== undefined) {
      podConflicts.push({ pod: observed.metadata.name, owner: undefined });
      continue;
    }
    // Ours, free, or marked by a PgCluster that no longer claims it here (younger, gone, or elsewhere).
    // The label lets the pod cache find the pod again once no selector does (core/spec.ts, ANNOTATED_LABEL).
    if (a[key] !== value || owner !== me.name || legacy || observed.metadata.labels?.[ANNOTATED_LABEL] !== 'true') {
      podPatches.push({ pod: cached, annotations: { [key]: value, [markerKey(key)]: markerValue(me.name, key), ...(legacy ? { [CLUSTER_KEY]: null } : {}) } });
    }
  }
  return { podPatches, podConflicts };
}

/** The patch that removes each of `keys` that a pod has. */
export function removal(annotations: Readonly<Record<string, string>>, keys: readonly string[]): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const k of keys) if (annotations[k] !== undefined) out[k] = null;
  return out;
}

const timestamp = (t: string | Date | undefined): string => (t instanceof Date ? t.toISOString() : t ?? '');

/** The PgCluster's claim on its pods' annotation, as its rivals see it; undefined: it writes none. */
export function claimOf(pc: PgClusterObject): Claim | undefined {
  if (pc.metadata.deletionTimestamp) return undefined;
  const r = effectiveSpec(pc);
  if (!r.ok || r.spec.podAnnotation === '') return undefined;
  return { name: pc.metadata.name, created: timestamp(pc.metadata.creationTimestamp), selector: r.spec.selector, podAnnotation: r.spec.podAnnotation };
}

/**
 * A status "transaction": computed in full, written only when it differs from what is observed; an Event
 * for each condition that changed, except a first healthy one (not news) and Unknown ones.
 */
export function planStatus(
  pc: PgClusterObject, observed: PgClusterObject | undefined,
  fields: Omit<PgClusterStatus, 'conditions' | 'observedGeneration'>, conditions: readonly ConditionInput[], now: number,
  /** Condition types that no longer apply (e.g. Degraded once minMembers is unset): removed. */
  drop: readonly string[] = [],
): StatusWrite | undefined {
  const before = observed?.status ?? {};
  const nowIso = nowRfc3339(now);
  let conds: Condition[] = (before.conditions ?? []).filter((c) => !drop.includes(c.type));
  for (const c of conditions) conds = setCondition(conds, { ...c, observedGeneration: pc.metadata.generation }, nowIso);
  const desired: PgClusterStatus = { ...before, ...fields, observedGeneration: pc.metadata.generation, conditions: conds };
  if (statusEqual(before, desired)) return undefined;
  const events: EventInput[] = [];
  for (const c of conditions) {
    const prev = getCondition(before.conditions, c.type);
    if (prev && prev.status === c.status && prev.reason === c.reason) continue;
    if (c.status === 'Unknown') continue;
    const bad = ABNORMAL_TRUE.has(c.type) ? c.status === 'True' : c.status !== 'True';
    if (!prev && !bad) continue;
    events.push({ type: bad ? 'Warning' : 'Normal', reason: c.reason, message: c.message });
  }
  return { status: desired, before: observed, events };
}
