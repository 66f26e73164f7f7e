// Runs the real operator program (src/main.ts) as a child process against the test stack, and drives
// pods the way a kubelet would report them.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeClient } from '../../src/kube/client.ts';
import { createNamespace, requireEnv, waitFor } from './env.ts';
import { installCrd } from './crd.ts';
import { startPostgres, type PostgresServer } from '../harness/postgres.ts';
import { reportPodStatus } from './kubelet.ts';
import { createPodObject, createSecret, type PodInput } from './objects.ts';
import { launchOperator } from './launch.ts';
import { parseMetrics, sumMetric } from './metrics.ts';
import { DEFAULT_POD_ANNOTATION } from '../../src/core/spec.ts';
import { paths } from '../../src/kube/resources.ts';

export interface OperatorProcess {
  /** Its process id: a restarted operator would be another process. */
  pid: number;
  /** The process has not exited. */
  alive(): boolean;
  metricsUrl: string;
  logs(): string;
  /** A metric's value summed over the series that match `labels`. */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  /** One scrape, read as metric(): for figures that must come from the same moment. */
  scrape(): Promise<(name: string, labels?: Record<string, string>) => number>;
  /** Answers the exit code (or the signal's name). */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
  /** Settles when the process exits by itself or is stopped: its exit code (or the signal's name). */
  exited: Promise<number | string>;
}

// In the stack's dir, where `npm test` sweeps every operator log for secrets after the run.
const logDir = (() => {
  const dir = join(requireEnv().stackDir, 'operator-logs');
  mkdirSync(dir, { recursive: true });
  return dir;
})();
let launched = 0;

/** The operator (src/main.ts) against the test stack, logging at debug level to a file of its own. */
/** `kubeconfig`: another than the stack's admin one (another user, or a server address through a relay). */
export async function startOperator(opts: { namespaces: string[]; env?: Record<string, string>; kubeconfig?: string }): Promise<OperatorProcess> {
  const logFile = join(logDir, `operator-${process.pid}-${++launched}.log`);
  const op = await launchOperator({ kubeconfig: opts.kubeconfig ?? requireEnv().kubeconfig, namespaces: opts.namespaces, logFile, logLevel: 'debug', env: opts.env });
  const scrape = async () => parseMetrics(await (await fetch(op.metricsUrl)).text());
  let exited = false;
  void op.proc.exited.then(() => { exited = true; });
  return {
    pid: op.proc.pid,
    alive: () => !exited,
    metricsUrl: op.metricsUrl,
    logs: () => readFileSync(logFile, 'utf8'),
    metric: async (name, labels = {}) => sumMetric(await scrape(), name, labels),
    scrape: async () => {
      const series = await scrape();
      return (name, labels = {}) => sumMetric(series, name, labels);
    },
    stop: (signal = 'SIGTERM') => op.stop(signal),
    exited: op.proc.exited,
  };
}

/** How most operator e2e files start: the CRD, a private Postgres, a fresh namespace `<prefix>-<random>` with
 * Secret `db` holding the server's URL, and an operator watching that namespace. The file's after() stops
 * them (op.stop(), ns.cleanup(), server.destroy()). */
export async function operatorOnPostgres(kube: KubeClient, prefix: string): Promise<{ server: PostgresServer; ns: { name: string; cleanup(): Promise<void> }; op: OperatorProcess }> {
  const server = await startPostgres();
  return { server, ...await operatorInNamespace(kube, prefix, server.url) };
}

/** A namespace of its own (`prefix-<random>`) with Secret `db` holding `databaseUrl`, the CRD, and an operator watching the namespace. */
export async function operatorInNamespace(kube: KubeClient, prefix: string, databaseUrl: string): Promise<{ ns: { name: string; cleanup(): Promise<void> }; op: OperatorProcess }> {
  await installCrd(kube);
  const ns = await createNamespace(prefix);
  await createSecret(kube, ns.name, 'db', { url: databaseUrl });
  return { ns, op: await startOperator({ namespaces: [ns.name] }) };
}

