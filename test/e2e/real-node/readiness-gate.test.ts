// Rollouts paced by discovery (docs/readiness-gate.md): real BEAM pods of examples/mounted-files in
// a Deployment (maxSurge 1, maxUnavailable 0) whose pods list the readiness gate pgcluster.io/published and hold
// SIGTERM back with a preStop sleep. A rollout replaces every pod; a watch of the pods and the ConfigMap and
// each pod's logs (its app's events, and a sidecar that logs its mounted files' changes every 50 ms) show that
//  - no pod's gate was set True before the ConfigMap and every Ready member's annotation listed it, in the
//    order of the writes themselves (etcd revisions), whatever the timing;
//  - every Ready member's mounted files listed each new pod (when, against its Ready, is reported: a kubelet race);
//  - every pod that left was gone from its peers' files before they saw its node disconnect (leaving first;
//    asserted for some peer of each, reported for all: the kubelet's refresh under load decides the rest).
//
// Needs the real node of the test stack.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startPostgres, type PostgresServer } from '../../harness/postgres.ts';
import { beamDeployment, fileWatcherContainer } from '../../harness/apps.ts';
import { clusteredNow, gateAfterOutputs, joinChecks, leaveChecks, PodRecorder, rolloutDone } from '../../harness/rollout.ts';
import { createNamespace, kubectl, MOUNTED_FILE_SYNC_MS, REAL_NODE_TEST, requireRealNode, waitFor, type RealNodeEnv } from '../../support/env.ts';
import { startOperator, testKube, type OperatorProcess } from '../../support/operator.ts';
import type { KubeClient } from '../../../src/kube/client.ts';

const BASENAME = 'gate';
const CLUSTER = 'gate';
const REPLICAS = 3;
const CRD_FILE = join(import.meta.dirname, '..', '..', '..', 'manifests', 'crd', 'pgcluster.io_pgclusters.yaml');

let env: RealNodeEnv;
let kube: KubeClient;
let pgServer: PostgresServer;
let ns: Awaited<ReturnType<typeof createNamespace>>;
let operator: OperatorProcess | undefined;
let recorder: PodRecorder | undefined;

// The preStop sleep (5 s, what the README shows) holds SIGTERM back while the operator takes a leaving pod out
// of every file and the kubelet refreshes the survivors' files (3 s was not enough at load average 17 in CI).
const deployment = beamDeployment({
  name: BASENAME, replicas: REPLICAS, basename: BASENAME, cookieSecret: 'gate-cookie', configMap: `${CLUSTER}-peers`, gated: true, preStopSeconds: 5,
  sidecars: [fileWatcherContainer('files', `${CLUSTER}-peers`, 0.05)],
});

before(async () => {
  env = requireRealNode();
  kube = testKube();
  pgServer = await startPostgres({ extraListen: { address: env.hostIp, clientCidr: env.podCidr } });
  ns = await createNamespace('gate');
  await kubectl(['apply', '--server-side', '--force-conflicts', '--field-manager=gate-test', '-f', CRD_FILE]);
  await waitFor(async () => (await kubectl(['get', 'crd', 'pgclusters.pgcluster.io', '-o', 'jsonpath={.status.conditions[?(@.type=="Established")].status}'])) === 'True',
    { message: 'the CRD Established' });
  operator = await startOperator({ namespaces: [ns.name] });
  await kubectl(['create', 'secret', 'generic', 'gate-cookie', `--from-literal=cookie=${randomBytes(24).toString('hex')}`], { ns: ns.name });
  const url = new URL(pgServer.url);
  url.hostname = env.hostIp;
  await kubectl(['create', 'secret', 'generic', 'gate-db', `--from-literal=url=${url.toString()}`], { ns: ns.name });
  // Every output on: the gate waits for the ConfigMap, each member's annotation and the DNS output's slices.
  await kubectl(['apply', '-f', '-'], { ns: ns.name, input: JSON.stringify({
    apiVersion: 'pgcluster.io/v1alpha1', kind: 'PgCluster', metadata: { name: CLUSTER },
    spec: { selector: { matchLabels: { app: BASENAME } }, postgres: { urlSecretRef: { name: 'gate-db' } }, heartbeatInterval: '2s', output: { service: {} } },
  }) });
  recorder = new PodRecorder({ kube, ns: ns.name, labelSelector: `app=${BASENAME}`, basename: BASENAME, kubectl: join(env.binDir, 'kubectl'), kubeconfig: env.kubeconfig, appContainer: 'app', filesContainer: 'files', annotation: 'pgcluster.io/peers', configMap: `${CLUSTER}-peers` });
  await recorder.start();
});

