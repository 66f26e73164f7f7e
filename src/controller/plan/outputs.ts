// The outputs a PgCluster wants (docs/architecture.md, "Observe, plan, apply"): its ConfigMap and, on each
// selected pod, its annotation where it owns the key (docs/outputs.md, "Who owns what"). Pure: from what was observed —
// the pods and ConfigMaps as cached, or as we last wrote them — to the writes that make them so.
import { renderPeers } from '../../core/outputs.ts';
import type { Peer } from '../../core/peerTable.ts';
import { markedOwner, markerKey, markerValue, olderClaimant, ownedKeys, type Claim } from '../../core/ownership.ts';
import { ANNOTATED_LABEL, CLUSTER_KEY, MANAGED_BY, MANAGED_BY_LABEL, effectiveSpec, type EffectiveSpec } from '../../core/spec.ts';
import type { PodObject } from '../../kube/pods.ts';
import { ownedBy, ownerReference, type ConfigMapObject, type PgClusterObject } from '../../kube/resources.ts';

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
  /** The pod carries no value under the key yet (new to the PgCluster): the fan-out may write it twice in a pass. */
  first?: boolean;
}
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
  /** The names of a list published lately, by its version (the `version` annotation format); undefined: unknown. */
  versionNames?: (version: string) => ReadonlySet<string> | undefined;
  /**
   * Pods (as observed) last found to need no annotation write, and what that was planned against: skipped
   * while both are the same (a memo of planAnnotations' answer, held by the runtime).
   */
  settled?: WeakMap<object, { sig: string; value: string; selected: boolean }>;
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
  const data = renderPeers(peers, spec.channel).data;
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
 * On each selected pod, the annotation and its marker where this PgCluster owns the key (docs/outputs.md, "Who owns
 * what"); off every pod, what this PgCluster wrote and no longer wants (another key, a pod no longer
 * selected), each removal guarded by our marker.
 */
function planAnnotations(pc: PgClusterObject, spec: EffectiveSpec, selected: readonly PodObject[], peers: readonly Peer[], o: ObservedOutputs): Pick<OutputsPlan, 'podPatches' | 'podConflicts'> {
  const me = { name: pc.metadata.name, created: timestamp(pc.metadata.creationTimestamp) };
  const key = spec.podAnnotation;
  const value = annotationFor(spec, peers);
  const selectedNames = new Set(selected.map((p) => p.metadata.name));
  const podPatches: PodPatch[] = [];
  const podConflicts: PodConflict[] = [];
  // What a pod's answer depends on besides the pod and the value: a pod that needed nothing against the same
  // signature and value still needs nothing (the pod objects are replaced, never changed, by the caches).
  const sig = JSON.stringify([me, key, o.legacyKey, spec.selector, o.rivals]);
  for (const { cached, observed } of o.pods) {
    const selectedNow = selectedNames.has(observed.metadata.name);
    const memo = o.settled?.get(observed);
    if (memo && memo.sig === sig && memo.value === value && memo.selected === selectedNow) continue;
    const before = podPatches.length + podConflicts.length;
    planPod(cached, observed);
    if (podPatches.length + podConflicts.length === before) o.settled?.set(observed, { sig, value, selected: selectedNow });
  }
  return { podPatches, podConflicts };

  function planPod(cached: PodObject, observed: PodObject): void {
    if (observed.metadata.deletionTimestamp) return;
    const a = observed.metadata.annotations ?? {};
    const wanted = key !== '' && selectedNames.has(observed.metadata.name);
    const owned = ownedKeys(a, me.name, o.legacyKey);
    for (const own of owned) {
      if (wanted && own.key === key) continue;
      podPatches.push({ pod: cached, annotations: removal(a, [own.key, own.marker]), guard: { key: own.marker, value: own.markerValue } });
    }
    if (!wanted) return;
    const older = olderClaimant(me, o.rivals, key, observed.metadata.labels ?? {});
    if (older) {
      podConflicts.push({ pod: observed.metadata.name, owner: older.name });
      return;
    }
    const owner = markedOwner(a, key);
    const legacy = owned.some((k) => k.marker === CLUSTER_KEY && k.key === key);
    if (owner === undefined && !legacy && a[key] !== undefined) {
      podConflicts.push({ pod: observed.metadata.name, owner: undefined });
      return;
    }
    // Ours, free, or marked by a PgCluster that no longer claims it here (younger, gone, or elsewhere).
    // The label lets the pod cache find the pod again once no selector does (core/spec.ts, ANNOTATED_LABEL).
    if (a[key] !== value || owner !== me.name || legacy || observed.metadata.labels?.[ANNOTATED_LABEL] !== 'true') {
      podPatches.push({ pod: cached, annotations: { [key]: value, [markerKey(key)]: markerValue(me.name, key), ...(legacy ? { [CLUSTER_KEY]: null } : {}) }, ...(a[key] === undefined ? { first: true } : {}) });
    }
  }
}

/** What the pod annotation carries (spec.output.podAnnotationFormat): the names, or the list's version. */
export function annotationFor(spec: Pick<EffectiveSpec, 'channel' | 'podAnnotationFormat'>, peers: readonly Peer[]): string {
  const r = renderPeers(peers, spec.channel);
  return spec.podAnnotationFormat === 'version' ? r.version : r.list;
}

/** The patch that removes each of `keys` that a pod has. */
export function removal(annotations: Readonly<Record<string, string>>, keys: readonly string[]): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const k of keys) if (annotations[k] !== undefined) out[k] = null;
  return out;
}

/** metadata.creationTimestamp as RFC 3339 ('' when unset: the youngest, core/ownership.ts). */
export const timestamp = (t: string | Date | undefined): string => (t instanceof Date ? t.toISOString() : t ?? '');

/** The PgCluster's claim on its pods' annotation, as its rivals see it; undefined: it writes none. */
export function claimOf(pc: PgClusterObject): Claim | undefined {
  if (pc.metadata.deletionTimestamp) return undefined;
  const r = effectiveSpec(pc);
  if (!r.ok || r.spec.podAnnotation === '') return undefined;
  return { name: pc.metadata.name, created: timestamp(pc.metadata.creationTimestamp), selector: r.spec.selector, podAnnotation: r.spec.podAnnotation };
}

