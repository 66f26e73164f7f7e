// Paths and writes for the resources the operator owns or touches. Every function here is one API call.
import { ANNOTATED_LABEL, API_GROUP, API_VERSION, PLURAL, type PgCluster, type PgClusterStatus } from '../core/spec.ts';
import type { KubeClient, KubeObject } from './client.ts';
import type { PodCondition } from './pods.ts';

const enc = encodeURIComponent;

export const paths = {
  pgclusters: (ns?: string) => (ns ? `/apis/${API_GROUP}/${API_VERSION}/namespaces/${enc(ns)}/${PLURAL}` : `/apis/${API_GROUP}/${API_VERSION}/${PLURAL}`),
  pgcluster: (ns: string, name: string) => `/apis/${API_GROUP}/${API_VERSION}/namespaces/${enc(ns)}/${PLURAL}/${enc(name)}`,
  pods: (ns?: string) => (ns ? `/api/v1/namespaces/${enc(ns)}/pods` : '/api/v1/pods'),
  pod: (ns: string, name: string) => `/api/v1/namespaces/${enc(ns)}/pods/${enc(name)}`,
  podStatus: (ns: string, name: string) => `/api/v1/namespaces/${enc(ns)}/pods/${enc(name)}/status`,
  configMaps: (ns?: string) => (ns ? `/api/v1/namespaces/${enc(ns)}/configmaps` : '/api/v1/configmaps'),
  configMap: (ns: string, name: string) => `/api/v1/namespaces/${enc(ns)}/configmaps/${enc(name)}`,
  secrets: (ns: string) => `/api/v1/namespaces/${enc(ns)}/secrets`,
  secret: (ns: string, name: string) => `/api/v1/namespaces/${enc(ns)}/secrets/${enc(name)}`,
  namespaces: () => '/api/v1/namespaces',
  namespace: (name: string) => `/api/v1/namespaces/${enc(name)}`,
  events: (ns: string) => `/api/v1/namespaces/${enc(ns)}/events`,
  services: (ns?: string) => (ns ? `/api/v1/namespaces/${enc(ns)}/services` : '/api/v1/services'),
  endpointSlices: (ns?: string) => (ns ? `/apis/discovery.k8s.io/v1/namespaces/${enc(ns)}/endpointslices` : '/apis/discovery.k8s.io/v1/endpointslices'),
};

