// `npm run demo [-- --duration SECONDS]`: the product's main job on an embedded default. Starts the local
// stack (kube-apiserver + etcd + kwok for pods with IPs, a throwaway Postgres), installs the CRD, creates
// a sample PgCluster and a handful of pods, runs the operator, and shows what it publishes as pods come
// and go and an Elixir-style node joins and leaves over Postgres. Ctrl-C cleans everything up.
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeClient } from '../src/kube/client.ts';
import { startStack, type Stack } from '../test/harness/stack.ts';
import { KWOK_NODE } from '../test/harness/kube.ts';
import { startLibclusterNode } from '../test/harness/libcluster-node.ts';
import { launchOperator, type LaunchedOperator } from '../test/support/launch.ts';
import { waitFor } from '../test/support/env.ts';
import { CRD_FILE, waitForCrdEstablished } from '../test/support/crd.ts';
import { createPgCluster, createPodObject, createSecret } from '../test/support/objects.ts';
import { paths } from '../src/kube/resources.ts';
import { errorMessage } from '../src/errors.ts';

const NS = 'demo';
const CHANNEL = 'chat_cluster';

function parseArgs(argv: string[]): { durationS: number | undefined } {
  const i = argv.indexOf('--duration');
  if (i === -1) return { durationS: undefined };
  const n = Number(argv[i + 1]);
  if (!Number.isFinite(n) || n <= 0) throw new Error('--duration takes a number of seconds, e.g. --duration 60');
  return { durationS: n };
}

