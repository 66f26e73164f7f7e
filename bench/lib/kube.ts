// Kubernetes objects the benchmark creates: namespaces, Secrets, PgClusters, and pods bound to the kwok node
// (kwok makes them Running and Ready with an IP, as a kubelet would) or to the BenchKubelet's.
import type { KubeClient } from '../../src/kube/client.ts';
import { isNotFound } from '../../src/kube/client.ts';
import { reportPodStatus } from '../../test/support/kubelet.ts';
import { createPgCluster as createPgClusterObject, createPodObject, createSecret as createSecretObject } from '../../test/support/objects.ts';
import { pool, randomSuffix } from './util.ts';
import { paths } from '../../src/kube/resources.ts';

export async function createNamespace(kube: KubeClient, prefix: string): Promise<string> {
  const name = `bench-${prefix}-${randomSuffix()}`;
  await kube.create(paths.namespaces(), { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { 'pgcluster-bench': 'true' } } }, 'namespaces');
  return name;
}

export function createSecret(kube: KubeClient, ns: string, name: string, url: string): Promise<void> {
  return createSecretObject(kube, ns, name, { url });
}

export interface PgClusterSpec {
  app: string;
  secret: string;
  channel: string;
  heartbeatInterval?: string;
  peerTimeout?: string;
  /** spec.output.annotationMinInterval */
  annotationMinInterval?: string;
  /** spec.output.podAnnotationFormat */
  podAnnotationFormat?: 'list' | 'version';
}

export function createPgCluster(kube: KubeClient, ns: string, name: string, s: PgClusterSpec): Promise<void> {
  return createPgClusterObject(kube, ns, name, {
    selector: { matchLabels: { app: s.app } },
    postgres: { urlSecretRef: { name: s.secret } },
    channel: s.channel,
    ...(s.heartbeatInterval ? { heartbeatInterval: s.heartbeatInterval } : {}),
    ...(s.peerTimeout ? { peerTimeout: s.peerTimeout } : {}),
    ...(s.annotationMinInterval || s.podAnnotationFormat ? { output: { ...(s.annotationMinInterval ? { annotationMinInterval: s.annotationMinInterval } : {}), ...(s.podAnnotationFormat ? { podAnnotationFormat: s.podAnnotationFormat } : {}) } } : {}),
  });
}

export function createPod(kube: KubeClient, ns: string, name: string, labels: Record<string, string>, node: string): Promise<void> {
  return createPodObject(kube, ns, { name, labels, node, gracePeriodSeconds: 1 });
}

export async function createPods(kube: KubeClient, ns: string, names: string[], labelsOf: (name: string) => Record<string, string>, node: string, concurrency = 16): Promise<void> {
  await pool(names, concurrency, (n) => createPod(kube, ns, n, labelsOf(n), node));
}

/** A graceful delete, as a Deployment's scale-down does; kwok (or benchKubelet) finishes it. */
export async function deletePod(kube: KubeClient, ns: string, name: string): Promise<void> {
  await kube.delete(paths.pod(ns, name), 'pods');
}

/**
 * The bench playing kubelet (a mock: there is no kubelet here) for the scenarios that time single joins.
 * kwok cannot serve there: its pod-ready stage matches pods without an IP, so when the pending pod changes
 * before kwok's status write lands — the operator annotating it does exactly that — kwok applies the stage a
 * second time and gives the pod another IP, turning one join into two. This kubelet starts a pod as a real
 * one does (the pod is created Pending, then its status says Running and Ready with an address that is never
 * reused) and finishes a graceful delete after the grace period.
 */
export class BenchKubelet {
  static readonly NODE = 'bench-kubelet-0';
  #kube: KubeClient;
  #next = 0;
  #finishing = new Set<Promise<void>>();

  constructor(kube: KubeClient) {
    this.#kube = kube;
  }

  /** Creates the pod bound to this kubelet's node and reports it Running and Ready. */
  async start(ns: string, name: string, labels: Record<string, string>): Promise<void> {
    await createPod(this.#kube, ns, name, labels, BenchKubelet.NODE);
    const i = this.#next++;
    const ip = `10.250.${Math.floor(i / 250) % 250}.${(i % 250) + 1}`;
    await reportPodStatus(this.#kube, ns, name, { ip, ready: true, hostIP: '10.240.0.20' });
  }

  /** The graceful delete a Deployment issues; the pod is removed after its grace period, as a kubelet does. */
  async stop(ns: string, name: string): Promise<void> {
    await deletePod(this.#kube, ns, name);
    const done: Promise<void> = new Promise<void>((r) => setTimeout(r, 1000)).then(async () => {
      await this.#kube.request('DELETE', paths.pod(ns, name), { body: { gracePeriodSeconds: 0 } }).catch(() => {});
    }).finally(() => this.#finishing.delete(done));
    this.#finishing.add(done);
  }

  /** Waits for every pending removal. */
  async drain(): Promise<void> {
    await Promise.all([...this.#finishing]);
  }
}

/**
 * Leaves as little behind as a stack without kube-controller-manager allows (namespaces stay Terminating
 * there): every pod removed at once, PgClusters released from the finalizer and deleted, ConfigMaps deleted.
 * Call after the operator stopped.
 */
export async function cleanupNamespace(kube: KubeClient, ns: string): Promise<void> {
  const ignore404 = (e: unknown) => { if (!isNotFound(e)) throw e; };
  await kube.request('DELETE', paths.pods(ns), { body: { gracePeriodSeconds: 0 } }).catch(ignore404);
  const pcs = await kube.list<{ metadata: { name: string; finalizers?: string[] } }>(paths.pgclusters(ns)).catch(() => ({ items: [] }));
  await pool(pcs.items.filter((p) => p.metadata.finalizers?.length), 16, (p) =>
    kube.patch(paths.pgcluster(ns, p.metadata.name), { metadata: { finalizers: null } }, 'pgclusters').catch(ignore404));
  await kube.request('DELETE', paths.pgclusters(ns)).catch(ignore404);
  await kube.request('DELETE', paths.configMaps(ns)).catch(ignore404);
  await kube.delete(paths.namespace(ns), 'namespaces').catch(() => {});
}
