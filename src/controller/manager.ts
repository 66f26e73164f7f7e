// Wires the caches, the work queue, the Postgres endpoints and the reconciler together.
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { KubeClient, KubeObject } from '../kube/client.ts';
import { Informer, Store, objectKey, stripManagedFields } from '../kube/informer.ts';
import { WatchSet } from '../kube/watchSet.ts';
import { paths, type ConfigMapObject, type EndpointSliceObject, type EventInput, type PgClusterObject, type ServiceObject } from '../kube/resources.ts';
import { SLICE_MANAGED_BY, SLICE_MANAGED_BY_LABEL } from './plan/dns.ts';
import { slimPod, type PodObject } from '../kube/pods.ts';
import { matchesSelector } from '../core/selector.ts';
import { onlyOwnAnnotationsChanged, ownedKeys } from '../core/ownership.ts';
import { CLUSTER_KEY, MANAGED_BY, MANAGED_BY_LABEL, outputNames, podWatches } from '../core/spec.ts';
import { systemClock, type Clock } from '../core/clock.ts';
import { getSecret } from '../kube/resources.ts';
import type { PgEndpoint } from '../postgres/endpoint.ts';
import { WRITE_CONCURRENCY, recordEvent } from './write/apply.ts';
import { fencedWriter, kubeWriter } from './write/writer.ts';
import { WriteMemo } from './write/writeMemo.ts';
import { Semaphore } from '../core/limit.ts';
import { splitKey } from '../core/key.ts';
import type { Context } from './context.ts';
import { EndpointPool } from './endpointPool.ts';
import { errorPolicy } from './errorPolicy.ts';
import { reconcile } from './reconcile.ts';
import { queueFilling } from '../core/notifyQueue.ts';
import { RuntimeRegistry } from './runtime/registry.ts';
import { podFanOut } from './steps/apply.ts';
import { SecretSource } from './secrets.ts';
import { WorkQueue } from './workqueue.ts';

export interface ManagerOptions {
  kube: KubeClient;
  log: Logger;
  metrics: Metrics;
  /** Namespaces to watch; undefined = all. */
  namespaces: string[] | undefined;
  identity: string;
  workers?: number;
  clock?: Clock;
}

interface Stores {
  pgclusters: Store<PgClusterObject>;
  /** Only the pods some PgCluster selects or the operator wrote on (kube/watchSet.ts): per namespace, per selector. */
  pods: WatchSet<PodObject>;
  configMaps: Store<ConfigMapObject>;
  services: Store<ServiceObject>;
  endpointSlices: Store<EndpointSliceObject>;
}

export class Manager {
  readonly ctx: Context;
  #stores: Stores;
  #queue: WorkQueue;
  #workers: number;
  #pool: EndpointPool;
  #running: Promise<void> | undefined;
  /** False once this replica must not write to Kubernetes any more (stopping, or it lost its Lease). */
  #mayWrite = true;

