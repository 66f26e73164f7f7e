// High availability: two replicas with leader election on a Lease; exactly one leads (only it writes and
// heartbeats), the standby takes over within the lease duration when the leader dies, and the outputs
// never lose a live member on the way.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { microTime } from '../../src/kube/lease.ts';
import { createNamespace, kubectl, requireEnv, waitFor } from '../support/env.ts';
import { createPgCluster, createPod, createSecret, startOperator, testKube, waitForPeers, type OperatorProcess } from '../support/operator.ts';

const kube = testKube();
let ns: { name: string; cleanup(): Promise<void> };
const ops: OperatorProcess[] = [];

before(async () => {
  await kubectl(['apply', '-f', 'manifests/crd/pgcluster.io_pgclusters.yaml']);
  ns = await createNamespace('e2e-ha');
});
after(async () => {
  for (const op of ops) await op.stop('SIGKILL');
  await ns?.cleanup();
});

test('MicroTime has six fractional digits', () => {
  assert.equal(microTime(Date.UTC(2026, 0, 2, 3, 4, 5, 678)), '2026-01-02T03:04:05.678000Z');
});

test('two replicas: one leads, the standby takes over within the lease duration, no live member lost', async () => {
  const n = ns.name;
  const env = { LEADER_ELECT: 'true', LEADER_ELECTION_NAMESPACE: n, LEADER_ELECTION_LEASE_DURATION: '4s' };
  await createSecret(kube, n, 'db', { url: requireEnv().databaseUrl });
  for (let i = 1; i <= 3; i++) await createPod(kube, n, { name: `ha-${i}`, labels: { app: 'ha' }, ip: `10.90.0.${i}` });
  await createPgCluster(kube, n, 'ha', { selector: { matchLabels: { app: 'ha' } }, postgres: { urlSecretRef: { name: 'db' } }, channel: `${n.replace(/-/g, '_')}_ha`, heartbeatInterval: '1s' });
  ops.push(await startOperator({ namespaces: [n], env: { ...env, POD_NAME: 'replica-a' } }));
  ops.push(await startOperator({ namespaces: [n], env: { ...env, POD_NAME: 'replica-b' } }));
  const members = ['ha@10.90.0.1', 'ha@10.90.0.2', 'ha@10.90.0.3'];
  await waitForPeers(kube, n, 'ha-peers', ['ha-1', 'ha-2', 'ha-3'], members);

  const leaderOf = async () => (await kube.get<{ spec: { holderIdentity?: string } }>(`/apis/coordination.k8s.io/v1/namespaces/${n}/leases/pgcluster-operator`)).spec.holderIdentity;
  const status = async () => Promise.all(ops.map((o) => o.metric('leader_election_master_status')));
  const first = await leaderOf();
  assert.ok(first === 'replica-a' || first === 'replica-b');
  await waitFor(async () => (await status()).reduce((a, b) => a + b) === 1, { message: 'exactly one replica reports leading' });
  const leaderIdx = first === 'replica-a' ? 0 : 1;
  const leader = ops[leaderIdx] as OperatorProcess;
  const standby = ops[1 - leaderIdx] as OperatorProcess;
  assert.equal(await standby.metric('pgcluster_kube_writes_total'), 0, 'the standby writes nothing');
  assert.equal(await standby.metric('pgcluster_notify_transactions_total'), 0, 'the standby sends no heartbeats');

  const seen: string[][] = [];
  const abort = await kube.watch(`/api/v1/namespaces/${n}/configmaps`, { fieldSelector: 'metadata.name=ha-peers' }, (type, obj) => {
    if (type === 'MODIFIED') seen.push(((obj as { data?: { peers?: string } }).data?.peers ?? '').split('\n').filter(Boolean));
  }, () => {});
  const killedAt = Date.now();
  await leader.stop('SIGKILL'); // no chance to release the lease: the standby must wait for it to expire
  await waitFor(async () => (await leaderOf()) === (leaderIdx === 0 ? 'replica-b' : 'replica-a'), { message: 'the standby takes the lease', timeoutMs: 15_000, intervalMs: 100 });
  const takeoverMs = Date.now() - killedAt;
  await waitFor(async () => (await standby.metric('leader_election_master_status')) === 1, { message: 'the new leader reports leading' });
  // The new leader heartbeats: its notify transactions grow.
  await waitFor(async () => (await standby.metric('pgcluster_notify_transactions_total')) > 0, { message: 'the new leader heartbeats' });
  await sleep(2_000);
  abort.abort();
  assert.ok(takeoverMs <= 4_000 + 2_000, `took over ${takeoverMs} ms after the leader died (lease 4s)`);
  for (const peers of seen) assert.deepEqual(peers, members, 'no write during failover dropped a live member');

  // A graceful stop releases the lease at once.
  const again = await startOperator({ namespaces: [n], env: { ...env, POD_NAME: 'replica-c' } });
  ops.push(again);
  const stoppedAt = Date.now();
  assert.equal(await standby.stop('SIGTERM'), 0, 'exit 0 on SIGTERM');
  await waitFor(async () => (await leaderOf()) === 'replica-c', { message: 'replica-c leads after a graceful handover', timeoutMs: 10_000, intervalMs: 100 });
  assert.ok(Date.now() - stoppedAt < 3_000, 'a released lease is taken without waiting for expiry');
});
