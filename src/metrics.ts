// Prometheus metrics: controller-runtime's names for the reconcile loop and work queue, plus the domain.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const CONTROLLER = 'pgcluster';

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

  readonly members = new Gauge({ name: 'pgcluster_members', help: 'Selected pods announced on the channel', labelNames: ['namespace', 'name'], registers: [this.registry] });
  readonly peers = new Gauge({ name: 'pgcluster_peers', help: 'Distinct names in the outputs', labelNames: ['namespace', 'name'], registers: [this.registry] });
  readonly droppedPeers = new Gauge({ name: 'pgcluster_dropped_peers', help: 'Names not published because of maxPeers', labelNames: ['namespace', 'name'], registers: [this.registry] });
  readonly notificationsSent = new Counter({ name: 'pgcluster_notifications_sent_total', help: 'Node names NOTIFYed (heartbeats and announcements)', labelNames: ['endpoint'], registers: [this.registry] });
  readonly notifyCommits = new Counter({ name: 'pgcluster_notify_transactions_total', help: 'pg_notify statements (one transaction, one commit each)', labelNames: ['endpoint'], registers: [this.registry] });
  readonly notificationsReceived = new Counter({ name: 'pgcluster_notifications_received_total', help: 'Notifications received on PgCluster channels', labelNames: ['endpoint'], registers: [this.registry] });
  readonly invalidPayloads = new Counter({ name: 'pgcluster_invalid_payloads_total', help: 'Received payloads dropped as invalid', labelNames: ['namespace', 'name', 'problem'], registers: [this.registry] });
  readonly postgresConnected = new Gauge({ name: 'pgcluster_postgres_connected', help: '1 when the listener is LISTENing and hears its own notifications', labelNames: ['endpoint'], registers: [this.registry] });
  readonly postgresReconnects = new Counter({ name: 'pgcluster_postgres_reconnects_total', help: 'Reconnections to Postgres', labelNames: ['endpoint', 'connection'], registers: [this.registry] });
  readonly heartbeatRtt = new Histogram({ name: 'pgcluster_heartbeat_rtt_seconds', help: 'Time from sending a notification to hearing it back', labelNames: ['endpoint'], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5], registers: [this.registry] });
  readonly kubeWrites = new Counter({ name: 'pgcluster_kube_writes_total', help: 'Writes to the Kubernetes API', labelNames: ['verb', 'resource'], registers: [this.registry] });
  readonly joinToPublished = new Histogram({ name: 'pgcluster_join_to_published_seconds', help: 'From a membership change seen to the outputs written', buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [this.registry] });

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
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
