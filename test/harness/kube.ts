// A real Kubernetes control plane for tests: etcd + kube-apiserver (RBAC, token auth), optionally kwok (fake
// nodes whose pods become Running/Ready with an IP) and kube-controller-manager (garbage collection,
// namespace deletion). Binaries come from KUBEBUILDER_ASSETS or scripts/build-binaries.sh's cache.
import { spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { request as httpRequest } from 'node:http';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { assertRunning, freePort, logTail, startOwnedProc, waitInBackground, waitReady, type Proc } from './proc.ts';
import { Teardown } from './teardown.ts';
import { errorMessage } from '../../src/errors.ts';

export interface KubeStack {
  kubeconfig: string;
  /** https://127.0.0.1:<port> */
  server: string;
  adminToken: string;
  /** Dir with kubectl, helm (and the other stack binaries), to put first on PATH. */
  binDir: string;
  /** Bearer tokens by user name: "admin" and "system:serviceaccount:pgcluster-system:pgcluster-operator". */
  tokens: Record<string, string>;
  /** PEM of the API server's self-signed serving cert, the CA for clients. */
  caFile: string;
  /** Pids of the running processes by name (for the CLI's state file). */
  pids: Record<string, number>;
  /** The processes themselves, to tell afterwards whether one died while in use. */
  processes: readonly Proc[];
  /** An authenticated request as admin. */
  api(path: string, method?: string, body?: unknown): Promise<HttpResult>;
  /**
   * Stops kube-apiserver (SIGTERM: every connection closed) and starts it again on the same address, with the
   * same certificate and etcd; resolves when it is ready again. For a control plane of a test's own, not the
   * shared stack's (its other tests would see the outage).
   */
  restartApiServer(): Promise<void>;
  stop(): Promise<void>;
}

export interface KubeOpts {
  dir: string;
  kwok?: boolean;
  controllerManager?: boolean;
  /** Prepare the control plane for a real kubelet (test/harness/realnode.ts): Node authorization, a node
   *  token, ServiceAccount token volumes for pods, kube-root-ca.crt in every namespace, a tainted kwok node. */
  realNode?: boolean;
  /** Put promtool (built from the Prometheus module) in the bin dir, for the alerting-rule tests. */
  promtool?: boolean;
  /** Put the Prometheus server in the bin dir, for the monitoring test (test/harness/prometheus.ts starts it). */
  prometheus?: boolean;
}

export const K8S_VERSION = 'v1.34.4';
export const KWOK_NODE = 'kwok-node-0';
export const OPERATOR_SA_USER = 'system:serviceaccount:pgcluster-system:pgcluster-operator';
export const REAL_NODE = 'pgco-real-node';
export const NODE_USER = `system:node:${REAL_NODE}`;
export const SCHEDULER_USER = 'system:kube-scheduler';
/** With a scheduler running, only pods that tolerate this land on the kwok node (tests bind them by nodeName). */
export const KWOK_TAINT = { key: 'pgcluster.io/kwok-node', value: 'true', effect: 'NoSchedule' };

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Runs scripts/build-binaries.sh for the components and returns their dirs (it reuses its cache). */
export async function ensureBinaries(components: string[]): Promise<Record<string, string>> {
  const script = join(repoRoot, 'scripts', 'build-binaries.sh');
  // A fresh machine of this kind has Go at /usr/local/go without it being on PATH.
  const path = existsSync('/usr/local/go/bin/go') ? `/usr/local/go/bin${delimiter}${process.env.PATH ?? ''}` : process.env.PATH;
  return new Promise((resolvePromise, reject) => {
    const child = spawn('bash', [script, ...components], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PATH: path } });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    // Progress ("building ...", go's download lines) goes to our stderr live; we keep it for the error.
    child.stderr.on('data', (b: Buffer) => { err += b.toString(); process.stderr.write(b); });
    child.on('error', (e) => reject(new Error(`could not run ${script}: ${e.message}`)));
    child.on('close', (code) => { // 'close', not 'exit': stdout may still hold data at 'exit'
      if (code !== 0) {
        const tail = err.trimEnd().split('\n').slice(-15).join('\n');
        reject(new Error(`building the test binaries failed (scripts/build-binaries.sh ${components.join(' ')} exited ${code}):\n${tail}\n`
          + 'Fix the cause above (Go missing: install Go >= 1.24 or put /usr/local/go/bin on PATH; no network to the Go module proxy), '
          + 'or set KUBEBUILDER_ASSETS to a dir holding kube-apiserver, etcd and kubectl.'));
        return;
      }
      const dirs = out.trim().split('\n');
      if (dirs.length !== components.length) {
        reject(new Error(`scripts/build-binaries.sh printed ${dirs.length} dirs for ${components.length} components:\n${out}`));
        return;
      }
      resolvePromise(Object.fromEntries(components.map((c, i) => [c, dirs[i]!])));
    });
  });
}