/** The DNS output's objects (docs/outputs.md, "DNS output"). */
export interface ServiceObject extends KubeObject {
  spec?: { clusterIP?: string; selector?: Record<string, string>; publishNotReadyAddresses?: boolean; ports?: unknown[] };
}
export interface EndpointSliceObject extends KubeObject {
  addressType?: 'IPv4' | 'IPv6' | 'FQDN';
  endpoints?: { addresses: string[]; conditions?: { ready?: boolean }; targetRef?: { kind: string; name: string; namespace: string } }[] | null;
  ports?: unknown[] | null;
}
/** The kinds of the DNS output, by their API resource (plural) name. */
export type OutputKind = 'services' | 'endpointslices';
const outputPath = (kind: OutputKind, ns: string) => (kind === 'services' ? paths.services(ns) : paths.endpointSlices(ns));
const outputApi = (kind: OutputKind) => (kind === 'services' ? { apiVersion: 'v1', kind: 'Service' } : { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice' });

export function createOutput<T extends KubeObject>(kube: KubeClient, kind: OutputKind, obj: T): Promise<T> {
  return kube.create(outputPath(kind, obj.metadata.namespace ?? ''), { ...outputApi(kind), ...obj }, kind);
}
/** A merge patch; lists in it (endpoints) replace the object's. */
export function patchOutput<T extends KubeObject>(kube: KubeClient, kind: OutputKind, ns: string, name: string, body: Record<string, unknown>): Promise<T> {
  return kube.patch(`${outputPath(kind, ns)}/${enc(name)}`, body, kind);
}
export function deleteOutput(kube: KubeClient, kind: OutputKind, ns: string, name: string): Promise<void> {
  return kube.delete(`${outputPath(kind, ns)}/${enc(name)}`, kind);
}

export interface ConfigMapObject extends KubeObject {
  data?: Record<string, string>;
}
export interface SecretObject extends KubeObject {
  data?: Record<string, string>;
}
export type PgClusterObject = PgCluster & KubeObject;

export function ownerReference(pc: PgClusterObject) {
  return { apiVersion: `${API_GROUP}/${API_VERSION}`, kind: 'PgCluster', name: pc.metadata.name, uid: pc.metadata.uid ?? '', controller: true, blockOwnerDeletion: true };
}

/** Whether `obj` has an owner reference to this PgCluster (what the operator writes, it owns so). */
export function ownedBy(obj: KubeObject, pc: PgClusterObject): boolean {
  return obj.metadata.ownerReferences?.some((r) => r.uid === pc.metadata.uid) ?? false;
}

export function createConfigMap(kube: KubeClient, cm: ConfigMapObject): Promise<ConfigMapObject> {
  return kube.create(paths.configMaps(cm.metadata.namespace), { apiVersion: 'v1', kind: 'ConfigMap', ...cm }, 'configmaps');
}

/** Replaces data and labels; the resourceVersion makes it fail on a concurrent change instead of losing it. */
/** In a merge patch a key set to null is removed: pass null for stale keys. */
export function patchConfigMap(kube: KubeClient, ns: string, name: string, patch: { data: Record<string, string | null>; labels: Record<string, string>; resourceVersion?: string }): Promise<ConfigMapObject> {
  return kube.patch(paths.configMap(ns, name), { metadata: { labels: patch.labels, resourceVersion: patch.resourceVersion }, data: patch.data }, 'configmaps');
}

export function deleteConfigMap(kube: KubeClient, ns: string, name: string): Promise<void> {
  return kube.delete(paths.configMap(ns, name), 'configmaps');
}

/** An annotation that must still hold a value for a patch to apply (a JSON Patch "test"). */
export interface Guard {
  key: string;
  value: string;
}

/**
 * Sets (string) or removes (null) annotations on a pod: a merge patch; with a guard, a JSON Patch that the
 * API server applies only while the guard's annotation holds its value (422 otherwise). A guarded patch
 * removes only annotations the pod has (a JSON Patch "remove" of a missing key fails).
 */
export function patchPodAnnotations(kube: KubeClient, ns: string, name: string, annotations: Record<string, string | null>, guard?: Guard): Promise<unknown> {
  if (!guard) {
    // A pod written on carries ANNOTATED_LABEL, for the operator's pod cache (kube/watchSet.ts).
    const writes = Object.values(annotations).some((v) => v !== null);
    return kube.patch(paths.pod(ns, name), { metadata: { annotations, ...(writes ? { labels: { [ANNOTATED_LABEL]: 'true' } } : {}) } }, 'pods');
  }
  const path = (k: string) => `/metadata/annotations/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`;
  const ops = [
    { op: 'test', path: path(guard.key), value: guard.value },
    ...Object.entries(annotations).map(([k, v]) => (v === null ? { op: 'remove', path: path(k) } : { op: 'add', path: path(k), value: v })),
  ];
  return kube.patch(paths.pod(ns, name), ops, 'pods', 'json');
}

/**
 * Sets one condition in a pod's status (pods/status; a strategic merge patch: conditions merge by type, the
 * kubelet's and others' are left as they are). The operator's readiness gate (docs/readiness-gate.md, "Rollouts paced by
 * discovery").
 */
export function patchPodCondition(kube: KubeClient, ns: string, name: string, condition: PodCondition): Promise<unknown> {
  return kube.patch(paths.podStatus(ns, name), { status: { conditions: [condition] } }, 'pods/status', 'strategic');
}

export function patchStatus(kube: KubeClient, ns: string, name: string, status: PgClusterStatus): Promise<unknown> {
  return kube.patch(`${paths.pgcluster(ns, name)}/status`, { status }, 'pgclusters/status');
}

/**
 * The PgCluster's finalizers (and, with them, annotations to add), guarded by its resourceVersion (409 on a
 * concurrent change; the queue retries). Answers the PgCluster as written.
 */
export function setFinalizers(kube: KubeClient, pc: PgClusterObject, finalizers: string[], annotations?: Record<string, string>): Promise<PgClusterObject> {
  return kube.patch<PgClusterObject>(paths.pgcluster(pc.metadata.namespace, pc.metadata.name), { metadata: { finalizers, ...(annotations ? { annotations } : {}), resourceVersion: pc.metadata.resourceVersion } }, 'pgclusters');
}

export function getSecret(kube: KubeClient, ns: string, name: string): Promise<SecretObject | undefined> {
  return kube.getOptional<SecretObject>(paths.secret(ns, name));
}

export interface EventInput {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

/** A core/v1 Event on the PgCluster, as `kubectl describe pgcluster` shows them. */
export function createEvent(kube: KubeClient, pc: PgClusterObject, ev: EventInput, reportingInstance: string, nowMs: number): Promise<unknown> {
  const now = new Date(nowMs).toISOString();
  return kube.create(paths.events(pc.metadata.namespace), {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { generateName: `${pc.metadata.name}.`, namespace: pc.metadata.namespace },
    involvedObject: { apiVersion: `${API_GROUP}/${API_VERSION}`, kind: 'PgCluster', name: pc.metadata.name, namespace: pc.metadata.namespace, uid: pc.metadata.uid, resourceVersion: pc.metadata.resourceVersion },
    reason: ev.reason,
    message: ev.message.slice(0, 1024),
    type: ev.type,
    source: { component: 'pgcluster-operator' },
    reportingComponent: 'pgcluster.io/operator',
    reportingInstance,
    firstTimestamp: now,
    lastTimestamp: now,
    count: 1,
  }, 'events');
}