after(async () => {
  await recorder?.stop();
  await kubectl(['delete', 'deployment,pod', '--all', '--wait=false'], { ns: ns.name }).catch(() => {});
  await operator?.stop();
  await kubectl(['patch', 'pgcluster', CLUSTER, '--type=merge', '-p', '{"metadata":{"finalizers":null}}'], { ns: ns.name }).catch(() => {});
  await ns?.cleanup();
  await pgServer?.destroy();
});

/** The pods not being deleted: exactly `count`, all Ready, each with every other one in its Node.list(). */
async function clustered(what: string, count: number): Promise<void> {
  let detail = '';
  await waitFor(() => {
    const c = clusteredNow(recorder!.pods.values(), count);
    detail = c.detail;
    return c.ok;
  }, { timeoutMs: MOUNTED_FILE_SYNC_MS, intervalMs: 250, message: `${what}: ${count} Ready pods, each connected to the others (${detail})` });
}

test('a rolling update with the gate: each gate set after every output listed its pod, every member\'s files list each new pod, leaving pods leave the files first (the files\' margins reported)', REAL_NODE_TEST, async () => {
  await kubectl(['apply', '-f', '-'], { ns: ns.name, input: JSON.stringify(deployment) });
  await clustered('created', REPLICAS);
  const before = new Set(recorder!.pods.keys());

  const t0 = Date.now();
  await kubectl(['patch', 'deployment', BASENAME, '--type=merge', '-p', JSON.stringify({ spec: { template: { metadata: { annotations: { 'test/rollout': String(t0) } } } } })], { ns: ns.name });
  await waitFor(() => rolloutDone(kube, ns.name, BASENAME, REPLICAS, recorder!.pods, before), { timeoutMs: 480_000, intervalMs: 500, message: 'the rollout complete: every pod replaced' });
  await clustered('rolled', REPLICAS);

  const gates = gateAfterOutputs(recorder!.pods.values(), recorder!.configMap, 0);
  const joins = joinChecks(recorder!.pods.values(), 0);
  const leaves = leaveChecks(recorder!.pods.values(), t0);
  const fmt = (xs: { member: string; ms: number | undefined }[]) => xs.map((x) => `${x.member} ${x.ms === undefined ? 'never' : `${x.ms} ms`}`).join(', ');
  const report = [
    ...joins.map((j) => {
      const gateAt = recorder!.pods.get(j.pod)?.gateTrueAt;
      return `join ${j.pod} (${j.node}): gate True ${gateAt === undefined ? 'never seen' : `${j.readyAt - gateAt} ms`} before Ready; files listed it, relative to its Ready: ${fmt(j.margins) || 'no other Ready member'}`;
    }),
    ...leaves.map((l) => `leave ${l.pod} (${l.node}): files dropped it before the disconnect by: ${fmt(l.leads) || 'no peer saw it go'}`),
    ...gates.map((g) => `gate ${g.pod}: ${g.late.length ? `True before ${g.late.join(', ')} listed it` : 'True after the ConfigMap and every Ready member\'s annotation listed it'}`),
  ].join('\n');
  process.stderr.write(`${report}\n`);

  // The order of the writes (etcd revisions): the gate after the outputs that list the pod.
  assert.equal(gates.length, 2 * REPLICAS, `every pod's gate was seen True:\n${report}`);
  assert.deepEqual(gates.filter((g) => g.late.length), [], `no gate True before the outputs listed its pod:\n${report}`);
  // What the apps see: their mounted files, against the moment the new pod was Ready.
  assert.equal(joins.length, 2 * REPLICAS, `every pod's Ready was seen:\n${report}`);
  const rolloutJoins = joins.filter((j) => !before.has(j.pod));
  assert.ok(rolloutJoins.every((j) => j.margins.length >= REPLICAS - 1), `each new pod became Ready beside the others:\n${report}`);
  // What the apps' files show when a new pod turns Ready is reported, not asserted: the gate orders the API
  // writes (checked above), and that the members' files follow first is a race between the kubelet's pod
  // workers (a file refresh after an annotation write against a condition turned into Ready), which a loaded
  // machine loses: in CI at load average 10-17 a file listed a pod up to 2.0 s after it was Ready, in 3 of 9
  // joins, while on a quiet machine every file led by 0.2-2.0 s. docs/readiness-gate.md says so.
  const early = rolloutJoins.flatMap((j) => j.margins.filter((m) => m.ms === undefined || m.ms > 0).map((m) => `${j.pod} Ready before ${m.member}'s files listed it (${m.ms ?? 'never'})`));
  process.stderr.write(`rollout joins whose Ready came before a member's files listed them: ${early.length ? early.join('; ') : 'none'}\n`);
  assert.ok(rolloutJoins.every((j) => j.margins.every((m) => m.ms !== undefined)), `every Ready member's files listed each new pod:\n${report}`);

  // What it cost: one pods/status PATCH per change of a gate, none that changed nothing. A pod that joins
  // normally costs one (True); one whose containers stop being ready a while (a readiness probe timing out on a
  // loaded node: CI at 23cd669 saw two such flips) costs one more each way.
  const gateChanges = [...recorder!.pods.values()].map((p) => ({ pod: p.name, changes: p.gate.map((g) => `${g.status}/${g.reason}`), ready: p.ready.map((r) => r.ready) }));
  const changes = gateChanges.reduce((n, p) => n + p.changes.length, 0);
  const history = gateChanges.map((p) => `${p.pod}: gate ${p.changes.join(' -> ') || 'never set'}; Ready ${p.ready.join(' -> ')}`).join('\n');
  assert.equal(await operator!.metric('pgcluster_kube_writes_total', { resource: 'pods/status' }), changes, `pods/status PATCHes, one per change of a gate:\n${history}`);
  assert.ok(gateChanges.every((p) => p.changes[0] === 'True/Published'), `each pod's first gate write was True, when it was in every output:\n${history}`);

  assert.equal(leaves.length, REPLICAS, `every old pod left:\n${report}`);
  assert.ok(leaves.every((l) => l.leads.length > 0), `each leaving pod was seen to go by a peer:\n${report}`);
  const late = leaves.flatMap((l) => l.leads.filter((x) => x.ms === undefined || x.ms <= 0).map((x) => `${x.member} saw ${l.pod} go before its files dropped it (${x.ms ?? 'never'})`));
  // Whether every peer's files dropped it first depends on the kubelet refreshing them within the preStop
  // sleep, which a loaded node does not always do (a member's file once kept a leaving pod past the end of the
  // recording): reported; that leaving first works at all is asserted, by the peers whose files did drop it.
  process.stderr.write(`leaves a peer saw go before its files dropped them: ${late.length ? late.join('; ') : 'none'}\n`);
  assert.ok(leaves.every((l) => l.leads.some((x) => x.ms !== undefined && x.ms > 0)), `each leaving pod was out of a peer's files before that peer saw it go:\n${report}`);
});
