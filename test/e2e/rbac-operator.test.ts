// RBAC is real: the operator runs with the bearer token of the chart's ServiceAccount, bound only by the
// chart's own Role, and the whole flow works with nothing forbidden; without one rule it visibly breaks.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import YAML from 'yaml';
import { createNamespace, kubectl, lockStack, requireEnv, runBin, waitFor } from '../support/env.ts';
import { installCrd } from '../support/crd.ts';
import {
  condition, configMapPeers, createPgCluster, createPod, createSecret, getPgCluster, podAnnotation, startOperator,
  testKube, waitForPeers, type OperatorProcess,
} from '../support/operator.ts';
import { paths } from '../../src/kube/resources.ts';
import { READINESS_GATE } from '../../src/core/spec.ts';

const kube = testKube();
const namespaces: { name: string; cleanup(): Promise<void> }[] = [];
const ops: OperatorProcess[] = [];
let kubeconfig = '';

/** The chart's RBAC for a release in pgcluster-system watching `ns` (no cluster-wide grant at all). */
async function chartRbac(ns: string): Promise<Record<string, unknown>[]> {
  const version = JSON.parse(await kubectl(['version', '-o', 'json'])) as { serverVersion: { gitVersion: string } };
  const r = await runBin('helm', ['template', 'pgcluster-operator', 'charts/pgcluster-operator', '--namespace', 'pgcluster-system',
    '--kube-version', version.serverVersion.gitVersion, '--set', `watchNamespaces={${ns}}`, '--set', 'image.repository=registry.example.com/pgcluster-operator',
    // The operator here runs without leader election (and its Lease rules, tested in chart.test.ts).
    '--set', 'leaderElection.enabled=false', '--show-only', 'templates/rbac.yaml']);
  return YAML.parseAllDocuments(r.stdout).map((d) => d.toJSON() as Record<string, unknown>).filter(Boolean);
}

let unlock: (() => void) | undefined;

before(async () => {
  // The ServiceAccount's grants are the stack's: chart.test.ts binds the chart's ClusterRole to it for a while,
  // which would give back what the second test here takes away.
  unlock = await lockStack('operator-sa');
  await installCrd(kube);
  const env = requireEnv();
  const token = process.env.PGCO_OPERATOR_TOKEN;
  assert.ok(token, 'PGCO_OPERATOR_TOKEN is set by the test stack');
  const kc = YAML.parse(readFileSync(env.kubeconfig, 'utf8')) as { users: { user: Record<string, unknown> }[] };
  for (const u of kc.users) u.user = { token };
  kubeconfig = join(mkdtempSync(join(tmpdir(), 'pgco-rbac-')), 'kubeconfig');
  writeFileSync(kubeconfig, YAML.stringify(kc));
});
after(async () => {
  for (const op of ops) await op.stop();
  unlock?.();
  for (const ns of namespaces) await ns.cleanup();
});

async function setup(prefix: string, dropPodPatch: boolean): Promise<{ ns: string; op: OperatorProcess }> {
  const ns = await createNamespace(prefix);
  namespaces.push(ns);
  const docs = await chartRbac(ns.name);
  assert.deepEqual(docs.map((d) => d.kind).sort(), ['Role', 'RoleBinding']);
  if (dropPodPatch) {
    const role = docs.find((d) => d.kind === 'Role') as { rules: { resources: string[]; verbs: string[] }[] };
    for (const r of role.rules) if (r.resources.includes('pods')) r.verbs = r.verbs.filter((v) => v !== 'patch');
  }
  await kubectl(['apply', '-f', '-'], { input: docs.map((d) => YAML.stringify(d)).join('---\n') });
  await createSecret(kube, ns.name, 'db', { url: requireEnv().databaseUrl });
  await createPod(kube, ns.name, { name: 'r-1', labels: { app: 'r' }, ip: '10.95.0.1' });
  await createPod(kube, ns.name, { name: 'r-2', labels: { app: 'r' }, ip: '10.95.0.2' });
  const op = await startOperator({ namespaces: [ns.name], env: { KUBECONFIG: kubeconfig } });
  ops.push(op);
  await createPgCluster(kube, ns.name, 'r', { selector: { matchLabels: { app: 'r' } }, postgres: { urlSecretRef: { name: 'db' } }, channel: `${ns.name.replace(/-/g, '_')}_r`, heartbeatInterval: '1s' });
  return { ns: ns.name, op };
}

test('with exactly the chart\'s Role, the whole flow works and nothing is forbidden', async () => {
  const { ns, op } = await setup('e2e-rbac', false);
  await waitForPeers(kube, ns, 'r-peers', ['r-1', 'r-2'], ['r@10.95.0.1', 'r@10.95.0.2']);
  await waitFor(async () => condition(await getPgCluster(kube, ns, 'r'), 'Ready')?.status === 'True', { message: 'Ready True' });
  // The readiness gate: its condition through pods/status, granted by the namespace's Role.
  await createPod(kube, ns, { name: 'r-3', labels: { app: 'r' }, ip: '10.95.0.3', readinessGates: [READINESS_GATE], ready: false, containersReady: true });
  await waitFor(async () => {
    const p = await kube.get<{ status?: { conditions?: { type: string; status: string }[] } }>(paths.pod(ns, 'r-3'));
    return p.status?.conditions?.find((c) => c.type === READINESS_GATE)?.status === 'True';
  }, { message: `r-3's ${READINESS_GATE} True` });
  // A failure condition makes an Event: that needs events/create.
  await kube.patch(paths.pgcluster(ns, 'r'), { spec: { postgres: { urlSecretRef: { name: 'db', key: 'nope' } } } }, 'pgclusters');
  await waitFor(async () => /SecretKeyMissing/.test(await kubectl(['get', 'events', '-n', ns, '-o', 'jsonpath={.items[*].reason}'])), { message: 'a SecretKeyMissing Event' });
  // The finalizer path: annotations removed, ConfigMap deleted, finalizer dropped.
  await kube.delete(paths.pgcluster(ns, 'r'), 'pgclusters');
  await waitFor(async () => (await getPgCluster(kube, ns, 'r')) === undefined, { message: 'PgCluster finalized' });
  assert.equal(await configMapPeers(kube, ns, 'r-peers'), undefined);
  assert.equal(await podAnnotation(kube, ns, 'r-1'), undefined);
  assert.doesNotMatch(op.logs(), /forbidden|\b403\b/i, 'nothing was forbidden');
});

test('without pods/patch the annotations never appear and the log says forbidden', async () => {
  const { ns, op } = await setup('e2e-rbac-broken', true);
  await waitFor(async () => (await configMapPeers(kube, ns, 'r-peers'))?.length === 2, { message: 'the ConfigMap still works' });
  // The operator has tried to annotate and was refused: then no annotation can be there.
  await waitFor(() => /PATCH \/api\/v1\/namespaces\/[^/]+\/pods\/r-\d: 403 Forbidden/.test(op.logs()), { message: 'a refused pod PATCH in the log' });
  assert.equal(await podAnnotation(kube, ns, 'r-1'), undefined, 'no annotation without pods/patch');
});
