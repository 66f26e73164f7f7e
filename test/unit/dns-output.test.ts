// plan/dns.ts: from the peers to the headless Service and its EndpointSlices, as tables. No I/O.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { planDns, SLICE_MANAGED_BY, type ObservedDns } from '../../src/controller/plan/dns.ts';
import { peerAddresses } from '../../src/core/outputs.ts';
import type { Peer } from '../../src/core/peerTable.ts';
import type { EndpointSliceObject, ServiceObject } from '../../src/kube/resources.ts';
import { chatSpec, pgcluster } from '../support/controllerKit.ts';

const pc = pgcluster('chat', chatSpec);
const peers: Peer[] = [
  { node: 'chat@10.0.0.2', host: '10.0.0.2', source: 'member', pod: 'chat-1' },
  { node: 'chat@10.0.0.1', host: '10.0.0.1', source: 'member', pod: 'chat-0' },
  { node: 'worker@10.0.0.1', host: '10.0.0.1', source: 'remote' },
  { node: 'far@192.0.2.7', host: '192.0.2.7', source: 'remote' },
  { node: 'dns@chat-0.hl.prod.svc.cluster.local', host: 'chat-0.hl.prod.svc.cluster.local', source: 'remote' },
  { node: 'six@fd00::7', host: 'fd00::7', source: 'remote' },
  { node: 'lo@127.0.0.1', host: '127.0.0.1', source: 'remote' },
  { node: 'll@169.254.1.1', host: '169.254.1.1', source: 'remote' },
  { node: 'll6@fe80::1', host: 'fe80::1', source: 'remote' },
];
const ours = { ownerReferences: [{ apiVersion: 'pgcluster.io/v1alpha1', kind: 'PgCluster', name: 'chat', uid: 'uid-chat' }] };
const none = (o: Partial<ObservedDns> = {}): ObservedDns => {
  const slices = o.slices ?? [];
  return { service: o.service, services: o.services ?? (o.service ? [o.service] : []), slices, slice: (n) => slices.find((s) => s.metadata.name === n), serviceTaken: o.serviceTaken ?? false };
};
const spec = { serviceName: 'chat-peers', publishNotReadyPods: false };

describe('peerAddresses', () => {
  test('IP hosts only (not those an EndpointSlice refuses: loopback, link-local), once per IP (a member\'s pod wins), by family, sorted', () => {
    assert.deepEqual(peerAddresses(peers), {
      ipv4: [{ ip: '10.0.0.1', pod: 'chat-0' }, { ip: '10.0.0.2', pod: 'chat-1' }, { ip: '192.0.2.7' }],
      ipv6: [{ ip: 'fd00::7' }],
    });
  });
});

