// Prometheus metrics: controller-runtime's names for the reconcile loop and work queue, plus the domain.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const CONTROLLER = 'pgcluster';
const CONDITION_STATUSES = ['True', 'False', 'Unknown'] as const;
/** Every condition type a PgCluster can have (docs/troubleshooting.md, the conditions table). */
export const CONDITION_TYPES = ['Connected', 'Ready', 'Degraded', 'Authenticated'] as const;

export class Metrics {
  readonly registry = new Registry();
  readonly reconcileTotal = new Counter({ name: 'controller_runtime_reconcile_total', help: 'Reconciliations per controller and result', labelNames: ['controller', 'result'], registers: [this.registry] });
  readonly reconcileErrors = new Counter({ name: 'controller_runtime_reconcile_errors_total', help: 'Reconciliation errors per controller', labelNames: ['controller'], registers: [this.registry] });
  readonly reconcileTime = new Histogram({ name: 'controller_runtime_reconcile_time_seconds', help: 'Time per reconciliation', labelNames: ['controller'], buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [this.registry] });
  readonly activeWorkers = new Gauge({ name: 'controller_runtime_active_workers', help: 'Workers in use', labelNames: ['controller'], registers: [this.registry] });
  readonly queueDepth = new Gauge({ name: 'workqueue_depth', help: 'Current depth of the work queue', labelNames: ['name'], registers: [this.registry] });
  readonly queueAdds = new Counter({ name: 'workqueue_adds_total', help: 'Adds handled by the work queue', labelNames: ['name'], registers: [this.registry] });
  readonly queueLatency = new Histogram({ name: 'workqueue_queue_duration_seconds', help: 'How long an item waits in the queue', labelNames: ['name'], buckets: [0.0001, 0.001, 0.01, 0.05, 0.1, 0.25, 1, 5, 10], registers: [this.registry] });
  readonly workDuration = new Histogram({ name: 'workqueue_work_duration_seconds', help: 'How long processing an item takes', labelNames: ['name'], buckets: [0.001, 0.01, 0.05, 0.1, 0.25, 1, 5, 10], registers: [this.registry] });
  readonly queueRetries = new Counter({ name: 'workqueue_retries_total', help: 'Retries handled by the work queue', labelNames: ['name'], registers: [this.registry] });

