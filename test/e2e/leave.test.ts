// Instant leave across clusters (issue 14, item 2): two operators (two Kubernetes clusters' worth: two
// namespaces, each watched by its own operator) share one database and channel. A member of one that leaves
// is gone from the other's outputs at once (side channel), long before peerTimeout, and a late bare heartbeat
// of it does not bring it back. libcluster_postgres nodes never hear the side channel.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { startLibclusterNode } from '../harness/libcluster-node.ts';
import { sideChannel } from '../../src/core/sideChannel.ts';
import { createNamespace, holdsFor, requireEnv, waitFor } from '../support/env.ts';
import { installCrd } from '../support/crd.ts';
import { configMapPeers, createPgCluster, createPod, createSecret, deletePod, startOperator, testKube, waitForPeers, type OperatorProcess } from '../support/operator.ts';

const kube = testKube();
const namespaces: { name: string; cleanup(): Promise<void> }[] = [];
const ops: OperatorProcess[] = [];

before(async () => {
  await installCrd(kube);
  for (const p of ['e2e-leave-a', 'e2e-leave-b']) namespaces.push(await createNamespace(p));
});
after(async () => {
  for (const op of ops) await op.stop();
  for (const ns of namespaces) await ns.cleanup();
});

test('a member of one cluster that leaves is dropped by the other at once, stays out through a late heartbeat, and libcluster_postgres nodes hear no side-channel message', async () => {
  const db = requireEnv().databaseUrl;
  const a = namespaces[0]!;
  const b = namespaces[1]!;
  const channel = `${a.name.replace(/-/g, '_')}_shared`;
  // A long peerTimeout: only the side channel can explain a prompt leave.
  const spec = { selector: { matchLabels: { app: 'shared' } }, postgres: { urlSecretRef: { name: 'db' } }, channel, heartbeatInterval: '1s', peerTimeout: '60s', nodeName: { basename: 'chat' } };
  for (const ns of [a, b]) {
    await createSecret(kube, ns.name, 'db', { url: db });
    await createPgCluster(kube, ns.name, 'shared', spec);
  }
  await createPod(kube, a.name, { name: 'a-1', labels: { app: 'shared' }, ip: '10.83.0.1' });
  await createPod(kube, a.name, { name: 'a-2', labels: { app: 'shared' }, ip: '10.83.0.2' });
  await createPod(kube, b.name, { name: 'b-1', labels: { app: 'shared' }, ip: '10.84.0.1' });
  ops.push(await startOperator({ namespaces: [a.name], env: { POD_NAME: 'operator-a' } }));
  ops.push(await startOperator({ namespaces: [b.name], env: { POD_NAME: 'operator-b' } }));
  // A libcluster_postgres node on the main channel: it must never hear a side-channel message.
  const elixir = await startLibclusterNode(db, channel, 'elixir@10.85.0.1', 500);
  // What is said on the side channel, heard by a plain client.
  const ear = new pg.Client({ connectionString: db });
  await ear.connect();
  const said: string[] = [];
  ear.on('notification', (n) => { if (n.payload) said.push(n.payload); });
  await ear.query(`LISTEN ${sideChannel(channel)}`);
  try {
    const all = ['chat@10.83.0.1', 'chat@10.83.0.2', 'chat@10.84.0.1', 'elixir@10.85.0.1'];
    await waitForPeers(kube, b.name, 'shared-peers', ['b-1'], all);

    const t0 = performance.now();
    await deletePod(kube, a.name, 'a-2');
    await waitFor(async () => !(await configMapPeers(kube, b.name, 'shared-peers'))?.includes('chat@10.83.0.2'), { message: 'a-2 gone from the other cluster\'s ConfigMap', timeoutMs: 20_000 });
    const seenMs = performance.now() - t0;
    assert.ok(seenMs < 15_000, `gone after ${seenMs.toFixed(0)} ms: well before peerTimeout (60 s)`);
    await waitFor(() => said.some((p) => p.includes('"node":"chat@10.83.0.2"') && p.includes('"from":"operator-a"')), { message: 'the leave, with its sender, on the side channel' });

    // A late bare heartbeat of the departed node (as if delayed in the queue): it stays out.
    const late = new pg.Client({ connectionString: db });
    await late.connect();
    await late.query('SELECT pg_notify($1, $2)', [channel, 'chat@10.83.0.2']);
    await late.end();
    await holdsFor(async () => !(await configMapPeers(kube, b.name, 'shared-peers'))?.includes('chat@10.83.0.2'), { forMs: 3000, message: 'a late heartbeat does not bring a-2 back' });
    assert.deepEqual(await configMapPeers(kube, b.name, 'shared-peers'), ['chat@10.83.0.1', 'chat@10.84.0.1', 'elixir@10.85.0.1']);
    assert.ok(elixir.heard.has('chat@10.84.0.1') && ![...elixir.heard].some((p) => p.startsWith('{')), 'the libcluster_postgres node hears the members, and no side-channel message');
    console.log(`# leave seen by the other cluster's ConfigMap after ${seenMs.toFixed(0)} ms (peerTimeout 60 s)`);
  } finally {
    await ear.end();
    await elixir.stop();
  }
});
