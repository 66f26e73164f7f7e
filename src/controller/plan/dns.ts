// The DNS output (docs/outputs.md, "DNS output"): a selectorless headless Service and the EndpointSlices this operator
// manages for it, one address per peer whose host is an IP. Planned here (pure, like plan/outputs.ts), applied by
// write/apply.ts; the same ownership rules as the ConfigMap: only objects owned by this PgCluster are written.
import { peerAddresses, type PeerAddress } from '../../core/outputs.ts';
import type { Peer } from '../../core/peerTable.ts';
import { CLUSTER_KEY, MANAGED_BY, MANAGED_BY_LABEL, type EffectiveSpec } from '../../core/spec.ts';
import type { KubeObject } from '../../kube/client.ts';
import { ownedBy, ownerReference, type EndpointSliceObject, type OutputKind, type PgClusterObject, type ServiceObject } from '../../kube/resources.ts';

/** endpointslice.kubernetes.io/managed-by of our slices: never the built-in controller's, which would take them. */
export const SLICE_MANAGED_BY = 'pgcluster-operator.pgcluster.io';
export const SLICE_MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by';
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
/** The API's limit per EndpointSlice. */
const MAX_SLICE_ENDPOINTS = 1000;

export type OutputWrite =
  | { verb: 'create'; kind: OutputKind; object: KubeObject }
  | { verb: 'patch'; kind: OutputKind; name: string; body: Record<string, unknown>; before: KubeObject }
  | { verb: 'delete'; kind: OutputKind; name: string };

export interface ObservedDns {
  /** The Service under spec.serviceName, as cached (only ours are: labelled), or as we last wrote it. */
  service: ServiceObject | undefined;
  /** Every Service and EndpointSlice of ours in the namespace (cached). */
  services: readonly ServiceObject[];
  slices: readonly EndpointSliceObject[];
  /** A slice by name, as cached or as we last wrote it (a slice just created may not be cached yet). */
  slice(name: string): EndpointSliceObject | undefined;
  /** A create of the Service was refused lately (409): an object the cache does not hold has the name. */
  serviceTaken: boolean;
}

export interface DnsPlan {
  writes: OutputWrite[];
  /** Why the Service is not ours to write (left alone, reported), if it is not. */
  conflict: string | undefined;
  /** The names of the slices the output is made of (the readiness gate looks for a pod's IP in them). */
  slices: string[];
}

export function planDns(pc: PgClusterObject, spec: Pick<EffectiveSpec, 'serviceName' | 'publishNotReadyPods'>, peers: readonly Peer[], o: ObservedDns): DnsPlan {
  const ns = pc.metadata.namespace;
  const svc = spec.serviceName;
  const writes: OutputWrite[] = [];
  // Ours under another name (renamed, or the output turned off): they go.
  for (const s of o.services) if (ownedBy(s, pc) && s.metadata.name !== svc) writes.push({ verb: 'delete', kind: 'services', name: s.metadata.name });
  const mySlices = o.slices.filter((s) => ownedBy(s, pc));
  const dropSlices = (keep: ReadonlySet<string>) => {
    for (const s of mySlices) if (!keep.has(s.metadata.name)) writes.push({ verb: 'delete', kind: 'endpointslices', name: s.metadata.name });
  };
  if (!svc) {
    dropSlices(new Set());
    return { writes, conflict: undefined, slices: [] };
  }
  const labels = { [MANAGED_BY_LABEL]: MANAGED_BY, [CLUSTER_KEY]: pc.metadata.name };
  const observed = o.service;
  if ((observed && !ownedBy(observed, pc)) || (!observed && o.serviceTaken)) {
    dropSlices(new Set());
    return { writes, conflict: serviceConflictMessage(ns, svc), slices: [] };
  }
  const serviceSpec = { clusterIP: 'None', publishNotReadyAddresses: spec.publishNotReadyPods };
  if (!observed) {
    writes.push({ verb: 'create', kind: 'services', object: { metadata: { name: svc, namespace: ns, labels, ownerReferences: [ownerReference(pc)] }, spec: serviceSpec } as ServiceObject });
  } else if (observed.spec?.publishNotReadyAddresses !== spec.publishNotReadyPods) {
    writes.push({ verb: 'patch', kind: 'services', name: svc, body: { spec: { publishNotReadyAddresses: spec.publishNotReadyPods } }, before: observed });
  }

  const { ipv4, ipv6 } = peerAddresses(peers);
  const want = new Map<string, EndpointSliceObject>();
  const add = (family: 'IPv4' | 'IPv6', addrs: PeerAddress[], always: boolean) => {
    for (let i = 0; i < addrs.length || (always && i === 0); i += MAX_SLICE_ENDPOINTS) {
      const name = `${svc}-pgco-${family === 'IPv4' ? 4 : 6}-${i / MAX_SLICE_ENDPOINTS}`;
      want.set(name, {
        metadata: { name, namespace: ns, labels: { ...labels, [SERVICE_NAME_LABEL]: svc, [SLICE_MANAGED_BY_LABEL]: SLICE_MANAGED_BY }, ownerReferences: [ownerReference(pc)] },
        addressType: family,
        endpoints: addrs.slice(i, i + MAX_SLICE_ENDPOINTS).map((a) => ({
          addresses: [a.ip], conditions: { ready: true }, ...(a.pod ? { targetRef: { kind: 'Pod', name: a.pod, namespace: ns } } : {}),
        })),
        ports: [],
      });
    }
  };
  add('IPv4', ipv4, true); // an empty one too: the Service always has its slice
  add('IPv6', ipv6, false);
  for (const [name, desired] of want) {
    const have = o.slice(name);
    if (!have) writes.push({ verb: 'create', kind: 'endpointslices', object: desired });
    else if (!ownedBy(have, pc)) continue; // someone else's slice of that name: never touched
    else if (endpointsKey(have) !== endpointsKey(desired) || have.metadata.labels?.[SERVICE_NAME_LABEL] !== svc) {
      writes.push({ verb: 'patch', kind: 'endpointslices', name, body: { metadata: { labels: desired.metadata.labels }, endpoints: desired.endpoints, ports: [] }, before: have });
    }
  }
  dropSlices(new Set(want.keys()));
  return { writes, conflict: undefined, slices: [...want.keys()] };
}

/** What of a slice's endpoints we write, in a comparable form (fields the API server may add are left out). */
function endpointsKey(s: EndpointSliceObject): string {
  return JSON.stringify((s.endpoints ?? []).map((e) => [e.addresses, e.conditions?.ready ?? null, e.targetRef?.name ?? null]));
}

/** The Service name is held by a Service that is not this PgCluster's. */
export function serviceConflictMessage(ns: string, name: string): string {
  return `Service ${ns}/${name} exists and is not this PgCluster's, so it is left alone (and no EndpointSlice is written for it): delete it, or set spec.output.service.name to a free name`;
}
