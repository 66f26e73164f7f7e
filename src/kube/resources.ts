// Paths and writes for the resources the operator owns or touches. Every function here is one API call.
import { API_GROUP, API_VERSION, PLURAL, type PgCluster, type PgClusterStatus } from '../core/spec.ts';
import type { KubeClient, KubeObject } from './client.ts';

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
};

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

/** Sets (string) or removes (null) annotations on a pod. */
export function patchPodAnnotations(kube: KubeClient, ns: string, name: string, annotations: Record<string, string | null>): Promise<unknown> {
  return kube.patch(paths.pod(ns, name), { metadata: { annotations } }, 'pods');
}

export function patchStatus(kube: KubeClient, ns: string, name: string, status: PgClusterStatus): Promise<unknown> {
  return kube.patch(`${paths.pgcluster(ns, name)}/status`, { status }, 'pgclusters/status');
}

/** Writes the finalizer list, guarded by resourceVersion (409 on a concurrent change; the queue retries). */
export function setFinalizers(kube: KubeClient, pc: PgClusterObject, finalizers: string[]): Promise<unknown> {
  return kube.patch(paths.pgcluster(pc.metadata.namespace, pc.metadata.name), { metadata: { finalizers, resourceVersion: pc.metadata.resourceVersion } }, 'pgclusters');
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