export function parseMetric(text: string, name: string, labels: Record<string, string>): number {
  return sumMetric(parseMetrics(text), name, labels);
}

/** A Kubernetes client for the tests themselves (admin). */
export function testKube(): KubeClient {
  const kc = new KubeConfig();
  kc.loadFromFile(requireEnv().kubeconfig);
  return new KubeClient(kc);
}

// No kubelet runs here: pods sit on a node that does not exist and the test reports their status through
// the pods/status subresource, as a kubelet would (kwok does the same for the demo and benchmarks).
const FAKE_NODE = 'pgco-test-node';

/** A pod on the fake node, with the status a kubelet would report (Ready unless `ready: false`). */
export type TestPod = Omit<PodInput, 'node'> & { ip?: string; ready?: boolean };

export async function createPod(kube: KubeClient, ns: string, p: TestPod): Promise<void> {
  await createPodObject(kube, ns, { ...p, node: FAKE_NODE });
  await setPodStatus(kube, ns, p.name, { ip: p.ip, ready: p.ready ?? true });
}

export function setPodStatus(kube: KubeClient, ns: string, name: string, s: { ip?: string | undefined; ready: boolean }): Promise<void> {
  return reportPodStatus(kube, ns, name, s);
}

/** Deletes a pod at once (there is no kubelet to finish a graceful deletion). */
export async function deletePod(kube: KubeClient, ns: string, name: string): Promise<void> {
  await kube.request('DELETE', paths.pod(ns, name), { body: { gracePeriodSeconds: 0 } });
}

export { createPgCluster, createSecret } from './objects.ts';

export interface PgClusterJson {
  metadata: { name: string; finalizers?: string[] };
  status?: { members?: number; peers?: number; channel?: string; droppedPeers?: number; conflictingPods?: number; podAnnotation?: string; conditions?: { type: string; status: string; reason: string; message: string; lastTransitionTime: string }[] };
}

export function getPgCluster(kube: KubeClient, ns: string, name: string): Promise<PgClusterJson | undefined> {
  return kube.getOptional<PgClusterJson>(paths.pgcluster(ns, name));
}

/** The Events recorded about a PgCluster (`kubectl describe` shows them). */
export async function pgclusterEvents(kube: KubeClient, ns: string, name: string): Promise<{ type: string; reason: string; message: string }[]> {
  const list = await kube.list<{ type: string; reason: string; message: string; involvedObject: { kind: string; name: string } }>(paths.events(ns), { fieldSelector: `involvedObject.name=${name}` });
  return list.items.filter((e) => e.involvedObject.kind === 'PgCluster');
}

export function condition(pc: PgClusterJson | undefined, type: string) {
  return pc?.status?.conditions?.find((c) => c.type === type);
}

export async function configMapPeers(kube: KubeClient, ns: string, name: string): Promise<string[] | undefined> {
  const cm = await kube.getOptional<{ data?: Record<string, string> }>(paths.configMap(ns, name));
  if (!cm) return undefined;
  return (cm.data?.peers ?? '').split('\n').filter(Boolean);
}

export async function podAnnotation(kube: KubeClient, ns: string, pod: string, key = DEFAULT_POD_ANNOTATION): Promise<string | undefined> {
  const p = await kube.get<{ metadata: { annotations?: Record<string, string> } }>(paths.pod(ns, pod));
  return p.metadata.annotations?.[key];
}

/** Waits until the ConfigMap and the annotation of every listed pod show exactly `want` (sorted). */
export async function waitForPeers(kube: KubeClient, ns: string, cm: string, pods: string[], want: string[], timeoutMs = 20_000): Promise<void> {
  const sorted = [...want].sort();
  await waitFor(async () => {
    const peers = await configMapPeers(kube, ns, cm);
    if (JSON.stringify(peers) !== JSON.stringify(sorted)) return false;
    for (const p of pods) if ((await podAnnotation(kube, ns, p)) !== sorted.join(',')) return false;
    return true;
  }, { timeoutMs, message: `peers ${JSON.stringify(sorted)} in ConfigMap ${ns}/${cm} and on pods ${pods.join(',')}` });
}
