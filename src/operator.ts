// The operator process: configuration from the environment, the manager, leader election, the metrics
// server and shutdown. Started by main.ts.
import { hostname } from 'node:os';
import type { AddressInfo } from 'node:net';
import { createLogger, installCrashHandlers, type Logger } from './log.ts';
import { errorText } from './core/redact.ts';
import { Metrics } from './metrics.ts';
import { KubeClient, KubeApiError, isForbidden, isNotFound } from './kube/client.ts';
import { loadKubeConfig } from './kube/kubeconfig.ts';
import { errorMessage } from './errors.ts';
import { paths } from './kube/resources.ts';
import { API_GROUP, API_VERSION } from './core/spec.ts';
import { parseDuration } from './core/duration.ts';
import { Manager } from './controller/manager.ts';
import { LeaderElector } from './kube/lease.ts';
import { parseBindAddress, startHttpServer } from './http.ts';

interface Config {
  namespaces: string[] | undefined;
  metricsBind: string;
  identity: string;
  workers: number;
  leaderElection: { namespace: string; name: string; leaseDurationMs: number; renewDeadlineMs: number; retryPeriodMs: number } | undefined;
}

function readConfig(env: NodeJS.ProcessEnv): Config {
  const ns = (env.WATCH_NAMESPACE ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const workers = Number(env.WORKERS ?? '4');
  if (!Number.isInteger(workers) || workers < 1) throw new StartupError(`WORKERS="${env.WORKERS}" must be a positive integer`);
  const leaseMs = parseDuration(env.LEADER_ELECTION_LEASE_DURATION ?? '15s');
  if (leaseMs === undefined || leaseMs < 2000) throw new StartupError(`LEADER_ELECTION_LEASE_DURATION="${env.LEADER_ELECTION_LEASE_DURATION}" must be a duration of at least 2s, e.g. 15s`);
  return {
    namespaces: ns.length ? [...new Set(ns)] : undefined,
    metricsBind: env.METRICS_BIND_ADDRESS ?? ':8080',
    identity: env.POD_NAME ?? `${hostname()}-${process.pid}`,
    workers,
    leaderElection: env.LEADER_ELECT === 'true'
      ? {
          namespace: env.LEADER_ELECTION_NAMESPACE || env.POD_NAMESPACE || 'default',
          name: env.LEADER_ELECTION_ID || 'pgcluster-operator',
          // client-go's proportions: 15s / 10s / 2s
          leaseDurationMs: leaseMs,
          renewDeadlineMs: Math.round((leaseMs * 2) / 3),
          retryPeriodMs: Math.max(200, Math.round(leaseMs / 7.5)),
        }
      : undefined,
  };
}

class StartupError extends Error {}

/** Fails early with a message a person can act on, instead of a stack trace from deep inside. */
async function preflight(kube: KubeClient, cfg: Config): Promise<void> {
  try {
    await kube.get(`/apis/${API_GROUP}/${API_VERSION}`);
  } catch (err) {
    if (isNotFound(err)) {
      throw new StartupError(`the PgCluster CRD is not installed (no ${API_GROUP}/${API_VERSION} API): kubectl apply -f manifests/crd/ (or install the Helm chart with crds.install=true)`);
    }
    if (err instanceof KubeApiError && (err.status === 401 || err.status === 403)) {
      throw new StartupError(`the Kubernetes API at ${kube.server} refused our credentials (${err.status}): check the kubeconfig or the ServiceAccount token`);
    }
    if (err instanceof KubeApiError) throw err;
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new StartupError(`cannot reach the Kubernetes API at ${kube.server}: ${cause?.code ?? cause?.message ?? errorMessage(err)}; check KUBECONFIG or the in-cluster network`);
  }
  const scopes = cfg.namespaces ?? [undefined];
  for (const ns of scopes) {
    for (const [what, path] of [['pgclusters', paths.pgclusters(ns)], ['pods', paths.pods(ns)], ['configmaps', paths.configMaps(ns)], ['services', paths.services(ns)], ['endpointslices', paths.endpointSlices(ns)]] as const) {
      try {
        await kube.request('GET', path, { query: { limit: '1' } });
      } catch (err) {
        if (isForbidden(err)) {
          throw new StartupError(`forbidden to list ${what} ${ns ? `in namespace ${ns}` : 'cluster-wide'}: grant the operator's ServiceAccount list/watch on ${what} (the Helm chart's RBAC does), or set WATCH_NAMESPACE to namespaces it may read`);
        }
        throw err;
      }
    }
  }
}

async function main(): Promise<void> {
  const log = createLogger();
  let cfg: Config;
  let manager: Manager | undefined;
  let stopping = false;
  // Installed first: as PID 1 in a container, node ignores SIGTERM that has no handler, so a pod stopped
  // during startup would otherwise wait for its grace period to be killed.
  let shutdown = (signal: string): void => {
    log.info({ signal }, 'stopped during startup');
    process.exit(0);
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  try {
    cfg = readConfig(process.env);
    const metrics = new Metrics();
    const { kc, tokenFile } = loadKubeConfig();
    const kube = new KubeClient(kc, {
      onWrite: (verb, resource) => metrics.kubeWrites.inc({ verb, resource }),
      onRequest: (method, resource, seconds) => metrics.kubeRequestDuration.observe({ verb: method, resource }, seconds),
      onRetry: (reason, resource) => metrics.kubeRetries.inc({ reason, resource }),
      onTimeout: (resource) => metrics.kubeRetries.inc({ reason: 'timeout', resource }),
    }, { tokenFile });
    await preflight(kube, cfg);
    manager = new Manager({ kube, log, metrics, namespaces: cfg.namespaces, identity: cfg.identity, workers: cfg.workers });
    const m = manager;
    const elector = cfg.leaderElection && new LeaderElector(kube, {
      ...cfg.leaderElection, identity: cfg.identity, log,
      onRenewed: (ms) => metrics.leaseRenewal.observe({ name: cfg.leaderElection?.name ?? '' }, ms / 1000),
    });
    const server = await startHttpServer(parseBindAddress(cfg.metricsBind), metrics, { healthy: () => !stopping, ready: () => !stopping && m.synced });
    log.info({ metrics: `${(server.address() as AddressInfo).address}:${(server.address() as AddressInfo).port}`, namespaces: cfg.namespaces ?? 'all', server: kube.server }, 'pgcluster-operator starting');
    shutdown = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'stopping: heartbeats off, then writes and connections, then the Lease');
      const hardStop = setTimeout(() => process.exit(0), 10_000);
      hardStop.unref();
      void m.stop(async () => elector?.release()).finally(() => {
        server.close();
        log.info('stopped');
        process.exit(0);
      });
    };
    if (!elector) {
      await manager.start();
      return;
    }
    await manager.startCaches();
    log.info({ lease: `${cfg.leaderElection?.namespace}/${cfg.leaderElection?.name}`, identity: cfg.identity }, 'standing by: waiting to lead');
    metrics.leaderStatus.set({ name: cfg.leaderElection?.name ?? '' }, 0);
    await elector.acquire((reason) => {
      metrics.leaderStatus.set({ name: cfg.leaderElection?.name ?? '' }, 0);
      // As controller-runtime does: a replica that lost the lease stops all work at once (heartbeats off,
      // Kubernetes writes refused, Postgres connections closed) and exits, to restart as a standby. This
      // happens at the renew deadline, which leaves leaseDuration - renewDeadline (5 s of 15 s) before
      // another replica may take the lease: the hard stop fits in it.
      stopping = true;
      const hardStop = setTimeout(() => process.exit(1), 3_000);
      hardStop.unref();
      void m.abandon().finally(() => {
        log.info({ reason }, 'stopped after losing the lease; exiting to restart as a standby');
        process.exit(1);
      });
    });
    metrics.leaderStatus.set({ name: cfg.leaderElection?.name ?? '' }, 1);
    if (!stopping) manager.runWorkers();
  } catch (err) {
    fatal(log, err);
  }
}

function fatal(log: Logger, err: unknown): never {
  if (err instanceof StartupError) log.fatal(err.message);
  else log.fatal({ error: errorText(err) }, 'startup failed');
  process.exit(1);
}

installCrashHandlers(createLogger());

await main();
