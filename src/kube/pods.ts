// Pod JSON -> the core's PodView.
import type { PodView } from '../core/pod.ts';
import { READINESS_GATE } from '../core/spec.ts';
import type { KubeObject } from './client.ts';

/** A pod condition (core/v1 PodCondition), as the operator reads and writes its readiness gate's. */
export interface PodCondition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
}

export interface PodObject extends KubeObject {
  spec?: { hostname?: string; subdomain?: string; nodeName?: string; readinessGates?: { conditionType: string }[] };
  status?: { phase?: string; podIP?: string; conditions?: PodCondition[] };
}

const conditionTrue = (p: PodObject, type: string): boolean => (p.status?.conditions ?? []).some((c) => c.type === type && c.status === 'True');

/** Whether the pod's spec lists the operator's readiness gate (docs/readiness-gate.md, "Rollouts paced by discovery"). */
export function hasReadinessGate(p: PodObject): boolean {
  return (p.spec?.readinessGates ?? []).some((g) => g.conditionType === READINESS_GATE);
}

/** The pod's condition of the operator's readiness gate, if it has one. */
export function gateCondition(p: PodObject): PodCondition | undefined {
  return p.status?.conditions?.find((c) => c.type === READINESS_GATE);
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
    ready: phase === 'Running' && conditionTrue(p, 'Ready'),
    containersReady: phase === 'Running' && conditionTrue(p, 'ContainersReady'),
    gated: hasReadinessGate(p),
    terminated: phase === 'Succeeded' || phase === 'Failed',
    deleting: !!p.metadata.deletionTimestamp,
  };
}

/** The part of a pod the operator reads (everything podView and the writers need): what the cache keeps. */
export function slimPod(p: PodObject): PodObject {
  const m = p.metadata;
  const gated = hasReadinessGate(p);
  return {
    metadata: {
      name: m.name, namespace: m.namespace, uid: m.uid, resourceVersion: m.resourceVersion,
      labels: m.labels, annotations: m.annotations, deletionTimestamp: m.deletionTimestamp,
    },
    spec: { hostname: p.spec?.hostname, subdomain: p.spec?.subdomain, ...(gated ? { readinessGates: [{ conditionType: READINESS_GATE }] } : {}) },
    status: {
      phase: p.status?.phase,
      podIP: p.status?.podIP,
      // The gate's condition whole (its lastTransitionTime moves only on a flip); of the others, type and status.
      conditions: p.status?.conditions?.flatMap((c) => (c.type === READINESS_GATE
        ? [{ type: c.type, status: c.status, reason: c.reason, message: c.message, lastTransitionTime: c.lastTransitionTime }]
        : c.type === 'Ready' || (gated && c.type === 'ContainersReady') ? [{ type: c.type, status: c.status }] : [])),
    },
  };
}
