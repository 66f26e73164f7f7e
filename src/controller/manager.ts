// Wires the caches, the work queue, the Postgres endpoints and the reconciler together.
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { KubeClient, KubeObject } from '../kube/client.ts';
import { Informer, Store, objectKey, stripManagedFields } from '../kube/informer.ts';
import { paths, type ConfigMapObject, type PgClusterObject } from '../kube/resources.ts';
import { slimPod, type PodObject } from '../kube/pods.ts';
import { matchesSelector } from '../core/selector.ts';
import { CLUSTER_LABEL, MANAGED_BY, MANAGED_BY_LABEL, OWNER_ANNOTATION } from '../core/spec.ts';
import type { PgEndpoint } from '../postgres/endpoint.ts';
import { WriteMemo, type Context } from './context.ts';
import { EndpointPool } from './endpointPool.ts';
import { errorPolicy, reconcile } from './reconcile.ts';
import type { ClusterRuntime } from './runtime.ts';
import { WorkQueue } from './workqueue.ts';

export interface ManagerOptions {
  kube: KubeClient;
  log: Logger;
  metrics: Metrics;
  /** Namespaces to watch; undefined = all. */
  namespaces: string[] | undefined;
  identity: string;
  workers?: number;
}

export class Manager {
  readonly ctx: Context;
  #workers: number;
  #running: Promise<void> | undefined;

  constructor(opts: ManagerOptions) {
    const { kube, log, metrics } = opts;
    const scopes = opts.namespaces ?? [undefined];
    const informers = <T extends PgClusterObject | PodObject | ConfigMapObject>(path: (ns?: string) => string, extra: { labelSelector?: string; resyncMs?: number; transform?: (o: KubeObject) => KubeObject } = {}) =>
      new Store<T>(scopes.map((ns) => new Informer<T>(kube, { path: path(ns), log, ...extra })));
    const queue = new WorkQueue({ hooks: metrics.queueHooks() });
    const runtimes = new Map<string, ClusterRuntime>();
    const pool = new EndpointPool(
      log,
      (id) => {
        let received: { inc(): void } | undefined;
        return {
          onCommit: (payloads) => {
            metrics.notifyCommits.inc({ endpoint: id() });
            metrics.notificationsSent.inc({ endpoint: id() }, Math.max(0, payloads - 1)); // minus the liveness probe
          },
          // Once per notification (10,000 per heartbeat at 10,000 pods): the labelled child, looked up once.
          onPayload: () => (received ??= metrics.notificationsReceived.labels({ endpoint: id() })).inc(),
          onEcho: (ms) => metrics.heartbeatRtt.observe({ endpoint: id() }, ms / 1000),
          onReconnect: (which) => metrics.postgresReconnects.inc({ endpoint: id(), connection: which }),
        };
      },
      (ep) => this.#watchEndpoint(ep),
    );
    this.ctx = {
      kube, log, metrics, queue, runtimes, pool,
      pgclusters: informers<PgClusterObject>(paths.pgclusters, { resyncMs: 600_000 }),
      pods: informers<PodObject>(paths.pods, { transform: (o) => slimPod(o as PodObject) }),
      configMaps: informers<ConfigMapObject>(paths.configMaps, { labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY}` }),
      written: new WriteMemo((o) => (o.kind === 'Pod' ? slimPod(o as PodObject) : stripManagedFields(o))),
      identity: opts.identity,
      now: Date.now,
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
    const { pgclusters, pods, configMaps, queue, log } = this.ctx;
    pgclusters.on((_e, pc) => queue.add(objectKey(pc)));
    configMaps.on((_e, cm) => {
      const owner = cm.metadata.labels?.[CLUSTER_LABEL];
      if (owner && cm.metadata.namespace) queue.add(`${cm.metadata.namespace}/${owner}`);
    });
    pods.on((_e, pod, old) => this.#enqueueForPod(pod, old));
    for (const s of [pgclusters, pods, configMaps]) s.start();
    await Promise.all([pgclusters.waitForSync(), pods.waitForSync(), configMaps.waitForSync()]);
    log.info({ pgclusters: [...pgclusters.all()].length }, 'caches synced');
  }

  /** Reconciles (and so heartbeats): only the leader does this. */
  runWorkers(): void {
    const { pgclusters, queue, log } = this.ctx;
    log.info('reconciling');
    for (const pc of pgclusters.all()) queue.add(objectKey(pc));
    this.#running = queue.run(this.#workers, async (key) => {
      const end = this.ctx.metrics.reconcileTime.startTimer({ controller: 'pgcluster' });
      try {
        const r = await reconcile(this.ctx, key);
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

  get synced(): boolean {
    const { pgclusters, pods, configMaps } = this.ctx;
    return [pgclusters, pods, configMaps].every((s) => s.informers.every((i) => i.hasSynced));
  }

  /** A pod event concerns every PgCluster of its namespace that selects it now, selected it before, or annotated it. */
  #enqueueForPod(pod: PodObject, old: PodObject | undefined): void {
    const ns = pod.metadata.namespace ?? '';
    for (const pc of this.ctx.pgclusters.inNamespace(ns)) {
      const sel = pc.spec?.selector;
      const concerned =
        (sel && (matchesSelector(pod.metadata.labels ?? {}, sel) || (old && matchesSelector(old.metadata.labels ?? {}, sel)))) ||
        pod.metadata.annotations?.[OWNER_ANNOTATION] === pc.metadata.name;
      if (concerned) this.ctx.queue.add(objectKey(pc));
    }
  }

  /** Stops heartbeats first (so no pod is announced by a stopping operator), then everything else. */
  async stop(): Promise<void> {
    const { queue, pool, pgclusters, pods, configMaps } = this.ctx;
    queue.shutDown();
    await pool.closeAll();
    for (const s of [pgclusters, pods, configMaps]) s.stop();
    await this.#running;
  }
}