export interface HttpResult { status: number; body: string }

/** A Node or a Pod whose Ready condition is True. */
export function isReady(o: { status?: { conditions?: { type: string; status: string }[] } } | undefined): boolean {
  return o?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

/** A GET/POST against the API server, verifying its serving cert against ca. */
export function kubeRequest(url: string, opts: { ca: string; token?: string; method?: string; body?: unknown }): Promise<HttpResult> {
  return new Promise((resolvePromise, reject) => {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    if (payload) headers['content-type'] = 'application/json';
    const req = request(url, { method: opts.method ?? 'GET', ca: opts.ca, headers, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString(); });
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`timeout: ${url}`)));
    req.on('error', reject);
    req.end(payload);
  });
}

function httpGet(url: string): Promise<HttpResult> {
  return new Promise((resolvePromise, reject) => {
    const req = httpRequest(url, { timeout: 3000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString(); });
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`timeout: ${url}`)));
    req.on('error', reject);
    req.end();
  });
}

export function kubeconfigYaml(server: string, caPem: string, user: string, token: string): string {
  const ca = Buffer.from(caPem).toString('base64');
  // JSON is valid YAML; kubectl, helm and client-node all read it.
  return JSON.stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'pgco-test',
    clusters: [{ name: 'pgco-test', cluster: { server, 'certificate-authority-data': ca } }],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: 'pgco-test', context: { cluster: 'pgco-test', user, namespace: 'default' } }],
  }, null, 2) + '\n';
}

/** Adds a hint to well-known failure lines in a process log. */
function hintFor(logFile: string): string {
  const tail = logTail(logFile, 60);
  if (/address already in use/i.test(tail)) return 'Hint: a port it wanted is in use by another process; free it (ss -ltnp) or just retry (ports are picked at random).';
  return '';
}

async function ready(p: Proc, what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  try {
    await waitReady(p, what, check, timeoutMs);
  } catch (e) {
    const hint = hintFor(p.logFile);
    throw hint ? new Error(`${errorMessage(e)}\n${hint}`) : e;
  }
}

/** What the steps of startKube share: the stack dir, its bin dir, the teardown and the servers started. */
interface KubeCtx {
  dir: string;
  bin: (name: string) => string;
  td: Teardown;
  procs: Proc[];
}

interface Credentials {
  saKey: string;
  saPub: string;
  /** Bearer tokens by user name (KubeStack.tokens). */
  tokens: Record<string, string>;
  kcmToken: string;
}

interface ApiServer {
  server: string;
  /** PEM of its serving cert, and the file it is in. */
  ca: string;
  caFile: string;
  proc: Proc;
}

type Api = KubeStack['api'];