  readonly leaderStatus = new Gauge({ name: 'leader_election_master_status', help: '1 when this replica leads', labelNames: ['name'], registers: [this.registry] });
  readonly leaseRenewal = new Histogram({ name: 'pgcluster_leader_election_renew_seconds', help: 'How long each successful acquire or renewal of the Lease took (the leader exits once one takes longer than the renew deadline)', labelNames: ['name'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [this.registry] });

  readonly members = new Gauge({ name: 'pgcluster_members', help: 'Selected pods announced on the channel', labelNames: ['namespace', 'name'], registers: [this.registry] });
  readonly peers = new Gauge({ name: 'pgcluster_peers', help: 'Distinct names in the outputs', labelNames: ['namespace', 'name'], registers: [this.registry] });
  readonly statusCondition = new Gauge({ name: 'pgcluster_status_condition', help: 'The status conditions of each PgCluster: 1 for the current status of each type, 0 for the others', labelNames: ['namespace', 'name', 'type', 'status'], registers: [this.registry] });
  readonly droppedPeers = new Gauge({ name: 'pgcluster_dropped_peers', help: 'Names not published because of maxPeers', labelNames: ['namespace', 'name'], registers: [this.registry] });
  readonly notificationsSent = new Counter({ name: 'pgcluster_notifications_sent_total', help: 'Node names NOTIFYed (heartbeats and announcements)', labelNames: ['endpoint'], registers: [this.registry] });
  readonly notifyCommits = new Counter({ name: 'pgcluster_notify_transactions_total', help: 'pg_notify statements (one transaction, one commit each)', labelNames: ['endpoint'], registers: [this.registry] });
  readonly notificationsReceived = new Counter({ name: 'pgcluster_notifications_received_total', help: 'Notifications received on PgCluster channels', labelNames: ['endpoint'], registers: [this.registry] });
  readonly remoteNames = new Counter({ name: 'pgcluster_remote_names_total', help: 'New remote node names heard on the channel (and names refused by maxPeers)', labelNames: ['namespace', 'name'], registers: [this.registry] });
  readonly notifyFlood = new Gauge({ name: 'pgcluster_notify_flood', help: '1 while new remote names arrive faster than 100 a second (a NOTIFY flood)', labelNames: ['namespace', 'name'], registers: [this.registry] });
  readonly invalidPayloads = new Counter({ name: 'pgcluster_invalid_payloads_total', help: 'Received payloads dropped as invalid', labelNames: ['namespace', 'name', 'problem'], registers: [this.registry] });
  readonly notifyQueueUsage = new Gauge({ name: 'pgcluster_notify_queue_usage', help: 'Fill of the Postgres server notification queue (pg_notification_queue_usage, 0 to 1), read with each NOTIFY statement', labelNames: ['endpoint'], registers: [this.registry] });
  readonly postgresConnected = new Gauge({ name: 'pgcluster_postgres_connected', help: '1 when the listener is LISTENing and hears its own notifications', labelNames: ['endpoint'], registers: [this.registry] });
  readonly postgresReconnects = new Counter({ name: 'pgcluster_postgres_reconnects_total', help: 'Reconnections to Postgres', labelNames: ['endpoint', 'connection'], registers: [this.registry] });
  readonly heartbeatRtt = new Histogram({ name: 'pgcluster_heartbeat_rtt_seconds', help: 'Time from sending a notification to hearing it back', labelNames: ['endpoint'], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5], registers: [this.registry] });
  readonly kubeRequestDuration = new Histogram({ name: 'pgcluster_kube_request_duration_seconds', help: 'Kubernetes API requests (watches excepted), from sending to the whole answer read', labelNames: ['verb', 'resource'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [this.registry] });
  readonly kubeRetries = new Counter({ name: 'pgcluster_kube_request_retries_total', help: 'Kubernetes API requests tried again: throttled (429, after its Retry-After), token (401, with a token file read again), or timeout (no answer: its connection replaced; the caller retries)', labelNames: ['reason', 'resource'], registers: [this.registry] });
  readonly kubeWrites = new Counter({ name: 'pgcluster_kube_writes_total', help: 'Writes to the Kubernetes API', labelNames: ['verb', 'resource'], registers: [this.registry] });
  /** One annotation fan-out pass: its first PATCH issued to its last answered (controller/write/fanout.ts). */
  readonly fanOutPass = new Histogram({ name: 'pgcluster_annotation_fanout_seconds', help: 'One pass of pod annotation writes, first issued to last answered', buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [this.registry] });
  readonly joinToPublished = new Histogram({ name: 'pgcluster_join_to_published_seconds', help: 'From a membership change seen to the outputs written', buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [this.registry] });

  /** What the pod cache holds, read at each scrape (set by the manager). */
  podCache: () => { pods: number; watches: number } = () => ({ pods: 0, watches: 0 });
  readonly cachedPods: Gauge = new Gauge({
    name: 'pgcluster_cached_pods', help: 'Pods in the operator\'s cache: only pods some PgCluster selects or the operator wrote on', registers: [this.registry],
    collect: (): void => this.cachedPods.set(this.podCache().pods),
  });
  readonly podWatches: Gauge = new Gauge({
    name: 'pgcluster_pod_watches', help: 'Pod watches open: per namespace with PgClusters, one per distinct selector and one for the pods written on', registers: [this.registry],
    collect: (): void => this.podWatches.set(this.podCache().watches),
  });

  /** Exports a PgCluster's conditions (kube-state-metrics' shape: one series per type and status); `drop` removes types. */
  setConditions(namespace: string, name: string, conditions: readonly { type: string; status: string }[], drop: readonly string[] = []): void {
    for (const c of conditions) for (const status of CONDITION_STATUSES) this.statusCondition.set({ namespace, name, type: c.type, status }, c.status === status ? 1 : 0);
    for (const type of drop) for (const status of CONDITION_STATUSES) this.statusCondition.remove({ namespace, name, type, status });
  }

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    // At 0 from the start, as controller-runtime's are when a controller starts: a counter first scraped at 3
    // shows no increase to rate(), so the first failed reconciles would go unseen (PgClusterReconcileErrors,
    // the dashboard's errors line).
    this.reconcileErrors.inc({ controller: CONTROLLER }, 0);
    for (const result of ['success', 'error', 'requeue_after']) this.reconcileTotal.inc({ controller: CONTROLLER, result }, 0);
  }

  queueHooks() {
    return {
      onAdd: () => this.queueAdds.inc({ name: CONTROLLER }),
      onDepth: (d: number) => this.queueDepth.set({ name: CONTROLLER }, d),
      onQueueLatency: (s: number) => this.queueLatency.observe({ name: CONTROLLER }, s),
      onWorkDuration: (s: number) => this.workDuration.observe({ name: CONTROLLER }, s),
      onRetry: () => this.queueRetries.inc({ name: CONTROLLER }),
      onActive: (n: number) => this.activeWorkers.set({ controller: CONTROLLER }, n),
    };
  }
}
