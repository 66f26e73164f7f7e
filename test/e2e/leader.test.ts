// High availability: two replicas with leader election on a Lease; exactly one leads (only it writes and
// heartbeats), the standby takes over within the lease duration when the leader dies, and the outputs
// never lose a live member on the way.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { microTime } from '../../src/kube/lease.ts';
import { createNamespace, requireEnv, waitFor } from '../support/env.ts';
import { installCrd } from '../support/crd.ts';
import { createPgCluster, createPod, createSecret, startOperator, testKube, waitForPeers, type OperatorProcess } from '../support/operator.ts';
import { watchPeers } from '../support/watch.ts';

const kube = testKube();
let ns: { name: string; cleanup(): Promise<void> };
const ops: OperatorProcess[] = [];

before(async () => {
  await installCrd(kube);
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

  const leasePath = `/apis/coordination.k8s.io/v1/namespaces/${n}/leases/pgcluster-operator`;
  const leaderOf = async () => (await kube.get<{ spec: { holderIdentity?: string } }>(leasePath)).spec.holderIdentity;
  const status = async () => Promise.all(ops.map((o) => o.metric('leader_election_master_status')));
  const first = await leaderOf();
  assert.ok(first === 'replica-a' || first === 'replica-b');
  await waitFor(async () => (await status()).reduce((a, b) => a + b) === 1, { message: 'exactly one replica reports leading' });
  const leaderIdx = first === 'replica-a' ? 0 : 1;
  const leader = ops[leaderIdx] as OperatorProcess;
  const standby = ops[1 - leaderIdx] as OperatorProcess;
  // Its renewals, timed (the margin before the renew deadline); the standby has none to time.
  await waitFor(async () => (await leader.metric('pgcluster_leader_election_renew_seconds_count')) >= 2, { message: 'the leader times its renewals' });
  assert.equal(await standby.metric('pgcluster_leader_election_renew_seconds_count'), 0, 'the standby renews nothing');
  assert.equal(await standby.metric('pgcluster_kube_writes_total'), 0, 'the standby writes nothing');
  assert.equal(await standby.metric('pgcluster_notify_transactions_total'), 0, 'the standby sends no heartbeats');

  const watch = await watchPeers(kube, n, 'ha-peers');
  const killedAt = performance.now();
  await leader.stop('SIGKILL'); // no chance to release the lease: the standby must wait for it to expire
  await waitFor(async () => (await leaderOf()) === (leaderIdx === 0 ? 'replica-b' : 'replica-a'), { message: 'the standby takes the lease', timeoutMs: 15_000, intervalMs: 100 });
  const takeoverMs = performance.now() - killedAt;
  await waitFor(async () => (await standby.metric('leader_election_master_status')) === 1, { message: 'the new leader reports leading' });
  // The new leader heartbeats, and has reconciled the PgCluster (the gauge is set after its outputs are applied).
  await waitFor(async () => (await standby.metric('pgcluster_notify_transactions_total')) > 0, { message: 'the new leader heartbeats' });
  await waitFor(async () => (await standby.metric('pgcluster_peers', { name: 'ha' })) === 3, { message: 'the new leader has reconciled' });
  const seen = watch.stop();
  // The lease is taken once unchanged for its duration (4 s) by the standby's clock, which it reads every
  // retry period (4 s / 7.5); the standby had seen the last renewal at most one retry period after it.
  const retryMs = 4_000 / 7.5;
  assert.ok(takeoverMs <= 4_000 + 2 * retryMs + 1_000, `took over ${takeoverMs} ms after the leader died (lease 4s, retry ${retryMs} ms, 1 s for API calls)`);
  for (const peers of seen) assert.deepEqual(peers, members, 'no write during failover dropped a live member');

  // A graceful stop releases the lease: the next holder takes the released record, without waiting for it to
  // expire. Read from the Lease's own history: the time the stopping process took to drain is not the claim.
  const again = await startOperator({ namespaces: [n], env: { ...env, POD_NAME: 'replica-c' } });
  ops.push(again);
  const records: { holderIdentity?: string; renewTime?: string; acquireTime?: string }[] = [];
  const abortLease = await kube.watch(`/apis/coordination.k8s.io/v1/namespaces/${n}/leases`, { fieldSelector: 'metadata.name=pgcluster-operator' }, (_type, obj) => {
    records.push((obj as { spec: { holderIdentity?: string; renewTime?: string; acquireTime?: string } }).spec);
  }, () => {});
  await waitFor(() => records.length > 0, { message: 'the Lease watch to start' });
  assert.equal(await standby.stop('SIGTERM'), 0, 'exit 0 on SIGTERM');
  await waitFor(async () => (await leaderOf()) === 'replica-c', { message: 'replica-c leads after a graceful handover', timeoutMs: 10_000, intervalMs: 100 });
  await waitFor(() => records.at(-1)?.holderIdentity === 'replica-c', { message: 'the watch sees replica-c take the lease' });
  abortLease.abort();
  const taken = records.findIndex((r) => r.holderIdentity === 'replica-c');
  const released = records[taken - 1];
  assert.equal(released?.holderIdentity, '', `replica-c took a released lease: ${JSON.stringify(records)}`);
  const waitedMs = Date.parse(records[taken]?.acquireTime ?? '') - Date.parse(released?.renewTime ?? '');
  assert.ok(waitedMs < 4_000, `taken ${waitedMs} ms after it was released, not after its 4 s duration`);
});

test('a leader that finds another holder in its Lease stops at its next renewal and exits 1', async () => {
  const n = ns.name;
  const id = 'lost';
  const env = { LEADER_ELECT: 'true', LEADER_ELECTION_NAMESPACE: n, LEADER_ELECTION_ID: id, POD_NAME: 'replica-lost' };
  await createPod(kube, n, { name: 'lost-1', labels: { app: 'lost' }, ip: '10.90.1.1' });
  await createPgCluster(kube, n, 'lost', { selector: { matchLabels: { app: 'lost' } }, postgres: { urlSecretRef: { name: 'db' } }, channel: `${n.replace(/-/g, '_')}_lost`, heartbeatInterval: '1s' });
  const op = await startOperator({ namespaces: [n], env });
  ops.push(op);
  await waitForPeers(kube, n, 'lost-peers', ['lost-1'], ['lost@10.90.1.1']);
  await waitFor(async () => (await op.metric('pgcluster_notify_transactions_total')) > 0, { message: 'the leader heartbeats' });
  // Another replica (as far as the Lease says) takes the lease: e.g. this one was paused past its lease.
  const leasePath = `/apis/coordination.k8s.io/v1/namespaces/${n}/leases/${id}`;
  const lease = await kube.get<{ spec: Record<string, unknown> }>(leasePath);
  const takenAt = performance.now();
  await kube.update(leasePath, { ...lease, spec: { ...lease.spec, holderIdentity: 'intruder', leaseDurationSeconds: 3600 } }, 'leases');
  const code = await op.exited;
  const exitedMs = performance.now() - takenAt;
  console.log(`# lease taken by another holder -> the leader exited (${code}) after ${exitedMs.toFixed(0)} ms`);
  assert.equal(code, 1, 'exit 1: the Deployment restarts it as a standby');
  // Seen at its next renewal (every 2 s with the default 15 s lease), not at the renew deadline (10 s).
  assert.ok(exitedMs < 6_000, `exited ${exitedMs.toFixed(0)} ms after another holder took the Lease`);
  assert.match(op.logs(), /leader election: lost the lease \(another replica holds it\)/);
  assert.match(op.logs(), /stopped after losing the lease/);
});
