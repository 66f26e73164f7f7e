// Authenticated peers (issue 14, item 3; README "Authenticated peers"): two operators (two Kubernetes
// clusters' worth: namespaces watched by operators of their own) share one database and channel, each
// PgCluster with spec.auth. With the key they exchange their members as signed "alive" messages; with
// acceptUnsigned false a bare NOTIFY of a name on the channel (a database role without the key) is counted and
// not published, with true it is; a captured signed message sent again is refused; and during a key rotation
// an operator that signs with the new key still accepts the members of one that signs with the old.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { startLibclusterNode } from '../harness/libcluster-node.ts';
import { keyId } from '../../src/core/sideAuth.ts';
import { sideChannel } from '../../src/core/sideChannel.ts';
import { createNamespace, holdsFor, kubectl, requireEnv, waitFor } from '../support/env.ts';
import { installCrd } from '../support/crd.ts';
import { condition, configMapPeers, createPgCluster, createPod, createSecret, deletePod, getPgCluster, startOperator, testKube, waitForPeers, type OperatorProcess } from '../support/operator.ts';

const kube = testKube();
const namespaces: { name: string; cleanup(): Promise<void> }[] = [];
let opA: OperatorProcess;
let opB: OperatorProcess;
const K1 = 'a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90';
const K2 = 'f00dfeedc0ffee00112233445566778899aabbccddeeff00f00dfeedc0ffee00';
// Operator A serves ns[0] and ns[2], operator B ns[1] and ns[3]: one channel per pair.
before(async () => {
  await installCrd(kube);
  for (const p of ['e2e-auth-a', 'e2e-auth-b', 'e2e-rot-a', 'e2e-rot-b']) namespaces.push(await createNamespace(p));
  for (const ns of namespaces) await createSecret(kube, ns.name, 'db', { url: requireEnv().databaseUrl });
  opA = await startOperator({ namespaces: [namespaces[0]!.name, namespaces[2]!.name], env: { POD_NAME: 'operator-a' } });
  opB = await startOperator({ namespaces: [namespaces[1]!.name, namespaces[3]!.name], env: { POD_NAME: 'operator-b' } });
});
after(async () => {
  for (const op of [opA, opB]) await op?.stop();
  for (const ns of namespaces) await ns.cleanup();
});

const spec = (channel: string, acceptUnsigned: boolean) => ({
  selector: { matchLabels: { app: 'auth' } }, postgres: { urlSecretRef: { name: 'db' } }, channel, heartbeatInterval: '1s',
  nodeName: { basename: 'chat' }, auth: { secretRef: { name: 'side-key' }, acceptUnsigned },
});

test('signed peers are exchanged; a bare NOTIFY is refused and counted with acceptUnsigned false and published with true; a replayed signed message is refused', async () => {
  const [a, b] = [namespaces[0]!.name, namespaces[1]!.name];
  const channel = `${a.replace(/-/g, '_')}_auth`;
  const db = requireEnv().databaseUrl;
  for (const ns of [a, b]) {
    await createSecret(kube, ns, 'side-key', { key: `${K1}\n` });
    await createPgCluster(kube, ns, 'shared', spec(channel, false));
  }
  await createPod(kube, a, { name: 'a-1', labels: { app: 'auth' }, ip: '10.86.0.1' });
  await createPod(kube, a, { name: 'a-2', labels: { app: 'auth' }, ip: '10.86.0.2' });
  await createPod(kube, b, { name: 'b-1', labels: { app: 'auth' }, ip: '10.87.0.1' });
  // Everything said on the side channel, heard by a plain client: it can capture messages, as anyone can.
  const ear = new pg.Client({ connectionString: db });
  await ear.connect();
  const said: string[] = [];
  ear.on('notification', (n) => { if (n.payload) said.push(n.payload); });
  await ear.query(`LISTEN ${sideChannel(channel)}`);
  const intruder = await startLibclusterNode(db, channel, 'intruder@10.99.0.1', 300);
  const refusedBy = (op: OperatorProcess, ns: string, problem: string) => op.metric('pgcluster_invalid_payloads_total', { namespace: ns, problem });
  try {
    // With only signed names accepted, the members can have come only through the signed "alive" messages.
    const members = ['chat@10.86.0.1', 'chat@10.86.0.2', 'chat@10.87.0.1'];
    await waitForPeers(kube, a, 'shared-peers', ['a-1', 'a-2'], members);
    await waitForPeers(kube, b, 'shared-peers', ['b-1'], members);
    const pc = await waitFor(async () => {
      const p = await getPgCluster(kube, b, 'shared');
      return condition(p, 'Authenticated')?.status === 'True' && p;
    }, { message: 'Authenticated True' });
    assert.match(condition(pc, 'Authenticated')?.message ?? '', new RegExp(`signed with key ${keyId(Buffer.from(K1))} \\(Secret ${b}/side-key key "key"\\); only members and signed peers are published`));
    const isAlive = (p: string) => p.includes('"type":"alive"') && p.includes('"from":"operator-a"');
    // Its next beat, at the latest: the members may have reached B through beats sent before `ear` listened.
    await waitFor(() => said.some(isAlive), { timeoutMs: 10_000, message: 'operator A says its members signed on the side channel' });
    assert.ok(!said.some((p) => p.includes(K1)), 'the key is never sent');

    // A role without the key NOTIFYs a bare name: counted, never published.
    await waitFor(async () => (await refusedBy(opB, b, 'unsigned-refused')) >= 3, { message: 'operator B counts the refused bare names' });
    await holdsFor(async () => !(await configMapPeers(kube, b, 'shared-peers'))?.includes('intruder@10.99.0.1'), { forMs: 2000, message: 'the bare name is not published' });

    // A captured signed message sent again (the latest: well within its 30 s window): refused (counted).
    const alive = said.findLast(isAlive)!;
    const replays = await refusedBy(opB, b, 'side-replay');
    const sender = new pg.Client({ connectionString: db });
    await sender.connect();
    await sender.query('SELECT pg_notify($1, $2)', [sideChannel(channel), alive]);
    await waitFor(async () => (await refusedBy(opB, b, 'side-replay')) === replays + 1, { message: 'operator B refuses the replayed message' });
    // The same message with a name slipped in: the signature no longer holds.
    const forged = JSON.stringify({ ...JSON.parse(alive) as object, nodes: ['intruder@10.99.0.1'] });
    await sender.query('SELECT pg_notify($1, $2)', [sideChannel(channel), forged]);
    await waitFor(async () => (await refusedBy(opB, b, 'side-bad-signature')) >= 1, { message: 'operator B refuses the forged message' });
    await sender.end();

    // A signed leave is still instant.
    await deletePod(kube, a, 'a-2');
    await waitForPeers(kube, b, 'shared-peers', ['b-1'], ['chat@10.86.0.1', 'chat@10.87.0.1'], 10_000);

    // acceptUnsigned true: the same bare name is published (compatible with libcluster_postgres nodes).
    await kubectl(['patch', 'pgcluster', 'shared', '--type', 'merge', '-p', JSON.stringify({ spec: { auth: { acceptUnsigned: true } } })], { ns: b });
    await waitForPeers(kube, b, 'shared-peers', ['b-1'], ['chat@10.86.0.1', 'chat@10.87.0.1', 'intruder@10.99.0.1']);
    assert.ok(!(await configMapPeers(kube, a, 'shared-peers'))?.includes('intruder@10.99.0.1'), 'operator A (acceptUnsigned false) still does not publish it');
    // And back to false: the name heard only bare goes at once.
    await kubectl(['patch', 'pgcluster', 'shared', '--type', 'merge', '-p', JSON.stringify({ spec: { auth: { acceptUnsigned: false } } })], { ns: b });
    await waitForPeers(kube, b, 'shared-peers', ['b-1'], ['chat@10.86.0.1', 'chat@10.87.0.1'], 10_000);
  } finally {
    await intruder.stop();
    await ear.end();
  }
});

