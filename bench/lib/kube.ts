// Kubernetes objects the benchmark creates: namespaces, Secrets, PgClusters, and pods bound to the kwok node
// (kwok makes them Running and Ready with an IP, as a kubelet would).
import type { KubeClient } from '../../src/kube/client.ts';
import { KubeApiError } from '../../src/kube/client.ts';
import { pool, randomSuffix } from './util.ts';

const PC_PATH = (ns: string) => `/apis/pgcluster.io/v1alpha1/namespaces/${ns}/pgclusters`;

export async function createNamespace(kube: KubeClient, prefix: string): Promise<string> {
  const name = `bench-${prefix}-${randomSuffix()}`;
  await kube.create('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { 'pgcluster-bench': 'true' } } }, 'namespaces');
  return name;
}

export async function createSecret(kube: KubeClient, ns: string, name: string, url: string): Promise<void> {
  await kube.create(`/api/v1/namespaces/${ns}/secrets`, { apiVersion: 'v1', kind: 'Secret', metadata: { name }, stringData: { url } }, 'secrets');
}

export interface PgClusterSpec {
  app: string;
  secret: string;
  channel: string;
  heartbeatInterval?: string;
  peerTimeout?: string;
}

export async function createPgCluster(kube: KubeClient, ns: string, name: string, s: PgClusterSpec): Promise<void> {
  await kube.create(PC_PATH(ns), {
    apiVersion: 'pgcluster.io/v1alpha1', kind: 'PgCluster', metadata: { name },
    spec: {
      selector: { matchLabels: { app: s.app } },
      postgres: { urlSecretRef: { name: s.secret } },
      channel: s.channel,
      ...(s.heartbeatInterval ? { heartbeatInterval: s.heartbeatInterval } : {}),
      ...(s.peerTimeout ? { peerTimeout: s.peerTimeout } : {}),
    },
  }, 'pgclusters');
}

export async function createPod(kube: KubeClient, ns: string, name: string, labels: Record<string, string>, node: string): Promise<void> {
  await kube.create(`/api/v1/namespaces/${ns}/pods`, {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name, labels },
    spec: {
      nodeName: node,
      containers: [{ name: 'app', image: 'example.invalid/app:1' }],
      terminationGracePeriodSeconds: 1,
      // kwok's node carries no taints, but be explicit that these go nowhere real.
      tolerations: [{ key: 'kwok.x-k8s.io/node', operator: 'Exists', effect: 'NoSchedule' }],
    },
  }, 'pods');
}

export async function createPods(kube: KubeClient, ns: string, names: string[], labelsOf: (name: string) => Record<string, string>, node: string, concurrency = 16): Promise<void> {
  await pool(names, concurrency, (n) => createPod(kube, ns, n, labelsOf(n), node));
}

/** A graceful delete, as a Deployment's scale-down does; kwok finishes it. */
export async function deletePod(kube: KubeClient, ns: string, name: string): Promise<void> {
  await kube.delete(`/api/v1/namespaces/${ns}/pods/${name}`, 'pods');
}

/**
 * Leaves as little behind as a stack without kube-controller-manager allows (namespaces stay Terminating
 * there): every pod removed at once, PgClusters released from the finalizer and deleted, ConfigMaps deleted.
 * Call after the operator stopped.
 */
export async function cleanupNamespace(kube: KubeClient, ns: string): Promise<void> {
  const ignore404 = (e: unknown) => { if (!(e instanceof KubeApiError && e.status === 404)) throw e; };
  await kube.request('DELETE', `/api/v1/namespaces/${ns}/pods`, { body: { gracePeriodSeconds: 0 } }).catch(ignore404);
  const pcs = await kube.list<{ metadata: { name: string; finalizers?: string[] } }>(PC_PATH(ns)).catch(() => ({ items: [] }));
  await pool(pcs.items.filter((p) => p.metadata.finalizers?.length), 16, (p) =>
    kube.patch(`${PC_PATH(ns)}/${p.metadata.name}`, { metadata: { finalizers: null } }, 'pgclusters').catch(ignore404));
  await kube.request('DELETE', PC_PATH(ns)).catch(ignore404);
  await kube.request('DELETE', `/api/v1/namespaces/${ns}/configmaps`).catch(ignore404);
  await kube.delete(`/api/v1/namespaces/${ns}`, 'namespaces').catch(() => {});
}
