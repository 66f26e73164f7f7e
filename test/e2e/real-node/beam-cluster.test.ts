// The outcome users want: real BEAM nodes in real pods form one Erlang cluster through the operator. The app is
// examples/mounted-files/peer_watch.exs (Debian's Elixir, no Hex): it reads the peers from its mounted
// downward-API file and calls Node.connect/1 — real distribution, real epmd, a cookie from a Secret. A BEAM
// node outside Kubernetes (its own network namespace on the pods' bridge), announced the libcluster_postgres
// way, is published by the operator and every pod connects to it.
//
// Needs the real node of the test stack and `elixir` on this machine (apt-get install elixir).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startLibclusterNode, type LibclusterNode } from '../../harness/libcluster-node.ts';
import { startPostgres, type PostgresServer } from '../../harness/postgres.ts';
import { runCommand } from '../../harness/proc.ts';
import { createTestHost, TEST_HOST_IPS, type TestHost } from '../../harness/realnode.ts';
import { beamAppContainer, onRealNode, peersVolumes } from '../../harness/apps.ts';
import { appEvents, waitForBeamCluster } from '../../support/beam.ts';
import { createNamespace, kubectl, MOUNTED_FILE_SYNC_MS, REAL_NODE_TEST, requireRealNode, waitFor, type RealNodeEnv } from '../../support/env.ts';
import { startOperator, testKube, type OperatorProcess } from '../../support/operator.ts';
import type { KubeClient } from '../../../src/kube/client.ts';
import { isReady } from '../../harness/kube.ts';

const BASENAME = 'beam';
const CLUSTER = 'beam';
const CRD_FILE = join(import.meta.dirname, '..', '..', '..', 'manifests', 'crd', 'pgcluster.io_pgclusters.yaml');

interface PodJson {
  metadata: { name: string; deletionTimestamp?: string };
  status: { podIP?: string; conditions?: { type: string; status: string }[] };
}

let env: RealNodeEnv;
let kube: KubeClient;
let pgServer: PostgresServer;
let ns: Awaited<ReturnType<typeof createNamespace>>;
let operator: OperatorProcess | undefined;
let channel: string;
const cookie = randomBytes(24).toString('hex');

const nodeOf = (p: PodJson) => `${BASENAME}@${p.status.podIP}`;

async function livePods(): Promise<PodJson[]> {
  const list = await kube.get<{ items: PodJson[] }>(`/api/v1/namespaces/${ns.name}/pods?labelSelector=app%3D${BASENAME}`);
  return list.items.filter((p) => !p.metadata.deletionTimestamp);
}

/** The app's event lines ("<ms> <event> <args>"), from its log. */
const events = (pod: string) => appEvents(ns.name, pod);

/** Waits until `count` Ready app pods each have every other one (and `extra`) in Node.list(). */
const expectCluster = (what: string, count: number, extra: string[] = []): Promise<PodJson[]> =>
  waitForBeamCluster({ ns: ns.name, selector: `app=${BASENAME}`, basename: BASENAME, count, what, extra });

const deployment = (replicas: number, name = BASENAME, app = beamAppContainer({ basename: BASENAME, cookieSecret: 'beam-cookie', configMap: `${CLUSTER}-peers` }), labels: Record<string, string> = { app: BASENAME }) => ({
  apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name },
  spec: {
    replicas,
    selector: { matchLabels: labels },
    template: { metadata: { labels }, spec: { ...onRealNode, containers: [app], volumes: peersVolumes(`${CLUSTER}-peers`).volumes } },
  },
});

