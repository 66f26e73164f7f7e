// Startup errors are one line a person can act on, and exit 1 — not a stack trace.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import YAML from 'yaml';
import { createNamespace, kubectl, requireEnv } from '../support/env.ts';
import { installCrd } from '../support/crd.ts';
import { testKube } from '../support/operator.ts';
import { freePort } from '../harness/proc.ts';
import { startKube } from '../harness/kube.ts';

const dir = mkdtempSync(join(tmpdir(), 'pgco-startup-'));
let ns: { name: string; cleanup(): Promise<void> };

interface Kubeconfig { clusters: { cluster: { server: string } }[]; users: { user: Record<string, unknown> }[] }

function kubeconfigWith(change: (kc: Kubeconfig) => void): string {
  const kc = YAML.parse(readFileSync(requireEnv().kubeconfig, 'utf8')) as Kubeconfig;
  change(kc);
  const file = join(dir, `kubeconfig-${Math.random().toString(36).slice(2)}`);
  writeFileSync(file, YAML.stringify(kc));
  return file;
}

function runOperator(kubeconfig: string, env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, ['src/main.ts'], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, KUBECONFIG: kubeconfig, METRICS_BIND_ADDRESS: '127.0.0.1:0', ...env } });
  const lines = r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { level: number; msg: string });
  return { status: r.status, fatal: lines.find((l) => l.level === 60)?.msg ?? '', out: r.stdout + r.stderr };
}

before(async () => {
  await installCrd(testKube());
  ns = await createNamespace('e2e-start');
});
after(async () => ns?.cleanup());

test('API server unreachable', async () => {
  const port = await freePort(); // nothing listens there
  const r = runOperator(kubeconfigWith((kc) => { (kc.clusters[0] as { cluster: { server: string } }).cluster.server = `https://127.0.0.1:${port}`; }));
  assert.equal(r.status, 1);
  assert.match(r.fatal, new RegExp(`cannot reach the Kubernetes API at https://127\\.0\\.0\\.1:${port}: ECONNREFUSED; check KUBECONFIG`));
  assert.doesNotMatch(r.out, /\n\s+at /, 'no stack trace');
});

test('credentials refused', () => {
  const r = runOperator(kubeconfigWith((kc) => { (kc.users[0] as { user: Record<string, unknown> }).user = { token: 'not-a-valid-token' }; }));
  assert.equal(r.status, 1);
  assert.match(r.fatal, /refused our credentials \(401\)/);
});

test('forbidden: a ServiceAccount without RBAC is told what to grant', async () => {
  await kubectl(['create', 'serviceaccount', 'nobody', '-n', ns.name]);
  const token = (await kubectl(['create', 'token', 'nobody', '-n', ns.name])).trim();
  const r = runOperator(kubeconfigWith((kc) => { (kc.users[0] as { user: Record<string, unknown> }).user = { token }; }), { WATCH_NAMESPACE: ns.name });
  assert.equal(r.status, 1);
  assert.match(r.fatal, new RegExp(`forbidden to list pgclusters in namespace ${ns.name}: grant the operator's ServiceAccount list/watch`));
});

test('CRD not installed (a fresh control plane of its own, without the CRD)', async () => {
  const bare = await startKube({ dir: join(dir, 'bare-kube') });
  try {
    const r = runOperator(bare.kubeconfig);
    assert.equal(r.status, 1);
    assert.match(r.fatal, /the PgCluster CRD is not installed \(no pgcluster\.io\/v1alpha1 API\): kubectl apply -f manifests\/crd\//);
  } finally {
    await bare.stop();
  }
});

test('bad configuration', () => {
  const r = runOperator(requireEnv().kubeconfig, { WORKERS: 'many' });
  assert.equal(r.status, 1);
  assert.match(r.fatal, /WORKERS="many" must be a positive integer/);
});
