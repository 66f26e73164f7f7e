// Pod JSON -> the core's PodView.
import type { PodView } from '../core/pod.ts';
import type { KubeObject } from './client.ts';

export interface PodObject extends KubeObject {
  spec?: { hostname?: string; subdomain?: string; nodeName?: string };
  status?: { phase?: string; podIP?: string; conditions?: { type: string; status: string }[] };
}

export function podView(p: PodObject): PodView {
  const phase = p.status?.phase;
  return {
    namespace: p.metadata.namespace ?? '',
    name: p.metadata.name,
    uid: p.metadata.uid ?? '',
    labels: p.metadata.labels ?? {},
    annotations: p.metadata.annotations ?? {},
    podIP: p.status?.podIP || undefined,
    hostname: p.spec?.hostname || undefined,
    subdomain: p.spec?.subdomain || undefined,
    ready: phase === 'Running' && (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
    terminated: phase === 'Succeeded' || phase === 'Failed',
    deleting: !!p.metadata.deletionTimestamp,
  };
}

/** The part of a pod the operator reads (everything podView and the writers need): what the cache keeps. */
export function slimPod(p: PodObject): PodObject {
  const m = p.metadata;
  return {
    metadata: {
      name: m.name, namespace: m.namespace, uid: m.uid, resourceVersion: m.resourceVersion,
      labels: m.labels, annotations: m.annotations, deletionTimestamp: m.deletionTimestamp,
    },
    spec: { hostname: p.spec?.hostname, subdomain: p.spec?.subdomain },
    status: {
      phase: p.status?.phase,
      podIP: p.status?.podIP,
      conditions: p.status?.conditions?.filter((c) => c.type === 'Ready').map((c) => ({ type: c.type, status: c.status })),
    },
  };
}