export async function startKube(opts: KubeOpts): Promise<KubeStack> {
  const dir = resolve(opts.dir);
  mkdirSync(dir, { recursive: true });
  const binDir = await linkBinaries(dir, opts);
  const td = new Teardown('the control plane');
  const k: KubeCtx = { dir, bin: (n) => join(binDir, n), td, procs: [] };
  return td.unwindOnError(async () => {
    const etcd = await startEtcd(k);
    const creds = writeCredentials(dir, opts.realNode ?? false); // while etcd boots
    await ready(etcd.proc, 'healthy', async () => JSON.parse((await httpGet(`${etcd.url}/health`)).body).health === 'true', 30_000);
    let apiserver = await startApiServer(k, etcd.url, creds, opts.realNode ?? false);
    let restarts = 0;
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(kubeconfig, kubeconfigYaml(apiserver.server, apiserver.ca, 'admin', creds.tokens.admin!), { mode: 0o600 });
    const api: Api = (path, method = 'GET', body) => kubeRequest(`${apiserver.server}${path}`, { ca: apiserver.ca, token: creds.tokens.admin!, method, body });
    // kwok and the controller manager come up side by side.
    const waits = [
      ...(opts.kwok ? [await startKwok(k, kubeconfig, api, opts.realNode ?? false)] : []),
      ...(opts.controllerManager ? [await startControllerManager(k, apiserver, creds.kcmToken, opts.realNode ?? false)] : []),
    ];
    await Promise.all(waits.map((w) => w.ready));
    assertRunning(k.procs);
    return {
      kubeconfig, server: apiserver.server, adminToken: creds.tokens.admin!, binDir, tokens: creds.tokens, caFile: apiserver.caFile,
      pids: Object.fromEntries(k.procs.map((p) => [p.name, p.pid])), processes: k.procs, api,
      restartApiServer: async () => {
        await apiserver.proc.stop('SIGTERM');
        k.procs.splice(k.procs.indexOf(apiserver.proc), 1);
        apiserver = await startApiServer(k, etcd.url, creds, opts.realNode ?? false, { port: Number(new URL(apiserver.server).port), run: ++restarts });
      },
      // Reverse start order: clients of the API server first, etcd last.
      stop: () => td.run(),
    };
  });
}

/** The stack's bin dir, fresh: links to the binaries (built by build-binaries.sh, or from KUBEBUILDER_ASSETS). */
async function linkBinaries(dir: string, opts: KubeOpts): Promise<string> {
  const assets = process.env.KUBEBUILDER_ASSETS;
  // Binaries: everything through build-binaries.sh, which prefers KUBEBUILDER_ASSETS for kube/etcd/kcm.
  const comps = ['kube', 'etcd', 'helm', ...(opts.kwok ? ['kwok'] : []), ...(opts.controllerManager ? ['kcm'] : []), ...(opts.promtool ? ['promtool'] : []), ...(opts.prometheus ? ['prometheus'] : [])];
  if (assets) {
    for (const b of ['kube-apiserver', 'etcd', 'kubectl']) {
      if (!existsSync(join(assets, b))) throw new Error(`KUBEBUILDER_ASSETS=${assets} has no ${b}; point it at a setup-envtest dir or unset it to build from source`);
    }
  }
  const dirs = await ensureBinaries(comps);
  const binDir = join(dir, 'bin');
  rmSync(binDir, { recursive: true, force: true });
  mkdirSync(binDir);
  const bins: Record<string, string> = {
    'kube-apiserver': dirs.kube!, kubectl: dirs.kube!, etcd: dirs.etcd!, helm: dirs.helm!,
    ...(opts.kwok ? { kwok: dirs.kwok! } : {}),
    ...(opts.controllerManager ? { 'kube-controller-manager': dirs.kcm! } : {}),
    ...(opts.promtool ? { promtool: dirs.promtool! } : {}),
    ...(opts.prometheus ? { prometheus: dirs.prometheus! } : {}),
  };
  for (const [name, d] of Object.entries(bins)) {
    const real = join(d, name);
    if (!existsSync(real)) throw new Error(`${real} is missing after scripts/build-binaries.sh; delete ${d} and rerun it`);
    symlinkSync(real, join(binDir, name));
  }
  return binDir;
}

/** etcd: loopback, throwaway data, no fsync (tests do not need durability, and it is much faster). Not waited for. */
async function startEtcd(k: KubeCtx): Promise<{ proc: Proc; url: string }> {
  const [etcdClient, etcdPeer] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${etcdClient}`;
  const proc = startOwnedProc(k.td, k.procs, 'etcd', k.bin('etcd'), [
    '--name=pgco', `--data-dir=${join(k.dir, 'etcd-data')}`,
    `--listen-client-urls=${url}`, `--advertise-client-urls=${url}`,
    `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`, `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
    `--initial-cluster=pgco=http://127.0.0.1:${etcdPeer}`, '--unsafe-no-fsync', '--log-level=warn',
  ], { logFile: join(k.dir, 'etcd.log'), deathSignal: 'TERM' });
  return { proc, url };
}