before(async () => {
  env = requireRealNode();
  if ((await runCommand('sh', ['-c', 'command -v elixir'])).code !== 0) {
    throw new Error('this test runs a BEAM node outside Kubernetes and needs elixir on this machine: apt-get install elixir');
  }
  kube = testKube();
  pgServer = await startPostgres({ extraListen: { address: env.hostIp, clientCidr: env.podCidr } });
  ns = await createNamespace('beam');
  channel = `${ns.name.replace(/-/g, '_')}_${CLUSTER}`;
  await kubectl(['apply', '--server-side', '--force-conflicts', '--field-manager=beam-test', '-f', CRD_FILE]);
  await waitFor(async () => (await kubectl(['get', 'crd', 'pgclusters.pgcluster.io', '-o', 'jsonpath={.status.conditions[?(@.type=="Established")].status}'])) === 'True',
    { message: 'the CRD Established' });
  operator = await startOperator({ namespaces: [ns.name] });
  await kubectl(['create', 'secret', 'generic', 'beam-cookie', `--from-literal=cookie=${cookie}`], { ns: ns.name });
  const url = new URL(pgServer.url);
  url.hostname = env.hostIp;
  await kubectl(['create', 'secret', 'generic', 'beam-db', `--from-literal=url=${url.toString()}`], { ns: ns.name });
  await kubectl(['apply', '-f', '-'], { ns: ns.name, input: JSON.stringify({
    apiVersion: 'pgcluster.io/v1alpha1', kind: 'PgCluster', metadata: { name: CLUSTER },
    spec: { selector: { matchLabels: { app: BASENAME } }, postgres: { urlSecretRef: { name: 'beam-db' } }, channel, heartbeatInterval: '2s' },
  }) });
});

after(async () => {
  await kubectl(['delete', 'deployment,pod', '--all', '--wait=false'], { ns: ns.name }).catch(() => {});
  await operator?.stop();
  await kubectl(['patch', 'pgcluster', CLUSTER, '--type=merge', '-p', '{"metadata":{"finalizers":null}}'], { ns: ns.name }).catch(() => {});
  await ns?.cleanup();
  await pgServer?.destroy();
});

test('three BEAM pods form one cluster from the mounted peers file', REAL_NODE_TEST, async () => {
  await kubectl(['apply', '-f', '-'], { ns: ns.name, input: JSON.stringify(deployment(3)) });
  await expectCluster('3 replicas', 3);
});

test('scaled to 5: all five connected to each other', REAL_NODE_TEST, async () => {
  await kubectl(['scale', 'deployment', BASENAME, '--replicas=5'], { ns: ns.name });
  await expectCluster('5 replicas', 5);
});

test('a deleted pod leaves every file; the survivors stay connected to each other', REAL_NODE_TEST, async () => {
  const before = await livePods();
  const victim = before[0]!;
  const gone = nodeOf(victim);
  const t0 = Date.now();
  await kubectl(['delete', 'pod', victim.metadata.name, '--wait=false'], { ns: ns.name });
  // The Deployment replaces it; the replacement joins the others.
  const afterDelete = await expectCluster('after a pod was deleted', 5);
  for (const p of afterDelete) {
    const file = (await kubectl(['exec', p.metadata.name, '--', 'cat', '/etc/pgcluster/annotation/peers'], { ns: ns.name })).split(',');
    assert.ok(!file.includes(gone), `${gone} is still in the file of ${p.metadata.name}`);
  }
  // Survivors lost only the deleted node: no connection between two survivors went down.
  const survivors = before.slice(1).map((p) => p.metadata.name);
  for (const pod of survivors) {
    const downs = (await events(pod)).filter((e) => e.event === 'disconnected' && e.at >= t0).map((e) => e.arg);
    assert.deepEqual([...new Set(downs)], [gone], `${pod} lost connections other than ${gone}`);
  }
});

