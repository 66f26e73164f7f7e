// Connections to the API server that die quietly (docs/operator.md, "Connections to the API server"): a relay between the
// operator and the real kube-apiserver stops moving bytes on every connection open at that moment, without FIN
// or RST — what a NAT, conntrack or load-balancer drop looks like — while new connections go through. The
// operator must find its dead connections (HTTP/2 PINGs), watch and write again on fresh ones, and keep its
// Lease, without a restart. Before the PINGs, the watches ended only at undici's 300 s body timeout.
// Also: API Priority and Fairness rejecting the operator (429), a rotated token file, and an API server restart.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { createNamespace, kubectl, requireEnv, runBin, waitFor } from '../support/env.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { KubeConfig } from '@kubernetes/client-node';
import { CRD_FILE, installCrd, waitForCrdEstablished } from '../support/crd.ts';
import { startKube, type KubeStack } from '../harness/kube.ts';
import { KubeClient, MAX_THROTTLED_RETRIES } from '../../src/kube/client.ts';
import { configMapPeers, createPgCluster, createPod, getPgCluster, startOperator, testKube, type OperatorProcess } from '../support/operator.ts';
import { startRelay, type Relay } from '../support/relay.ts';

const kube = testKube();

/** The stack's kubeconfig with its server address replaced by `address` (the certificate names 127.0.0.1). */
function kubeconfigVia(address: string, file: string): string {
  const doc = parse(readFileSync(requireEnv().kubeconfig, 'utf8')) as { clusters: { cluster: { server: string } }[] };
  for (const c of doc.clusters) c.cluster.server = `https://${address}`;
  writeFileSync(file, stringify(doc), { mode: 0o600 });
  return file;
}

interface LeaseJson { spec: { holderIdentity?: string; leaseTransitions?: number } }

describe('API connections that die quietly', () => {
  let relay: Relay;
  let ns: { name: string; cleanup(): Promise<void> };
  let op: OperatorProcess;
  const times: number[] = [];

  before(async () => {
    await installCrd(kube);
    ns = await createNamespace('e2e-freeze');
    const server = new URL(kube.server);
    relay = await startRelay({ host: server.hostname, port: Number(server.port) });
    const kubeconfig = kubeconfigVia(relay.address, join(requireEnv().stackDir, `kubeconfig-relay-${ns.name}`));
    op = await startOperator({
      namespaces: [ns.name], kubeconfig,
      env: { LEADER_ELECT: 'true', LEADER_ELECTION_NAMESPACE: ns.name, LEADER_ELECTION_ID: 'freeze', POD_NAME: 'op-freeze' },
    });
    // No Postgres here: the outputs list the members (Connected False), which is all this file needs.
    await createPod(kube, ns.name, { name: 'fz-0', labels: { app: 'fz' }, ip: '127.0.70.10' });
    await createPgCluster(kube, ns.name, 'fz', { selector: { matchLabels: { app: 'fz' } }, postgres: { urlSecretRef: { name: 'none' } }, channel: 'fz' });
    await waitFor(async () => (await configMapPeers(kube, ns.name, 'fz-peers'))?.includes('fz@127.0.70.10'), { message: 'the first member published', timeoutMs: 30_000 });
  });
  after(async () => {
    await op?.stop();
    await relay?.close();
    await ns?.cleanup();
  });

  test('after a silent freeze of every open connection, a new pod is published and written on fresh connections; the Lease is kept', async (t) => {
    const lease = () => kube.get<LeaseJson>(`/apis/coordination.k8s.io/v1/namespaces/${ns.name}/leases/freeze`);
    const before = await lease();
    assert.equal(before.spec.holderIdentity, 'op-freeze');
    for (let i = 1; i <= 3; i++) {
      const accepted = relay.accepted();
      const frozen = relay.freeze();
      assert.ok(frozen >= 2, `connections frozen: ${frozen} (requests and watches)`);
      const t0 = performance.now();
      const node = `fz@127.0.70.${10 + i}`;
      await createPod(kube, ns.name, { name: `fz-${i}`, labels: { app: 'fz' }, ip: `127.0.70.${10 + i}` });
      await waitFor(async () => (await configMapPeers(kube, ns.name, 'fz-peers'))?.includes(node), {
        message: `${node} published after freeze ${i} (operator log: ${op.logs().split('\n').filter((l) => /PING|watch|failed|timed out|lease/i.test(l)).slice(-5).join(' | ')})`,
        // Less than the watches' 90 s silence limit: the PINGs must be what finds the dead connections.
        timeoutMs: 75_000,
      });
      times.push((performance.now() - t0) / 1000);
      // The status write after it went out too: writes work again.
      await waitFor(async () => (await getPgCluster(kube, ns.name, 'fz'))?.status?.members === i + 1, { message: `status members ${i + 1}`, timeoutMs: 30_000 });
      assert.ok(relay.accepted() > accepted, 'fresh connections were opened');
      assert.ok(op.alive(), 'no restart');
    }
    const after = await lease();
    assert.equal(after.spec.holderIdentity, 'op-freeze', 'the Lease is still ours');
    assert.equal(after.spec.leaseTransitions, before.spec.leaseTransitions, 'never lost, never taken again');
    t.diagnostic(`freeze -> published: ${times.map((s) => `${s.toFixed(1)} s`).join(', ')}`);
  });
});