test('key rotation: an operator signing with the new key (the old one as previousKey) accepts the members of one still on the old key; the other way round they are refused until it has the new key', async () => {
  const [a, b] = [namespaces[2]!.name, namespaces[3]!.name];
  const channel = `${a.replace(/-/g, '_')}_rot`;
  await createSecret(kube, a, 'side-key', { key: K2, previousKey: K1 });
  await createSecret(kube, b, 'side-key', { key: K1 });
  for (const ns of [a, b]) await createPgCluster(kube, ns, 'shared', spec(channel, false));
  // A PgCluster whose key Secret does not exist: said in its condition, and it still announces its members.
  await createPgCluster(kube, a, 'nokey', { ...spec(`${channel}_nokey`, false), auth: { secretRef: { name: 'absent' }, acceptUnsigned: false }, output: { podAnnotation: '' } });
  await createPod(kube, a, { name: 'a-1', labels: { app: 'auth' }, ip: '10.88.0.1' });
  await createPod(kube, b, { name: 'b-1', labels: { app: 'auth' }, ip: '10.89.0.1' });

  await waitForPeers(kube, a, 'shared-peers', ['a-1'], ['chat@10.88.0.1', 'chat@10.89.0.1']);
  await waitFor(async () => (await opB.metric('pgcluster_invalid_payloads_total', { namespace: b, problem: 'side-bad-signature' })) >= 2, { message: 'operator B (old key only) refuses the messages signed with the new key' });
  assert.deepEqual(await configMapPeers(kube, b, 'shared-peers'), ['chat@10.89.0.1']);
  const pc = await waitFor(async () => {
    const p = await getPgCluster(kube, a, 'shared');
    return condition(p, 'Authenticated')?.status === 'True' && p;
  }, { message: 'Authenticated True' });
  assert.match(condition(pc, 'Authenticated')?.message ?? '', new RegExp(`signed with key ${keyId(Buffer.from(K2))} .*; key ${keyId(Buffer.from(K1))} \\(Secret key "previousKey"\\) is accepted too`));

  // Operator B gets the new key too (a restart reads the Secret at once; a running operator within ~30 s).
  await kubectl(['create', 'secret', 'generic', 'side-key', `--from-literal=key=${K2}`, `--from-literal=previousKey=${K1}`, '--dry-run=client', '-o', 'yaml'], { ns: b })
    .then((yaml) => kubectl(['apply', '-f', '-'], { ns: b, input: yaml }));
  await opB.stop();
  opB = await startOperator({ namespaces: [namespaces[1]!.name, b], env: { POD_NAME: 'operator-b' } });
  await waitForPeers(kube, b, 'shared-peers', ['b-1'], ['chat@10.88.0.1', 'chat@10.89.0.1']);

  const nokey = await waitFor(async () => {
    const p = await getPgCluster(kube, a, 'nokey');
    return condition(p, 'Authenticated')?.status === 'False' && p;
  }, { message: 'Authenticated False for the PgCluster without its key Secret' });
  assert.equal(condition(nokey, 'Authenticated')?.reason, 'SecretNotFound');
  assert.match(condition(nokey, 'Authenticated')?.message ?? '', /^Secret e2e-rot-a-\S+\/absent not found: create it with the side-channel signing key under key "key"; until then nothing is signed or verified/);
  assert.equal(condition(nokey, 'Ready')?.status, 'True', 'its outputs are still written: members only');
  assert.ok(!opA.logs().includes(K1) && !opA.logs().includes(K2) && !opB.logs().includes(K2), 'no key in any log');
});