const say = (s: string) => console.log(s);
const heading = (s: string) => say(`\n\x1b[1m== ${s}\x1b[0m`);

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((res, rej) => {
    const c = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    c.stderr.on('data', (b: Buffer) => { out += b.toString(); });
    c.on('error', rej);
    c.on('exit', (code) => (code === 0 ? res(out) : rej(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${out}`))));
  });
}

async function main(): Promise<void> {
  const { durationS } = parseArgs(process.argv.slice(2));
  const dir = mkdtempSync(join(tmpdir(), 'pgco-demo-'));
  chmodSync(dir, 0o755); // Postgres runs as its own OS user and must reach its data dir inside

  let stack: Stack | undefined;
  let operator: LaunchedOperator | undefined;
  let foreign: { stop(): Promise<void> } | undefined;
  let cleaning: Promise<void> | undefined;
  const cleanup = () => (cleaning ??= (async () => {
    heading('cleaning up');
    await foreign?.stop().catch(() => {});
    await operator?.stop();
    await stack?.stop();
    rmSync(dir, { recursive: true, force: true });
    say('stopped the operator, the control plane and Postgres; removed ' + dir);
  })());
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => void cleanup().finally(() => process.exit(0)));

  heading('starting the local stack (kube-apiserver, etcd, kwok, a throwaway Postgres)');
  const t0 = Date.now();
  stack = await startStack({ dir, kwok: true, controllerManager: false, promtool: false, prometheus: false });
  say(`up in ${((Date.now() - t0) / 1000).toFixed(1)} s. In another shell:  source ${join(dir, 'env')}  (then kubectl get pgc -n ${NS})`);
  const env = { ...process.env, ...stack.env };
  const kubectl = (...args: string[]) => run(join(stack!.kube.binDir, 'kubectl'), args, env);
  const kc = new KubeConfig();
  kc.loadFromFile(stack.kube.kubeconfig);
  const kube = new KubeClient(kc);

  heading('installing the CRD and a sample PgCluster');
  await kubectl('apply', '-f', CRD_FILE);
  await waitForCrdEstablished(kube);
  await kubectl('create', 'namespace', NS);
  await createSecret(kube, NS, 'chat-db', { url: stack.postgres.url });
  await createPgCluster(kube, NS, 'chat', { selector: { matchLabels: { app: 'chat' } }, postgres: { urlSecretRef: { name: 'chat-db' } }, channel: CHANNEL, heartbeatInterval: '2s', peerTimeout: '6s' });
  say(await kubectl('get', 'pgcluster', 'chat', '-n', NS, '-o', 'yaml'));

  heading('starting the operator (logs: ' + join(dir, 'operator.log') + ')');
  operator = await launchOperator({ kubeconfig: stack.kube.kubeconfig, namespaces: [NS], logFile: join(dir, 'operator.log'), env: stack.env });
  say(`metrics: curl -s ${operator.metricsUrl} | grep ^pgcluster_`);

  const startPod = (i: number) => createPodObject(kube, NS, { name: `chat-${i}`, labels: { app: 'chat' }, node: KWOK_NODE, image: 'elixir-app:demo', gracePeriodSeconds: 30 });
  const show = async (what: string) => {
    heading(what);
    say('$ kubectl get pgclusters -n demo -o wide');
    say((await kubectl('get', 'pgclusters', '-n', NS, '-o', 'wide')).trimEnd());
    say('$ kubectl get configmap chat-peers -n demo -o jsonpath={.data.peers}');
    say((await kubectl('get', 'configmap', 'chat-peers', '-n', NS, '-o', 'jsonpath={.data.peers}').catch(() => '(not yet)')).trimEnd());
    say('$ kubectl get pods -n demo -o custom-columns=POD:.metadata.name,IP:.status.podIP,PEERS:.metadata.annotations.pgcluster\\.io/peers');
    say((await kubectl('get', 'pods', '-n', NS, '-o', 'custom-columns=POD:.metadata.name,IP:.status.podIP,PEERS:.metadata.annotations.pgcluster\\.io/peers')).trimEnd());
  };

  // Each step, then what the PgCluster's status must show once the operator has followed it.
  const steps: [string, () => Promise<void>, { members: number; peers: number }][] = [
    ['3 pods start (kwok makes them Running and Ready with an IP)', async () => { for (const i of [0, 1, 2]) await startPod(i); }, { members: 3, peers: 3 }],
    ['an Elixir node running libcluster_postgres joins over Postgres (NOTIFY its name every 2 s)', async () => { foreign = await elixirNode(stack!.postgres.url); }, { members: 3, peers: 4 }],
    ['a 4th pod starts', async () => { await startPod(3); }, { members: 4, peers: 5 }],
    ['pod chat-0 is deleted', async () => { await kube.request('DELETE', paths.pod(NS, 'chat-0'), { body: { gracePeriodSeconds: 0 } }); }, { members: 3, peers: 4 }],
    ['the Elixir node stops: it expires after peerTimeout (6 s)', async () => { await foreign?.stop(); foreign = undefined; }, { members: 3, peers: 3 }],
  ];
  const deadline = durationS ? Date.now() + durationS * 1000 : Infinity;
  for (const [what, act, want] of steps) {
    if (Date.now() > deadline) break;
    await act();
    await waitFor(async () => {
      const s = (await kube.getOptional<{ status?: { members?: number; peers?: number } }>(`${paths.pgcluster(NS, 'chat')}`))?.status;
      return s?.members === want.members && s.peers === want.peers;
    }, { timeoutMs: 30_000, intervalMs: 200, message: `${want.members} members and ${want.peers} peers after: ${what}` });
    await show(what);
  }
  if (durationS === undefined) {
    heading('the demo keeps running: try it yourself in another shell, Ctrl-C here to stop and clean up');
    say(`  source ${join(dir, 'env')}`);
    say(`  kubectl -n ${NS} delete pod chat-1          # watch it leave`);
    say(`  kubectl -n ${NS} get pgc -w`);
    await new Promise(() => {});
  }
  await cleanup();
}

/** An Elixir node running libcluster_postgres (its wire behaviour), narrating what it hears. */
async function elixirNode(url: string): Promise<{ stop(): Promise<void> }> {
  const self = 'elixir@192.0.2.10';
  const node = await startLibclusterNode(url, CHANNEL, self, 2_000);
  const told = new Set<string>([self]);
  node.onHeard((p) => {
    if (told.has(p)) return;
    told.add(p);
    say(`   [${self} heard ${p} on ${CHANNEL}: it would Node.connect/1 to it]`);
  });
  return node;
}

main().catch((err: unknown) => {
  console.error(`demo failed: ${errorMessage(err)}`);
  process.exit(1);
});