/** A ServiceAccount of the namespace with cluster-admin (never system:masters: APF and token checks apply to it). */
async function serviceAccount(ns: string, name: string): Promise<{ user: string; cleanup(): Promise<void> }> {
  await kubectl(['create', 'serviceaccount', name], { ns });
  const binding = `${ns}-${name}`;
  await kubectl(['create', 'clusterrolebinding', binding, '--clusterrole=cluster-admin', `--serviceaccount=${ns}:${name}`]);
  return { user: `system:serviceaccount:${ns}:${name}`, cleanup: async () => void await kubectl(['delete', 'clusterrolebinding', binding, '--ignore-not-found']) };
}

/** A token of the ServiceAccount bound to Secret `secret`: deleting the Secret revokes it. */
async function boundToken(ns: string, sa: string, secret: string): Promise<string> {
  await kubectl(['create', 'secret', 'generic', secret], { ns });
  return (await kubectl(['create', 'token', sa, '--bound-object-kind=Secret', `--bound-object-name=${secret}`, '--duration=1h'], { ns })).trim();
}

/** The stack's kubeconfig, as `user` whose token is read from `tokenFile`. */
function kubeconfigWithTokenFile(tokenFile: string, file: string): string {
  const doc = parse(readFileSync(requireEnv().kubeconfig, 'utf8')) as { users: { name: string; user: Record<string, unknown> }[] };
  for (const u of doc.users) u.user = { tokenFile };
  writeFileSync(file, stringify(doc), { mode: 0o600 });
  return file;
}

