// Node naming: the modes of libcluster's Kubernetes strategy, plus a per-pod override annotation.
import { parseNodeName } from './payload.ts';
import type { PodView } from './pod.ts';
import { NODE_NAME_ANNOTATION, type EffectiveSpec } from './spec.ts';

export type PodNaming =
  | { ok: true; node: string; host: string }
  | { ok: false; reason: 'NoPodIP' | 'NoSubdomain' | 'InvalidNodeName'; message: string };

type NamingSpec = Pick<EffectiveSpec, 'basename' | 'mode' | 'clusterDomain'>;

export function podNodeName(pod: PodView, spec: NamingSpec): PodNaming {
  const override = pod.annotations[NODE_NAME_ANNOTATION];
  if (override !== undefined) {
    const parsed = parseNodeName(override);
    if (!parsed.ok) {
      return {
        ok: false,
        reason: 'InvalidNodeName',
        message: `pod ${pod.name}: annotation ${NODE_NAME_ANNOTATION}="${override.slice(0, 80)}" is not a node name (${parsed.problem}); use name@host`,
      };
    }
    return { ok: true, node: parsed.node, host: parsed.host };
  }
  let host: string;
  switch (spec.mode) {
    case 'ip':
    case 'dns': {
      if (!pod.podIP) return { ok: false, reason: 'NoPodIP', message: `pod ${pod.name} has no IP yet` };
      host = spec.mode === 'ip' ? pod.podIP : `${pod.podIP.replace(/[.:]/g, '-')}.${pod.namespace}.pod.${spec.clusterDomain}`;
      break;
    }
    case 'hostname': {
      if (!pod.subdomain) {
        return {
          ok: false,
          reason: 'NoSubdomain',
          message: `pod ${pod.name} has no spec.subdomain, required by nodeName.mode hostname (set it to a headless Service's name)`,
        };
      }
      host = `${pod.hostname || pod.name}.${pod.subdomain}.${pod.namespace}.svc.${spec.clusterDomain}`;
      break;
    }
  }
  const node = `${spec.basename}@${host}`;
  const parsed = parseNodeName(node);
  if (!parsed.ok) return { ok: false, reason: 'InvalidNodeName', message: `pod ${pod.name}: "${node.slice(0, 80)}" is not a valid node name (${parsed.problem})` };
  return { ok: true, node, host };
}

/**
 * Whether a selected pod should be announced now (before naming): Ready, or with publishNotReadyPods any pod.
 * A pod with our readiness gate cannot be Ready before it is published (the gate waits for that), so for it
 * "its containers are ready" (ContainersReady True) stands in for Ready: it is announced, then published,
 * then the gate flips, then the kubelet marks it Ready (docs/readiness-gate.md, "Rollouts paced by discovery").
 */
export function isEligible(pod: PodView, publishNotReadyPods: boolean): boolean {
  if (pod.deleting || pod.terminated) return false; // a pod on its way out is never announced
  return pod.ready || (pod.gated && pod.containersReady) || publishNotReadyPods;
}
