// Playing kubelet where none runs (the e2e tests' pods, the benchmark's BenchKubelet): the pod's status as a
// kubelet reports it, through the pods/status subresource.
import type { KubeClient } from '../../src/kube/client.ts';
import { paths } from '../../src/kube/resources.ts';

export interface PodStatusReport {
  ip?: string | undefined;
  ready: boolean;
  /** ContainersReady (default: as `ready`); a pod with readiness gates is Ready only when they are True too. */
  containersReady?: boolean;
  /** The node's address, as a kubelet reports it (optional). */
  hostIP?: string;
}

/** Reports the pod Running, Ready or not, with its IP (strategic merge: conditions merge by type). */
export async function reportPodStatus(kube: KubeClient, ns: string, name: string, s: PodStatusReport): Promise<void> {
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const cond = (type: string, ok: boolean) => ({ type, status: ok ? 'True' : 'False', lastTransitionTime: now });
  await kube.patch(paths.podStatus(ns, name), {
    status: {
      phase: 'Running',
      podIP: s.ip,
      podIPs: s.ip ? [{ ip: s.ip }] : undefined,
      ...(s.hostIP ? { hostIP: s.hostIP, startTime: now } : {}),
      conditions: [cond('PodScheduled', true), cond('Initialized', true), cond('ContainersReady', s.containersReady ?? s.ready), cond('Ready', s.ready)],
    },
  }, 'pods/status', 'strategic');
}
