// Wires the caches, the work queue, the Postgres endpoints and the reconciler together.
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { KubeClient, KubeObject } from '../kube/client.ts';
import { Informer, Store, objectKey, stripManagedFields } from '../kube/informer.ts';
import { paths, type ConfigMapObject, type PgClusterObject } from '../kube/resources.ts';
import { slimPod, type PodObject } from '../kube/pods.ts';
import { matchesSelector } from '../core/selector.ts';
import { CLUSTER_KEY, MANAGED_BY, MANAGED_BY_LABEL } from '../core/spec.ts';
import { systemClock, type Clock } from '../core/clock.ts';
import { UserError } from '../errors.ts';
import { getSecret } from '../kube/resources.ts';
import type { PgEndpoint } from '../postgres/endpoint.ts';
import { kubeWriter } from './apply.ts';
import { WriteMemo, type Context } from './context.ts';
import { EndpointPool } from './endpointPool.ts';
import { errorPolicy, reportUserError } from './errorPolicy.ts';
import { RESYNC_MS, reconcile, type ReconcileResult } from './reconcile.ts';
import type { ClusterRuntime } from './runtime.ts';
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
  pods: Store<PodObject>;
  configMaps: Store<ConfigMapObject>;
}

export class Manager {
  readonly ctx: Context;
  #stores: Stores;
  #queue: WorkQueue;
  #workers: number;
  #running: Promise<void> | undefined;

  constructor(opts: ManagerOptions) {
    const { kube, log, metrics } = opts;
    const clock = opts.clock ?? systemClock;
    const scopes = opts.namespaces ?? [undefined];
    const informers = <T extends PgClusterObject | PodObject | ConfigMapObject>(path: (ns?: string) => string, extra: { labelSelector?: string; resyncMs?: number; transform?: (o: KubeObject) => KubeObject } = {}) =>
      new Store<T>(scopes.map((ns) => new Informer<T>(kube, { path: path(ns), log, ...extra })));
    const queue = new WorkQueue({ hooks: metrics.queueHooks(), clock });
    this.#queue = queue;
    const runtimes = new Map<string, ClusterRuntime>();
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
        };
      },
      (ep) => this.#watchEndpoint(ep),
    );
    this.#stores = {
      pgclusters: informers<PgClusterObject>(paths.pgclusters, { resyncMs: 600_000 }),
      pods: informers<PodObject>(paths.pods, { transform: (o) => slimPod(o as PodObject) }),
      configMaps: informers<ConfigMapObject>(paths.configMaps, { labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY}` }),
    };
    this.ctx = {
      log, metrics, queue, runtimes, pool, clock,
      ...this.#stores,
      writer: kubeWriter(kube, opts.identity, clock),
      secrets: new SecretSource((ns, name) => getSecret(kube, ns, name), clock),
      written: new WriteMemo(clock, (o) => (o.kind === 'Pod' ? slimPod(o as PodObject) : stripManagedFields(o))),
    };
    this.#workers = opts.workers ?? 4;
  }

  #watchEndpoint(ep: PgEndpoint): void {
    const { metrics, runtimes, queue, log } = this.ctx;
    ep.onState((s) => {
      metrics.postgresConnected.set({ endpoint: ep.id }, s.phase === 'Listening' ? 1 : 0);
      log.info({ endpoint: ep.id, phase: s.phase, reason: 'reason' in s ? s.reason : undefined }, 'postgres endpoint state');
      for (const rt of runtimes.values()) if (rt.attachment?.endpoint === ep) queue.add(rt.key);
    });
  }

  /** Starts the caches, waits for them to fill, then runs the workers. */
  async start(): Promise<void> {
    await this.startCaches();
    this.runWorkers();
  }

  /** Fills the caches; a standby replica does this too, so that it is ready to take over at once. */
  async startCaches(): Promise<void> {
    const { pgclusters, pods, configMaps } = this.#stores;
    const { queue, log } = this.ctx;
    pgclusters.on((_e, pc) => queue.add(objectKey(pc)));
    configMaps.on((_e, cm) => {
      const owner = cm.metadata.labels?.[CLUSTER_KEY];
      if (owner && cm.metadata.namespace) queue.add(`${cm.metadata.namespace}/${owner}`);
    });
    pods.on((_e, pod, old) => this.#enqueueForPod(pod, old));
    for (const s of [pgclusters, pods, configMaps]) s.start();
    await Promise.all([pgclusters.waitForSync(), pods.waitForSync(), configMaps.waitForSync()]);
    log.info({ pgclusters: [...pgclusters.all()].length }, 'caches synced');
  }

  /** Reconciles (and so heartbeats): only the leader does this. */
  runWorkers(): void {
    const { pgclusters } = this.#stores;
    const queue = this.#queue;
    this.ctx.log.info('reconciling');
    for (const pc of pgclusters.all()) queue.add(objectKey(pc));
    this.#running = queue.run(this.#workers, async (key) => {
      const end = this.ctx.metrics.reconcileTime.startTimer({ controller: 'pgcluster' });
      try {
        const r = await this.#reconcile(key);
        this.ctx.metrics.reconcileTotal.inc({ controller: 'pgcluster', result: r.requeueAfterMs !== undefined ? 'requeue_after' : 'success' });
        return r;
      } catch (err) {
        this.ctx.metrics.reconcileTotal.inc({ controller: 'pgcluster', result: 'error' });
        throw err;
      } finally {
        end();
      }
    }, (key, err, retryInMs) => errorPolicy(this.ctx, key, err, retryInMs));
  }

  /** reconcile, with the error policy's answer to a UserError: a condition and an Event, no backoff retry. */
  async #reconcile(key: string): Promise<ReconcileResult> {
    try {
      return await reconcile(this.ctx, key);
    } catch (err) {
      if (!(err instanceof UserError)) throw err;
      await reportUserError(this.ctx, key, err);
      return { requeueAfterMs: RESYNC_MS };
    }
  }

  get synced(): boolean {
    const { pgclusters, pods, configMaps } = this.#stores;
    return [pgclusters, pods, configMaps].every((s) => s.informers.every((i) => i.hasSynced));
  }

  /** A pod event concerns every PgCluster of its namespace that selects it now, selected it before, or annotated it. */
  #enqueueForPod(pod: PodObject, old: PodObject | undefined): void {
    const ns = pod.metadata.namespace ?? '';
    for (const pc of this.ctx.pgclusters.inNamespace(ns)) {
      const sel = pc.spec?.selector;
      const concerned =
        (sel && (matchesSelector(pod.metadata.labels ?? {}, sel) || (old && matchesSelector(old.metadata.labels ?? {}, sel)))) ||
        pod.metadata.annotations?.[CLUSTER_KEY] === pc.metadata.name;
      if (concerned) this.ctx.queue.add(objectKey(pc));
    }
  }

  /**
   * Stops heartbeats first (no pod is announced by a stopping operator), lets reconciles in flight finish,
   * then hands over (the caller releases the Lease: a standby takes over at once, not after the connections
   * have been closed), then closes connections and caches.
   */
  async stop(handOver: () => Promise<void> = async () => {}): Promise<void> {
    const { pool, runtimes } = this.ctx;
    const { pgclusters, pods, configMaps } = this.#stores;
    const silence = () => { for (const rt of runtimes.values()) rt.attachment?.endpoint.setAnnouncer(rt.key, null); };
    this.#queue.shutDown();
    silence();
    await this.#running;
    silence(); // a reconcile that was in flight may have announced again
    await handOver();
    await pool.closeAll();
    for (const s of [pgclusters, pods, configMaps]) s.stop();
  }
}
