// What reconciles share (kube-rs controller-rs's Context), in groups; each step takes the groups it needs.
import type { Clock } from '../core/clock.ts';
import type { Semaphore } from '../core/limit.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { ConfigMapObject, EndpointSliceObject, PgClusterObject, ServiceObject } from '../kube/resources.ts';
import type { PodObject } from '../kube/pods.ts';
import type { RuntimeRegistry } from './runtime/registry.ts';
import type { SecretSource } from './secrets.ts';
import type { WorkQueue } from './workqueue.ts';
import type { Writer } from './write/writer.ts';
import type { WriteMemo } from './write/writeMemo.ts';

/** The read side of an informer cache (kube/informer.ts's Store), as reconcile sees it. */
export interface Cache<T> {
  get(ns: string, name: string): T | undefined;
  inNamespace(ns: string): Iterable<T>;
}

/** This replica: who it is, its clock, its log and metrics. */
export interface Env {
  /** This operator's identity (its pod name): the sender of its side-channel messages. */
  identity: string;
  clock: Clock;
  log: Logger;
  metrics: Metrics;
}

/** What the informers hold. */
export interface Caches {
  pgclusters: Cache<PgClusterObject>;
  /** Only selected pods and pods written on (kube/watchSet.ts); `synced` says when a PgCluster's watches have filled. */
  pods: Cache<PodObject> & { synced(ns: string, selectors: readonly string[]): boolean };
  /** Ours only (labelled), as the outputs' Services and EndpointSlices. */
  configMaps: Cache<ConfigMapObject>;
  services: Cache<ServiceObject>;
  endpointSlices: Cache<EndpointSliceObject>;
}

/** How writes go out. */
export interface Writes {
  writer: Writer;
  /** Writes whose watch event has not arrived yet (see WriteMemo). */
  memo: WriteMemo;
  /**
   * Every PgCluster's annotation PATCHes share it (WRITE_CONCURRENCY in flight in all): 1,000 fan-outs at once
   * would otherwise put tens of thousands of requests on the API server together.
   */
  podWrites: Semaphore;
}

export interface Context {
  env: Env;
  caches: Caches;
  writes: Writes;
  /** The PgClusters' in-memory side: peer tables, endpoint attachments, pacing, fan-outs. */
  runtimes: RuntimeRegistry;
  /** Secret lookups: the Postgres URL, the side-channel keys. */
  secrets: SecretSource;
  queue: Pick<WorkQueue, 'add' | 'addAfter'>;
}
