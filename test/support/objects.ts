// The objects tests, the demo and the benchmark create: a pod bound to a node (the test's fake one, kwok's, or
// the BenchKubelet's), a Secret, a PgCluster. One way to write each.
import { API_GROUP, API_VERSION } from '../../src/core/spec.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import { paths } from '../../src/kube/resources.ts';

export interface PodInput {
  name: string;
  /** The node it is bound to (no scheduler runs). */
  node: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  hostname?: string;
  subdomain?: string;
  image?: string;
  gracePeriodSeconds?: number;
  /** Condition types of spec.readinessGates (e.g. READINESS_GATE). */
  readinessGates?: string[];
}

export function podManifest(p: PodInput) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: p.name, labels: p.labels ?? {}, annotations: p.annotations ?? {} },
    spec: {
      nodeName: p.node,
      hostname: p.hostname,
      subdomain: p.subdomain,
      containers: [{ name: 'app', image: p.image ?? 'example.invalid/app:1' }],
      terminationGracePeriodSeconds: p.gracePeriodSeconds ?? 0,
      ...(p.readinessGates ? { readinessGates: p.readinessGates.map((conditionType) => ({ conditionType })) } : {}),
      // kwok's nodes may be tainted: these pods go nowhere real either way.
      tolerations: [{ key: 'kwok.x-k8s.io/node', operator: 'Exists', effect: 'NoSchedule' }],
    },
  };
}

export async function createPodObject(kube: KubeClient, ns: string, p: PodInput): Promise<void> {
  await kube.create(paths.pods(ns), podManifest(p), 'pods');
}

export async function createSecret(kube: KubeClient, ns: string, name: string, data: Record<string, string>): Promise<void> {
  await kube.create(paths.secrets(ns), { apiVersion: 'v1', kind: 'Secret', metadata: { name }, stringData: data }, 'secrets');
}

export async function createPgCluster(kube: KubeClient, ns: string, name: string, spec: Record<string, unknown>): Promise<void> {
  await kube.create(paths.pgclusters(ns), { apiVersion: `${API_GROUP}/${API_VERSION}`, kind: 'PgCluster', metadata: { name }, spec }, 'pgclusters');
}
