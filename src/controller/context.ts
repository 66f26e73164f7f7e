// What every reconcile needs, in one place (kube-rs controller-rs's Context).
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { KubeClient, KubeObject } from '../kube/client.ts';
import type { Store } from '../kube/informer.ts';
import type { ConfigMapObject, PgClusterObject } from '../kube/resources.ts';
import type { PodObject } from '../kube/pods.ts';
import type { WorkQueue } from './workqueue.ts';
import type { EndpointPool } from './endpointPool.ts';
import type { ClusterRuntime } from './runtime.ts';

export interface Context {
  kube: KubeClient;
  log: Logger;
  metrics: Metrics;
  pgclusters: Store<PgClusterObject>;
  pods: Store<PodObject>;
  configMaps: Store<ConfigMapObject>;
  pool: EndpointPool;
  runtimes: Map<string, ClusterRuntime>;
  queue: WorkQueue;
  /** Writes whose watch event has not arrived yet (see WriteMemo). */
  written: WriteMemo;
  /** This process, for Events' reportingInstance. */
  identity: string;
  now: () => number;
}

/**
 * Remembers what we wrote until the informer catches up, so that a reconcile running before the watch
 * event arrives compares against our write rather than the stale cache, and does not write again.
 */
export class WriteMemo {
  #memo = new Map<string, { staleVersion: string | undefined; obj: unknown; at: number }>();
  #slim: (o: KubeObject) => KubeObject;
  #lastSweep = Date.now();

  /** `slim` keeps only what the cache would (a PATCH answers with the whole object). */
  constructor(slim: (o: KubeObject) => KubeObject = (o) => o) {
    this.#slim = slim;
  }

  record(key: string, before: KubeObject | undefined, written: unknown): void {
    const now = Date.now();
    const obj = written && typeof written === 'object' && 'metadata' in written ? this.#slim(written as KubeObject) : written;
    this.#memo.set(key, { staleVersion: before?.metadata.resourceVersion, obj, at: now });
    // Entries nobody looks at again (a pod deleted right after we patched it) must not pile up.
    if (now - this.#lastSweep > 60_000) {
      this.#lastSweep = now;
      for (const [k, m] of this.#memo) if (now - m.at > 60_000) this.#memo.delete(k);
    }
  }

  observe<T extends KubeObject>(key: string, cached: T | undefined): T | undefined {
    const m = this.#memo.get(key);
    if (!m) return cached;
    if (cached?.metadata.resourceVersion === m.staleVersion) return m.obj as T;
    this.#memo.delete(key); // the cache has moved past our write
    return cached;
  }

  forget(key: string): void {
    this.#memo.delete(key);
  }
}