describe('throttled by API Priority and Fairness (429)', () => {
  let ns: { name: string; cleanup(): Promise<void> };
  let sa: { user: string; cleanup(): Promise<void> };
  let op: OperatorProcess;
  const level = () => `pgco-squeeze-${ns.name}`;

  before(async () => {
    await installCrd(kube);
    ns = await createNamespace('e2e-apf');
    sa = await serviceAccount(ns.name, 'squeezed');
    const tokenFile = join(requireEnv().stackDir, `token-${ns.name}`);
    writeFileSync(tokenFile, await boundToken(ns.name, 'squeezed', 'squeezed-token'), { mode: 0o600 });
    op = await startOperator({ namespaces: [ns.name], kubeconfig: kubeconfigWithTokenFile(tokenFile, join(requireEnv().stackDir, `kubeconfig-${ns.name}`)) });
  });
  after(async () => {
    await op?.stop();
    await kubectl(['delete', 'flowschema,prioritylevelconfiguration', level(), '--ignore-not-found']).catch(() => '');
    await sa?.cleanup();
    await ns?.cleanup();
  });

  test('a squeezed operator waits out Retry-After and still publishes every member', async (t) => {
    // A priority level of its own with the smallest share and no queue: beyond ~3 requests at once, 429.
    await kubectl(['apply', '-f', '-'], { input: stringify({ apiVersion: 'flowcontrol.apiserver.k8s.io/v1', kind: 'PriorityLevelConfiguration', metadata: { name: level() },
      spec: { type: 'Limited', limited: { nominalConcurrencyShares: 1, lendablePercent: 0, limitResponse: { type: 'Reject' } } } }) });
    await kubectl(['apply', '-f', '-'], { input: stringify({ apiVersion: 'flowcontrol.apiserver.k8s.io/v1', kind: 'FlowSchema', metadata: { name: level() },
      spec: { priorityLevelConfiguration: { name: level() }, matchingPrecedence: 100, distinguisherMethod: { type: 'ByUser' },
        rules: [{ subjects: [{ kind: 'User', user: { name: sa.user } }],
          // Every verb but watch: a rejected watch is the informer's to start again (with its own backoff), so
          // every rejection counted below is one that KubeClient.request saw.
          resourceRules: [{ verbs: ['get', 'list', 'create', 'update', 'patch', 'delete', 'deletecollection'], apiGroups: ['*'], resources: ['*'], namespaces: ['*'], clusterScope: true }],
          nonResourceRules: [{ verbs: ['*'], nonResourceURLs: ['*'] }] }] } }) });
    const pods = Array.from({ length: 40 }, (_, i) => ({ name: `sq-${i}`, ip: `127.0.71.${i + 1}` }));
    const t0 = performance.now();
    await Promise.all(pods.map((p) => createPod(kube, ns.name, { name: p.name, labels: { app: 'sq' }, ip: p.ip })));
    await createPgCluster(kube, ns.name, 'sq', { selector: { matchLabels: { app: 'sq' } }, postgres: { urlSecretRef: { name: 'none' } }, channel: 'sq' });
    const want = pods.map((p) => `sq@${p.ip}`).sort();
    await waitFor(async () => JSON.stringify(await configMapPeers(kube, ns.name, 'sq-peers')) === JSON.stringify(want), { message: 'all 40 members published while throttled', timeoutMs: 120_000 });
    await waitFor(async () => {
      const all = await Promise.all(pods.map((p) => kube.get<{ metadata: { annotations?: Record<string, string> } }>(`/api/v1/namespaces/${ns.name}/pods/${p.name}`)));
      return all.every((p) => p.metadata.annotations?.['pgcluster.io/peers'] === want.join(','));
    }, { message: 'every pod annotated while throttled', timeoutMs: 120_000 });
    const seconds = (performance.now() - t0) / 1000;
    // The server's count first: a rejection it has counted has reached the operator, whose retry counter moves
    // as the answer arrives (before the wait), so reading ours second cannot miss one.
    const serverMetrics = await kubectl(['get', '--raw', '/metrics']);
    const ours = [...String(serverMetrics).matchAll(/^apiserver_flowcontrol_rejected_requests_total\{([^}]*)\} (\d+)/gm)]
      .filter((m) => m[1]!.includes(`priority_level="${level()}"`)).reduce((n, m) => n + Number(m[2]), 0);
    const throttled = await op.metric('pgcluster_kube_request_retries_total', { reason: 'throttled' });
    t.diagnostic(`40 members published and annotated in ${seconds.toFixed(1)} s while squeezed; ${throttled} throttled retries; the API server rejected ${ours} requests`);
    assert.ok(throttled > 0, 'the operator was throttled and retried after Retry-After');
    // No hot loop: every rejection was either waited out and retried (counted in `throttled`; the wait itself is
    // proven in test/unit/kube-client.test.ts) or was the last of a request that gave up after
    // MAX_THROTTLED_RETRIES waits. A failed write sent again at once, outside that path, breaks the equation.
    assert.ok(ours <= throttled + Math.floor(throttled / MAX_THROTTLED_RETRIES),
      `every 429 waited out: the API server rejected ${ours} requests, the operator waited out ${throttled} of them`);
  });
});

