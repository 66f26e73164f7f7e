// What every reconcile needs, in one place (kube-rs controller-rs's Context).
import type { Clock } from '../core/clock.ts';
import type { Semaphore } from '../core/limit.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { KubeObject } from '../kube/client.ts';
import type { ConfigMapObject, EndpointSliceObject, PgClusterObject, ServiceObject } from '../kube/resources.ts';
import type { PodObject } from '../kube/pods.ts';
import type { Writer } from './apply.ts';
import type { EndpointPool } from './endpointPool.ts';
import type { ClusterRuntime } from './runtime.ts';
import type { SecretSource } from './secrets.ts';
import type { WorkQueue } from './workqueue.ts';

/** The read side of an informer cache (kube/informer.ts's Store), as reconcile sees it. */
export interface Cache<T> {
  get(ns: string, name: string): T | undefined;
  inNamespace(ns: string): Iterable<T>;
}

export interface Context {
  /** This operator's identity (its pod name): the sender of its side-channel messages. */
  identity: string;
  log: Logger;
  metrics: Metrics;
  pgclusters: Cache<PgClusterObject>;
  /** Only selected pods and pods written on (kube/watchSet.ts); `synced` says when a PgCluster's watches have filled. */
  pods: Cache<PodObject> & { synced(ns: string, selectors: readonly string[]): boolean };
  configMaps: Cache<ConfigMapObject>;
  /** Ours only (labelled): the DNS output's Services and EndpointSlices. */
  services: Cache<ServiceObject>;
  endpointSlices: Cache<EndpointSliceObject>;
  writer: Writer;
  secrets: SecretSource;
  pool: EndpointPool;
  runtimes: Map<string, ClusterRuntime>;
  queue: Pick<WorkQueue, 'add' | 'addAfter'>;
  /**
   * Every PgCluster's annotation PATCHes share it (WRITE_CONCURRENCY in flight in all): 1,000 fan-outs at once
   * would otherwise put tens of thousands of requests on the API server together.
   */
  podWrites: Semaphore;
  /** Writes whose watch event has not arrived yet (see WriteMemo). */
  written: WriteMemo;
  clock: Clock;
}

/** A work-queue key, `<namespace>/<name>`, as its two parts. */
export function splitKey(key: string): [string, string] {
  const i = key.indexOf('/');
  return [key.slice(0, i), key.slice(i + 1)];
}

/** Memo entries older than this are dropped (a pod deleted right after we patched it is never observed). */
const MEMO_MAX_AGE_MS = 60_000;

/**
 * Remembers what we wrote until the informer catches up, so that a reconcile running before the watch
 * event arrives compares against our write rather than the stale cache, and does not write again.
 */
export class WriteMemo {
  #memo = new Map<string, { staleVersion: string | undefined; obj: unknown; at: number }>();
  #slim: (o: KubeObject) => KubeObject;
  #clock: Clock;
  #lastSweep: number;

  /** `slim` keeps only what the cache would (a PATCH answers with the whole object). */
  constructor(clock: Clock, slim: (o: KubeObject) => KubeObject = (o) => o) {
    this.#clock = clock;
    this.#slim = slim;
    this.#lastSweep = clock.monotonic();
  }

  record(key: string, before: KubeObject | undefined, written: unknown): void {
    const now = this.#clock.monotonic();
    const obj = written && typeof written === 'object' && 'metadata' in written ? this.#slim(written as KubeObject) : written;
    this.#memo.set(key, { staleVersion: before?.metadata.resourceVersion, obj, at: now });
    if (now - this.#lastSweep > MEMO_MAX_AGE_MS) {
      this.#lastSweep = now;
      for (const [k, m] of this.#memo) if (now - m.at > MEMO_MAX_AGE_MS) this.#memo.delete(k);
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

  get size(): number {
    return this.#memo.size;
  }
}