test('a BEAM node outside Kubernetes, announced the libcluster_postgres way, is connected from every pod', REAL_NODE_TEST, async () => {
  const ip = TEST_HOST_IPS[0]!;
  const outside = `outside@${ip}`;
  let host: TestHost | undefined;
  let beam: ChildProcess | undefined;
  let sim: LibclusterNode | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'pgco-outside-'));
  let log = '';
  try {
    host = await createTestHost(ip);
    // Its own peers file holds only itself: it waits for the pods to connect (and does not warn).
    writeFileSync(join(dir, 'peers'), outside);
    beam = spawn(host.exec[0]!, [...host.exec.slice(1), 'elixir', '--name', outside, '--cookie', cookie, join(import.meta.dirname, '..', '..', '..', 'examples', 'mounted-files', 'peer_watch.exs')], {
      env: { ...process.env, HOME: dir, PEERS_FILES: join(dir, 'peers'), ELIXIR_ERL_OPTIONS: '+fnu +S 1' }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    beam.stdout?.on('data', (b: Buffer) => { log += b.toString(); });
    beam.stderr?.on('data', (b: Buffer) => { log += b.toString(); });
    await waitFor(() => log.includes(`started ${outside}`), { timeoutMs: 60_000, message: `the outside BEAM node to start (log: ${log})` });
    // A bare `name@host` NOTIFY every 5 s from connections of its own, as libcluster_postgres does.
    sim = await startLibclusterNode(pgServer.url, channel, outside, 5_000);
    const pods = await expectCluster('with the outside node', 5, [outside]);
    for (const p of pods) {
      assert.match(log, new RegExp(`connected ${nodeOf(p).replace(/\./g, '\\.')}\\b`), `the outside node saw ${nodeOf(p)} connect`);
    }
  } finally {
    await sim?.stop();
    beam?.kill('SIGKILL');
    await host?.remove(); // kills its epmd by PID too
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a pod started under the wrong node name says so; the others keep trying to reach it without crashing', REAL_NODE_TEST, async () => {
  // The classic libcluster failure: the app's name differs from the one the operator publishes for its pod.
  const wrong = deployment(1, `${BASENAME}-wrong`,
    beamAppContainer({ basename: 'other', cookieSecret: 'beam-cookie', configMap: `${CLUSTER}-peers`, env: [{ name: 'OWN_NAME_GRACE_MS', value: '3000' }] }),
    { app: BASENAME, variant: 'wrong' });
  await kubectl(['apply', '-f', '-'], { ns: ns.name, input: JSON.stringify(wrong) });
  const pod = await waitFor(async () => {
    const list = await kube.get<{ items: PodJson[] }>(`/api/v1/namespaces/${ns.name}/pods?labelSelector=variant%3Dwrong`);
    return list.items.find((p) => isReady(p) && p.status.podIP);
  }, { timeoutMs: 60_000, message: 'the misnamed pod Ready' });
  const warning = await waitFor(async () => (await events(pod.metadata.name)).find((e) => e.event === 'warning'),
    { timeoutMs: 60_000, message: 'the misnamed pod to warn' });
  assert.match(warning.arg, new RegExp(`other@${pod.status.podIP!.replace(/\./g, '\\.')} is not in .*Start the node with --name set to exactly the name the operator publishes`));
  // The others have beam@<its IP> in their files and cannot connect (wrong name): they keep running.
  await waitFor(async () => {
    for (const p of await livePods()) {
      if (p.metadata.name === pod.metadata.name) continue;
      const file = await kubectl(['exec', p.metadata.name, '--', 'cat', '/etc/pgcluster/annotation/peers'], { ns: ns.name });
      if (!file.split(',').includes(nodeOf(pod))) return false;
    }
    return true;
  }, { timeoutMs: MOUNTED_FILE_SYNC_MS, message: 'the misnamed pod announced under its pod name in every file' });
  const restarts = await kubectl(['get', 'pods', '-l', `app=${BASENAME}`, '-o', 'jsonpath={.items[*].status.containerStatuses[0].restartCount}'], { ns: ns.name });
  assert.ok(restarts.split(' ').every((r) => r === '0'), `an app pod restarted: ${restarts}`);
  await kubectl(['delete', 'deployment', `${BASENAME}-wrong`], { ns: ns.name });
});