describe('a rotated token file', () => {
  let ns: { name: string; cleanup(): Promise<void> };
  let sa: { user: string; cleanup(): Promise<void> };
  let op: OperatorProcess;
  let tokenFile = '';

  before(async () => {
    await installCrd(kube);
    ns = await createNamespace('e2e-token');
    sa = await serviceAccount(ns.name, 'rotated');
    tokenFile = join(requireEnv().stackDir, `token-${ns.name}`);
    writeFileSync(tokenFile, await boundToken(ns.name, 'rotated', 'token-a'), { mode: 0o600 });
    op = await startOperator({ namespaces: [ns.name], kubeconfig: kubeconfigWithTokenFile(tokenFile, join(requireEnv().stackDir, `kubeconfig-${ns.name}`)) });
    await createPod(kube, ns.name, { name: 'tk-0', labels: { app: 'tk' }, ip: '127.0.72.1' });
    await createPgCluster(kube, ns.name, 'tk', { selector: { matchLabels: { app: 'tk' } }, postgres: { urlSecretRef: { name: 'none' } }, channel: 'tk' });
    await waitFor(async () => (await configMapPeers(kube, ns.name, 'tk-peers'))?.includes('tk@127.0.72.1'), { message: 'the first member published', timeoutMs: 30_000 });
  });
  after(async () => {
    await op?.stop();
    await sa?.cleanup();
    await ns?.cleanup();
  });

  test('the old token revoked and a new one written to the file: the operator reads it and goes on, without a restart', async () => {
    const pid = op.pid;
    const tokenA = readFileSync(tokenFile, 'utf8');
    writeFileSync(tokenFile, await boundToken(ns.name, 'rotated', 'token-b'), { mode: 0o600 });
    await kubectl(['delete', 'secret', 'token-a'], { ns: ns.name });
    // The API server refuses token A once it has seen its Secret go (its caches follow within moments).
    await waitFor(async () => (await runBin('kubectl', ['--token', tokenA, '-n', ns.name, 'get', 'configmaps'], { allowFail: true })).code !== 0, { message: 'token A refused', timeoutMs: 30_000 });
    await createPod(kube, ns.name, { name: 'tk-1', labels: { app: 'tk' }, ip: '127.0.72.2' });
    await waitFor(async () => (await configMapPeers(kube, ns.name, 'tk-peers'))?.includes('tk@127.0.72.2'), { message: 'a member that joined after the rotation published', timeoutMs: 60_000 });
    await waitFor(async () => (await getPgCluster(kube, ns.name, 'tk'))?.status?.members === 2, { message: 'status written with the new token', timeoutMs: 30_000 });
    assert.ok(await op.metric('pgcluster_kube_request_retries_total', { reason: 'token' }) >= 1, 'a request was refused and tried again with the token read anew');
    assert.equal(op.pid, pid);
    assert.ok(op.alive(), 'no restart');
  });
});

describe('the API server restarted (every connection closed)', () => {
  // A control plane of this file's own: the shared one's other tests must not see the outage.
  let dir = '';
  let own: KubeStack;
  let ownKube: KubeClient;
  let op: OperatorProcess;
  const ns = 'restart';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pgco-restart-'));
    own = await startKube({ dir });
    const kc = new KubeConfig();
    kc.loadFromFile(own.kubeconfig);
    ownKube = new KubeClient(kc);
    await runBin('kubectl', ['apply', '-f', CRD_FILE], { env: { KUBECONFIG: own.kubeconfig } });
    await waitForCrdEstablished(ownKube);
    await ownKube.create('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }, 'namespaces');
    // Without leader election: a leader that cannot renew for longer than its renew deadline (10 s) steps down
    // and exits by design, and a restart can take that long.
    op = await startOperator({ namespaces: [ns], kubeconfig: own.kubeconfig });
    await createPod(ownKube, ns, { name: 'rs-0', labels: { app: 'rs' }, ip: '127.0.73.1' });
    await createPgCluster(ownKube, ns, 'rs', { selector: { matchLabels: { app: 'rs' } }, postgres: { urlSecretRef: { name: 'none' } }, channel: 'rs' });
    await waitFor(async () => (await configMapPeers(ownKube, ns, 'rs-peers'))?.includes('rs@127.0.73.1'), { message: 'the first member published', timeoutMs: 30_000 });
  });
  after(async () => {
    await op?.stop();
    await ownKube?.close();
    await own?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('after a restart of kube-apiserver the operator watches and writes again, without a restart of its own', async (t) => {
    const pid = op.pid;
    const t0 = performance.now();
    await own.restartApiServer();
    const down = (performance.now() - t0) / 1000;
    await createPod(ownKube, ns, { name: 'rs-1', labels: { app: 'rs' }, ip: '127.0.73.2' });
    const t1 = performance.now();
    await waitFor(async () => (await configMapPeers(ownKube, ns, 'rs-peers'))?.includes('rs@127.0.73.2'), { message: 'a pod created after the restart published', timeoutMs: 90_000 });
    await waitFor(async () => (await getPgCluster(ownKube, ns, 'rs'))?.status?.members === 2, { message: 'status written after the restart', timeoutMs: 30_000 });
    t.diagnostic(`kube-apiserver down and back in ${down.toFixed(1)} s; a pod created then published ${((performance.now() - t1) / 1000).toFixed(1)} s later`);
    assert.equal(op.pid, pid);
    assert.ok(op.alive(), 'no restart of the operator');
  });
});