/** Credentials: a service-account signing key and static bearer tokens (tokens.csv). */
function writeCredentials(dir: string, realNode: boolean): Credentials {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  const saKey = join(dir, 'sa.key');
  const saPub = join(dir, 'sa.pub');
  writeFileSync(saKey, privateKey, { mode: 0o600 });
  writeFileSync(saPub, publicKey);
  const token = () => randomBytes(24).toString('hex');
  const tokens: Record<string, string> = { admin: token(), [OPERATOR_SA_USER]: token() };
  const kcmToken = token();
  if (realNode) { tokens[NODE_USER] = token(); tokens[SCHEDULER_USER] = token(); }
  writeFileSync(join(dir, 'tokens.csv'), [
    ...(realNode ? [
      `${tokens[NODE_USER]},${NODE_USER},${randomUUID()},"system:nodes,system:authenticated"`,
      `${tokens[SCHEDULER_USER]},${SCHEDULER_USER},${randomUUID()},"system:masters"`,
    ] : []),
    `${tokens.admin},admin,admin,"system:masters"`,
    `${tokens[OPERATOR_SA_USER]},${OPERATOR_SA_USER},${randomUUID()},"system:serviceaccounts,system:serviceaccounts:pgcluster-system,system:authenticated"`,
    // The controller manager runs its controllers under its own identity; masters keeps it simple.
    `${kcmToken},system:kube-controller-manager,kcm,"system:masters"`,
    '',
  ].join('\n'), { mode: 0o600 });
  return { saKey, saPub, tokens, kcmToken };
}

/** kube-apiserver on a free loopback port, waited for until /readyz answers ok. */
async function startApiServer(k: KubeCtx, etcdUrl: string, creds: Credentials, realNode: boolean, again?: { port: number; run: number }): Promise<ApiServer> {
  const port = again?.port ?? await freePort();
  const server = `https://127.0.0.1:${port}`;
  const certDir = join(k.dir, 'apiserver-certs');
  const proc = startOwnedProc(k.td, k.procs, 'kube-apiserver', k.bin('kube-apiserver'), [
    `--etcd-servers=${etcdUrl}`, '--bind-address=127.0.0.1', '--advertise-address=127.0.0.1',
    `--secure-port=${port}`, `--cert-dir=${certDir}`, '--service-cluster-ip-range=10.0.0.0/24',
    '--service-account-issuer=https://kubernetes.default.svc', `--service-account-key-file=${creds.saPub}`,
    `--service-account-signing-key-file=${creds.saKey}`,
    `--token-auth-file=${join(k.dir, 'tokens.csv')}`, '--allow-privileged=true',
    ...(realNode
      // PodTolerationRestriction: a namespace's annotation scheduler.alpha.kubernetes.io/defaultTolerations is
      // merged into the tolerations of every pod created in it. The examples e2e applies examples/*/k8s/
      // unchanged, with no toleration for the real node's test-only taint; its namespace carries that
      // toleration instead, as a cluster admin would give a namespace access to dedicated nodes. Pods of other
      // namespaces are unchanged but for the memory-pressure toleration the plugin adds to pods that request
      // resources (no node here has that taint).
      ? ['--authorization-mode=Node,RBAC', '--kubelet-preferred-address-types=InternalIP,Hostname', '--enable-admission-plugins=PodTolerationRestriction']
      // No token volumes for pods: nothing here runs real containers.
      : ['--authorization-mode=RBAC', '--disable-admission-plugins=ServiceAccount']),
  ], { logFile: join(k.dir, again ? `kube-apiserver-${again.run}.log` : 'kube-apiserver.log'), deathSignal: 'TERM' });

  // The self-signed serving cert (leaf + its CA) appears in --cert-dir once the server has started.
  const caFile = join(certDir, 'apiserver.crt');
  let ca = '';
  await ready(proc, 'ready (/readyz)', async () => {
    if (!ca) {
      if (!existsSync(caFile)) return false;
      ca = readFileSync(caFile, 'utf8');
    }
    const r = await kubeRequest(`${server}/readyz`, { ca });
    return r.status === 200 && r.body.trim() === 'ok';
  }, 120_000);
  return { server, ca, caFile, proc };
}