  constructor(opts: ManagerOptions) {
    const { kube, log, metrics } = opts;
    const clock = opts.clock ?? systemClock;
    const scopes = opts.namespaces ?? [undefined];
    const informers = <T extends KubeObject>(path: (ns?: string) => string, extra: { labelSelector?: string; resyncMs?: number; transform?: (o: KubeObject) => KubeObject } = {}) =>
      new Store<T>(scopes.map((ns) => new Informer<T>(kube, { path: path(ns), log, ...extra })));
    const queue = new WorkQueue({ hooks: metrics.queueHooks(), clock });
    this.#queue = queue;
    const pool = new EndpointPool(
      log,
      (id) => {
        let received: { inc(): void } | undefined;
        return {
          onCommit: (names) => {
            metrics.notifyCommits.inc({ endpoint: id() });
            metrics.notificationsSent.inc({ endpoint: id() }, names);
          },
          // Once per notification (10,000 per heartbeat at 10,000 pods): the labelled child, looked up once.
          onPayload: () => (received ??= metrics.notificationsReceived.labels({ endpoint: id() })).inc(),
          onEcho: (ms) => metrics.heartbeatRtt.observe({ endpoint: id() }, ms / 1000),
          onReconnect: (which) => metrics.postgresReconnects.inc({ endpoint: id(), connection: which }),
          onQueueUsage: (usage) => this.#queueUsage(id(), usage),
        };
      },
      (ep) => this.#watchEndpoint(ep),
      opts.identity,
    );
    this.#stores = {
      pgclusters: informers<PgClusterObject>(paths.pgclusters, { resyncMs: 600_000 }),
      pods: new WatchSet<PodObject>(kube, { path: (ns) => paths.pods(ns), transform: (o) => slimPod(o as PodObject), log }),
      configMaps: informers<ConfigMapObject>(paths.configMaps, { labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY}` }),
      // The DNS output's objects: ours only, by label (a cluster's other Services and slices are not cached).
      services: informers<ServiceObject>(paths.services, { labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY}` }),
      endpointSlices: informers<EndpointSliceObject>(paths.endpointSlices, { labelSelector: `${SLICE_MANAGED_BY_LABEL}=${SLICE_MANAGED_BY}` }),
    };
    metrics.podCache = () => ({ pods: this.#stores.pods.size, watches: this.#stores.pods.watchCount });
    this.#pool = pool;
    this.ctx = {
      env: { identity: opts.identity, clock, log, metrics },
      caches: this.#stores,
      writes: {
        writer: fencedWriter(kubeWriter(kube, opts.identity, clock), () => this.#mayWrite),
        memo: new WriteMemo(clock, (o) => (o.kind === 'Pod' ? slimPod(o as PodObject) : stripManagedFields(o))),
        podWrites: new Semaphore(WRITE_CONCURRENCY),
      },
      runtimes: new RuntimeRegistry(pool, (key) => podFanOut(this.ctx, key)),
      secrets: new SecretSource((ns, name) => getSecret(kube, ns, name), clock),
      queue,
    };
    this.#workers = opts.workers ?? 4;
  }

  /** The server's notification queue: a gauge, and an Event on each PgCluster of the endpoint when it starts or stops filling. */
  #queueUsage(endpoint: string, usage: number): void {
    const { env: { metrics, log }, runtimes, caches: { pgclusters } } = this.ctx;
    metrics.notifyQueueUsage.set({ endpoint }, usage);
    const was = this.#queueFilling.has(endpoint);
    const now = queueFilling(was, usage);
    if (now === was) return;
    if (now) this.#queueFilling.add(endpoint);
    else this.#queueFilling.delete(endpoint);
    const percent = (usage * 100).toFixed(1);
    const ev: EventInput = now
      ? { type: 'Warning', reason: 'NotifyQueueFilling', message: `the Postgres server's notification queue is ${percent} % full: a session somewhere on that server LISTENs and does not read (a long transaction, a stuck client). When it is full, every NOTIFY on the server fails at commit, this operator's heartbeats and the applications' own. Find it: SELECT pid, application_name, state, xact_start FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' ORDER BY xact_start` }
      : { type: 'Normal', reason: 'NotifyQueueDrained', message: `the Postgres server's notification queue is back to ${percent} % full` };
    log.warn({ endpoint, usage }, now ? 'the Postgres notification queue is filling' : 'the Postgres notification queue drained');
    for (const rt of runtimes.attachedTo(endpoint)) {
      const [ns, name] = splitKey(rt.key);
      const pc = pgclusters.get(ns, name);
      if (pc) recordEvent({ writer: this.ctx.writes.writer, log }, pc, ev);
    }
  }
  #queueFilling = new Set<string>();

  #watchEndpoint(ep: PgEndpoint): void {
    const { env: { metrics, log }, runtimes, queue } = this.ctx;
    ep.onState((s) => {
      metrics.postgresConnected.set({ endpoint: ep.id }, s.phase === 'Listening' ? 1 : 0);
      log.info({ endpoint: ep.id, phase: s.phase, reason: 'reason' in s ? s.reason : undefined }, 'postgres endpoint state');
      for (const rt of runtimes.attachedTo(ep)) queue.add(rt.key);
    });
  }

  /** Starts the caches, waits for them to fill, then runs the workers. */
  async start(): Promise<void> {
    await this.startCaches();
    this.runWorkers();
  }

  /** Fills the caches; a standby replica does this too, so that it is ready to take over at once. */
  async startCaches(): Promise<void> {
    const { pgclusters, pods, configMaps, services, endpointSlices } = this.#stores;
    const { queue, env: { log } } = this.ctx;
    // The pod watches follow the PgClusters (before the reconcile the event queues: it finds them started).
    const watchPods = () => pods.set(podWatches(pgclusters.all()));
    pgclusters.on((event, pc, old) => {
      // Only a PgCluster that comes, goes or changes its selector changes the watches (status writes do not).
      const selectorChanged = event === 'add' || event === 'delete' || (event === 'update' && JSON.stringify(old?.spec?.selector) !== JSON.stringify(pc.spec?.selector));
      if (selectorChanged) watchPods();
      queue.add(objectKey(pc));
    });
    pods.onSynced((ns) => {
      for (const pc of pgclusters.inNamespace(ns)) queue.add(objectKey(pc));
    });
    configMaps.on((_e, cm) => {
      const ns = cm.metadata.namespace ?? '';
      const owner = cm.metadata.labels?.[CLUSTER_KEY];
      if (owner) queue.add(`${ns}/${owner}`);
      // A PgCluster whose output name this ConfigMap holds (e.g. one in conflict, now deleted) looks again.
      for (const pc of pgclusters.inNamespace(ns)) if (pc.metadata.name !== owner && outputNames(pc).configMapName === cm.metadata.name) queue.add(objectKey(pc));
    });
    pods.on((_e, pod, old) => this.#enqueueForPod(pod, old));
    for (const s of [services, endpointSlices]) {
      s.on((_e, o) => {
        const owner = o.metadata.labels?.[CLUSTER_KEY];
        if (owner && o.metadata.namespace) queue.add(`${o.metadata.namespace}/${owner}`);
      });
    }
    const all = [pgclusters, configMaps, services, endpointSlices];
    for (const s of all) s.start();
    await Promise.all(all.map((s) => s.waitForSync()));
    watchPods();
    await pods.waitForSync();
    log.info({ pgclusters: [...pgclusters.all()].length, pods: pods.size, podWatches: pods.watchCount }, 'caches synced');
  }

  /** Reconciles (and so heartbeats): only the leader does this. */
  runWorkers(): void {
    const { pgclusters } = this.#stores;
    const queue = this.#queue;
    this.ctx.env.log.info('reconciling');
    for (const pc of pgclusters.all()) queue.add(objectKey(pc));
    this.#running = queue.run(this.#workers, async (key) => {
      const end = this.ctx.env.metrics.reconcileTime.startTimer({ controller: 'pgcluster' });
      try {
        const r = await reconcile(this.ctx, key);
        this.ctx.env.metrics.reconcileTotal.inc({ controller: 'pgcluster', result: r.requeueAfterMs !== undefined ? 'requeue_after' : 'success' });
        return r;
      } catch (err) {
        this.ctx.env.metrics.reconcileTotal.inc({ controller: 'pgcluster', result: 'error' });
        throw err;
      } finally {
        end();
      }
    }, (key, err, retryInMs) => errorPolicy(this.ctx.env, key, err, retryInMs));
  }

  get synced(): boolean {
    const { pgclusters, pods, configMaps, services, endpointSlices } = this.#stores;
    return pods.allSynced && [pgclusters, configMaps, services, endpointSlices].every((s) => s.informers.every((i) => i.hasSynced));
  }

  /**
   * A pod event concerns every PgCluster of its namespace that selects it now, selected it before, or annotated
   * it — except an update that is only that PgCluster's own annotation write coming back.
   */
  #enqueueForPod(pod: PodObject, old: PodObject | undefined): void {
    const ns = pod.metadata.namespace ?? '';
    const sameButAnnotations = old !== undefined && sameExceptAnnotations(old, pod);
    for (const pc of this.ctx.caches.pgclusters.inNamespace(ns)) {
      if (sameButAnnotations && onlyOwnAnnotationsChanged(old?.metadata.annotations ?? {}, pod.metadata.annotations ?? {}, pc.metadata.name)) continue;
      const sel = pc.spec?.selector;
      const concerned =
        (sel && (matchesSelector(pod.metadata.labels ?? {}, sel) || (old && matchesSelector(old.metadata.labels ?? {}, sel)))) ||
        ownedKeys(pod.metadata.annotations ?? {}, pc.metadata.name, pc.status?.podAnnotation).length > 0;
      if (concerned) this.ctx.queue.add(objectKey(pc));
    }
  }

  /**
   * A graceful stop (docs/architecture.md, "Shutdown and leadership"): heartbeats off at once, reconciles in
   * flight finish, then no more Kubernetes writes and the Postgres connections end (a NOTIFY in flight has
   * committed or failed when its connection is closed); only then `handOver` (the caller releases the Lease,
   * so a standby takes over at once, and can never overlap with this replica); then the caches stop.
   */
  async stop(handOver: () => Promise<void> = async () => {}): Promise<void> {
    this.#queue.shutDown();
    this.ctx.runtimes.silence();
    await this.#running;
    this.ctx.runtimes.silence(); // a reconcile that was in flight may have announced again
    this.#mayWrite = false;
    await this.#pool.closeAll();
    await handOver();
    for (const s of Object.values(this.#stores)) s.stop();
  }

  /**
   * The Lease is lost: stop all work at once, without waiting for reconciles in flight (their writes are
   * refused from now on), and end the Postgres connections. The caller then exits.
   */
  async abandon(): Promise<void> {
    this.#mayWrite = false;
    this.#queue.shutDown();
    this.ctx.runtimes.silence();
    await this.#pool.closeAll();
  }
}

/** Two cached (slimmed) copies of a pod that differ in their annotations at most. */
function sameExceptAnnotations(a: PodObject, b: PodObject): boolean {
  const rest = (p: PodObject) => JSON.stringify([p.metadata.labels, p.metadata.deletionTimestamp, p.spec, p.status]);
  return rest(a) === rest(b);
}