describe('planDns', () => {
  test('nothing yet: a selectorless headless Service, an IPv4 and an IPv6 slice of ours', () => {
    const p = planDns(pc, spec, peers, none());
    assert.equal(p.conflict, undefined);
    assert.deepEqual(p.writes.map((w) => [w.verb, w.kind, w.verb === 'create' ? w.object.metadata.name : w.name]), [
      ['create', 'services', 'chat-peers'], ['create', 'endpointslices', 'chat-peers-pgco-4-0'], ['create', 'endpointslices', 'chat-peers-pgco-6-0'],
    ]);
    const svc = p.writes[0]?.verb === 'create' ? p.writes[0].object as ServiceObject : undefined;
    assert.deepEqual(svc?.spec, { clusterIP: 'None', publishNotReadyAddresses: false });
    const v4 = p.writes[1]?.verb === 'create' ? p.writes[1].object as EndpointSliceObject : undefined;
    assert.equal(v4?.metadata.labels?.['kubernetes.io/service-name'], 'chat-peers');
    assert.equal(v4?.metadata.labels?.['endpointslice.kubernetes.io/managed-by'], SLICE_MANAGED_BY);
    assert.deepEqual(v4?.endpoints?.map((e) => [e.addresses[0], e.targetRef?.name]), [['10.0.0.1', 'chat-0'], ['10.0.0.2', 'chat-1'], ['192.0.2.7', undefined]]);
  });
  test('all current: no write', () => {
    const first = planDns(pc, spec, peers, none());
    const objs = first.writes.flatMap((w) => (w.verb === 'create' ? [{ ...w.object, metadata: { ...w.object.metadata, ...ours } }] : []));
    const p = planDns(pc, spec, peers, none({ service: objs[0] as ServiceObject, slices: objs.slice(1) as EndpointSliceObject[] }));
    assert.deepEqual(p.writes, []);
  });
  test('a peer leaves: the slice is patched, the empty IPv6 slice goes', () => {
    const first = planDns(pc, spec, peers, none());
    const objs = first.writes.flatMap((w) => (w.verb === 'create' ? [{ ...w.object, metadata: { ...w.object.metadata, ...ours } }] : []));
    const p = planDns(pc, spec, peers.slice(0, 3), none({ service: objs[0] as ServiceObject, slices: objs.slice(1) as EndpointSliceObject[] }));
    assert.deepEqual(p.writes.map((w) => [w.verb, w.kind, w.verb === 'create' ? w.object.metadata.name : w.name]), [['patch', 'endpointslices', 'chat-peers-pgco-4-0'], ['delete', 'endpointslices', 'chat-peers-pgco-6-0']]);
  });
  test('a Service of that name that is not ours: left alone, reported, no slice written (and ours removed)', () => {
    const foreign: ServiceObject = { metadata: { name: 'chat-peers', namespace: 'prod' }, spec: { clusterIP: '10.96.0.9' } };
    const mine: EndpointSliceObject = { metadata: { name: 'chat-peers-pgco-4-0', namespace: 'prod', ...ours }, endpoints: [] };
    const p = planDns(pc, spec, peers, none({ service: foreign, services: [], slices: [mine] }));
    assert.match(p.conflict ?? '', /Service prod\/chat-peers exists and is not this PgCluster's/);
    assert.deepEqual(p.writes.map((w) => [w.verb, w.kind]), [['delete', 'endpointslices']]);
  });
  test('the name is held by a Service we cannot see (a create said 409): no create, no slice, reported', () => {
    const p = planDns(pc, spec, peers, none({ serviceTaken: true }));
    assert.deepEqual(p.writes, []);
    assert.match(p.conflict ?? '', /is not this PgCluster's/);
  });
  test('turned off: ours go, others stay', () => {
    const mineSvc: ServiceObject = { metadata: { name: 'chat-peers', namespace: 'prod', ...ours } };
    const theirs: ServiceObject = { metadata: { name: 'other', namespace: 'prod' } };
    const p = planDns(pc, { ...spec, serviceName: '' }, peers, none({ services: [mineSvc, theirs], slices: [{ metadata: { name: 'chat-peers-pgco-4-0', namespace: 'prod', ...ours } }] }));
    assert.deepEqual(p.writes.map((w) => [w.verb, w.kind, w.verb === 'create' ? '' : w.name]), [['delete', 'services', 'chat-peers'], ['delete', 'endpointslices', 'chat-peers-pgco-4-0']]);
  });
  test('publishNotReadyPods follows to publishNotReadyAddresses', () => {
    const svc: ServiceObject = { metadata: { name: 'chat-peers', namespace: 'prod', ...ours }, spec: { clusterIP: 'None', publishNotReadyAddresses: false } };
    const p = planDns(pc, { ...spec, publishNotReadyPods: true }, [], none({ service: svc, slices: [{ metadata: { name: 'chat-peers-pgco-4-0', namespace: 'prod', labels: { 'kubernetes.io/service-name': 'chat-peers' }, ...ours }, endpoints: [] }] }));
    assert.deepEqual(p.writes.map((w) => [w.verb, w.kind, w.verb === 'patch' ? w.body : undefined]), [['patch', 'services', { spec: { publishNotReadyAddresses: true } }]]);
  });
});