/** kwok and its fake Node; ready: kwok reports the Node Ready. */
async function startKwok(k: KubeCtx, kubeconfig: string, api: Api, realNode: boolean): Promise<{ ready: Promise<void> }> {
  const kwok = startOwnedProc(k.td, k.procs, 'kwok', k.bin('kwok'), [
    `--kubeconfig=${kubeconfig}`, '--manage-all-nodes=false',
    '--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake',
    '--cidr=10.244.0.1/16', '--node-ip=10.240.0.10',
    // A node Lease renewed like a kubelet's. Without it kwok refreshes the Node's status only every ~55 s,
    // past the node-lifecycle controller's 50 s grace period (it runs beside a real node): the Node went
    // Unknown for a few seconds each minute and every kwok pod was marked NotReady, then Ready again.
    '--node-lease-duration-seconds=40',
  ], { logFile: join(k.dir, 'kwok.log'), deathSignal: 'TERM', env: { ...process.env, HOME: k.dir } });
  const node = await api('/api/v1/nodes', 'POST', {
    apiVersion: 'v1', kind: 'Node',
    metadata: {
      name: KWOK_NODE,
      annotations: { 'kwok.x-k8s.io/node': 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
      labels: { 'kubernetes.io/hostname': KWOK_NODE, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', type: 'kwok' },
    },
    ...(realNode ? { spec: { taints: [KWOK_TAINT] } } : {}),
  });
  if (node.status !== 201) throw new Error(`creating Node ${KWOK_NODE} failed: HTTP ${node.status} ${node.body}`);
  // kwok takes the node over and reports it Ready: then pods bound to it come alive.
  return { ready: waitInBackground(ready(kwok, `managing node ${KWOK_NODE} (Ready)`, async () => {
    const r = await api(`/api/v1/nodes/${KWOK_NODE}`);
    return isReady(JSON.parse(r.body) as Parameters<typeof isReady>[0]);
  }, 60_000)) };
}

/** kube-controller-manager with the controllers tests rely on; ready: its /healthz answers. */
async function startControllerManager(k: KubeCtx, apiserver: ApiServer, kcmToken: string, realNode: boolean): Promise<{ ready: Promise<void> }> {
  const kcmConfig = join(k.dir, 'kcm.kubeconfig');
  writeFileSync(kcmConfig, kubeconfigYaml(apiserver.server, apiserver.ca, 'system:kube-controller-manager', kcmToken), { mode: 0o600 });
  const kcmPort = await freePort();
  const kcmCerts = join(k.dir, 'kcm-certs');
  const kcm = startOwnedProc(k.td, k.procs, 'kube-controller-manager', k.bin('kube-controller-manager'), [
    `--kubeconfig=${kcmConfig}`, '--leader-elect=false',
    `--bind-address=127.0.0.1`, `--secure-port=${kcmPort}`, `--cert-dir=${kcmCerts}`,
    // Published as the kube-root-ca.crt ConfigMap, which every pod's token volume carries.
    `--root-ca-file=${apiserver.caFile}`,
    // Only what tests rely on: owner-reference GC, namespace deletion, default ServiceAccounts, and the
    // workload controllers so a Deployment (e.g. from the Helm chart) gets its ReplicaSet and Pods.
    '--controllers=garbage-collector-controller,namespace-controller,serviceaccount-controller,'
      + 'deployment-controller,replicaset-controller,endpoints-controller,endpointslice-controller,'
      + 'root-ca-certificate-publisher-controller'
      // Takes the not-ready taint off a kubelet's Node once it reports Ready.
      + (realNode ? ',node-lifecycle-controller' : ''),
  ], { logFile: join(k.dir, 'kube-controller-manager.log'), deathSignal: 'TERM' });
  return { ready: waitInBackground(ready(kcm, 'healthy (/healthz)', async () => {
    const crt = join(kcmCerts, 'kube-controller-manager.crt');
    if (!existsSync(crt)) return false;
    const r = await kubeRequest(`https://127.0.0.1:${kcmPort}/healthz`, { ca: readFileSync(crt, 'utf8') });
    return r.status === 200;
  }, 60_000)) };
}
