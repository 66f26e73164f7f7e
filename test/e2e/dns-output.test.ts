// The DNS output (issue 14, item 1), through the API: a selectorless headless Service and the operator's
// EndpointSlices with one address per peer whose host is an IP (members and remote peers), following
// membership, owned and cleaned up like the ConfigMap, never written over someone else's Service. A DNS
// server answering from them is not part of this test (docs/outputs.md, "DNS output").
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { createNamespace, requireEnv, waitFor } from '../support/env.ts';
import { condition, createPgCluster, createPod, deletePod, getPgCluster, operatorInNamespace, type OperatorProcess, testKube } from '../support/operator.ts';
import { paths, type EndpointSliceObject, type ServiceObject } from '../../src/kube/resources.ts';

const kube = testKube();
let ns: Awaited<ReturnType<typeof createNamespace>>;
let op: OperatorProcess | undefined;

before(async () => {
  ({ ns, op } = await operatorInNamespace(kube, 'e2e-dns', requireEnv().databaseUrl));
});
after(async () => {
  await op?.stop();
  await ns?.cleanup();
});

const slices = async (service: string) => (await kube.list<EndpointSliceObject>(paths.endpointSlices(ns.name), { labelSelector: `kubernetes.io/service-name=${service}` })).items;
const addresses = async (service: string) => (await slices(service)).flatMap((s) => (s.endpoints ?? []).map((e) => `${e.addresses[0]}${e.targetRef ? `=${e.targetRef.name}` : ''}`)).sort();

test('a headless Service whose EndpointSlices list every peer IP, members and remote; it follows leaves; owned and removed with the PgCluster', async () => {
  const n = ns.name;
  const channel = `${n.replace(/-/g, '_')}_dns`;
  await createPod(kube, n, { name: 'dns-1', labels: { app: 'dns' }, ip: '10.86.0.1' });
  await createPod(kube, n, { name: 'dns-2', labels: { app: 'dns' }, ip: '10.86.0.2' });
  await createPgCluster(kube, n, 'dns', { selector: { matchLabels: { app: 'dns' } }, postgres: { urlSecretRef: { name: 'db' } }, channel, heartbeatInterval: '1s', peerTimeout: '60s', output: { service: {} } });
  await waitFor(async () => condition(await getPgCluster(kube, n, 'dns'), 'Connected')?.status === 'True', { message: 'Connected' });
  // Remote nodes: one at an IP (an address), one at a DNS name (none), one at loopback (refused in a slice: left out).
  const c = new pg.Client({ connectionString: requireEnv().databaseUrl });
  await c.connect();
  await c.query('SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p', [channel, ['far@192.0.2.50', 'named@far.example.org', 'lo@127.0.0.9']]);
  await c.end();

  const want = ['10.86.0.1=dns-1', '10.86.0.2=dns-2', '192.0.2.50'];
  await waitFor(async () => JSON.stringify(await addresses('dns-peers')) === JSON.stringify(want), { message: `EndpointSlices with ${want.join(', ')}`, timeoutMs: 20_000 });
  const svc = await kube.get<ServiceObject>(paths.services(n) + '/dns-peers');
  assert.equal(svc.spec?.clusterIP, 'None');
  assert.equal(svc.spec?.selector, undefined, 'selectorless: the built-in controller leaves it to us');
  assert.equal(svc.metadata.ownerReferences?.[0]?.kind, 'PgCluster');
  const [slice] = await slices('dns-peers');
  assert.equal(slice?.metadata.labels?.['endpointslice.kubernetes.io/managed-by'], 'pgcluster-operator.pgcluster.io');
  assert.equal(slice?.addressType, 'IPv4');
  assert.ok(slice?.endpoints?.every((e) => e.conditions?.ready === true));

  await deletePod(kube, n, 'dns-2');
  await waitFor(async () => JSON.stringify(await addresses('dns-peers')) === JSON.stringify(['10.86.0.1=dns-1', '192.0.2.50']), { message: 'dns-2 gone from the slice' });

  await kube.delete(paths.pgcluster(n, 'dns'), 'pgclusters');
  await waitFor(async () => (await getPgCluster(kube, n, 'dns')) === undefined, { message: 'PgCluster deleted' });
  await waitFor(async () => (await kube.getOptional(paths.services(n) + '/dns-peers')) === undefined && (await slices('dns-peers')).length === 0, { message: 'Service and slices removed' });
});

test('a Service of that name that is not the PgCluster\'s: never touched, no slice for it, Ready says OutputConflict', async () => {
  const n = ns.name;
  await kube.create(paths.services(n), { apiVersion: 'v1', kind: 'Service', metadata: { name: 'taken-peers' }, spec: { ports: [{ port: 80 }], selector: { app: 'web' } } }, 'services');
  const before = await kube.get<ServiceObject>(paths.services(n) + '/taken-peers');
  await createPod(kube, n, { name: 'taken-1', labels: { app: 'taken' }, ip: '10.87.0.1' });
  await createPgCluster(kube, n, 'taken', { selector: { matchLabels: { app: 'taken' } }, postgres: { urlSecretRef: { name: 'db' } }, channel: `${n.replace(/-/g, '_')}_taken`, heartbeatInterval: '1s', output: { service: {} } });
  const pc = await waitFor(async () => {
    const p = await getPgCluster(kube, n, 'taken');
    return condition(p, 'Ready')?.reason === 'OutputConflict' && p;
  }, { message: 'Ready OutputConflict' });
  assert.match(condition(pc, 'Ready')?.message ?? '', new RegExp(`Service ${n}/taken-peers exists and is not this PgCluster's`));
  const after = await kube.get<ServiceObject>(paths.services(n) + '/taken-peers');
  assert.equal(after.metadata.resourceVersion, before.metadata.resourceVersion, 'the Service is untouched');
  const ours = (await slices('taken-peers')).filter((s) => s.metadata.labels?.['endpointslice.kubernetes.io/managed-by'] === 'pgcluster-operator.pgcluster.io');
  assert.deepEqual(ours, [], 'no slice of ours claims to belong to it (the built-in controller keeps its own)');
});
