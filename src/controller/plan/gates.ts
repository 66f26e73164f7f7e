// The readiness gate (docs/readiness-gate.md, "Rollouts paced by discovery"): on each selected pod whose spec lists
// READINESS_GATE, the condition that says whether its node name is in every output of its PgCluster. Pure:
// from what was observed — the outputs as written (the ConfigMap, each member's annotation, the DNS output's
// slices, each read through the write memo) and each pod's condition as cached or as we last wrote it — to
// the condition PATCHes that make it so, only where it differs.
//
// The rules:
//  - Only pods with the gate, and only by the oldest PgCluster that selects the pod (creation time, then name):
//    two PgClusters never take turns on one condition. A pod being deleted is not selected: never touched.
//  - True (Published) once the name is in the ConfigMap, in the annotation of every member whose annotation
//    this PgCluster writes (the pod's own included), and in the DNS output's slices when it is on and the host
//    is an address. Once True, it stays True while the pod is a member and its name is published: another
//    pod joining (whose annotation does not list it yet) never takes a Ready pod out.
//  - False with a reason otherwise. A problem (NotAnnounced, OutputRefused) is written whenever it changes; a
//    wait (ContainersNotReady, NotPublished) only on a flip from True or over a problem, never over an absent
//    condition or another wait, so that a pod that joins normally costs one PATCH (True), and one that stops
//    being published one more (False): one per flip.
//  - lastTransitionTime moves only when the status flips (cert-manager's rule).
import { isEligible, podNodeName } from '../../core/nodeName.ts';
import { peerAddresses } from '../../core/outputs.ts';
import type { Member, Peer } from '../../core/peerTable.ts';
import { olderThan } from '../../core/ownership.ts';
import { matchesSelector, type LabelSelector } from '../../core/selector.ts';
import { effectiveSpec, READINESS_GATE, type EffectiveSpec } from '../../core/spec.ts';
import { hasReadinessGate, podView, type PodCondition, type PodObject } from '../../kube/pods.ts';
import type { PgClusterObject } from '../../kube/resources.ts';
import { timestamp } from './outputs.ts';

/** The outputs as observed (written), where the gate looks for a name. */
export interface PublishedOutputs {
  /** The names in the ConfigMap; or why it is not ours to write (someone else's). */
  configMap: ReadonlySet<string> | { refused: string };
  /**
   * Member pod -> the names in its annotation (with the `version` format: the names of the list whose version
   * it carries), for each member whose annotation this PgCluster writes; undefined: the output is off.
   */
  annotations: ReadonlyMap<string, ReadonlySet<string>> | undefined;
  /** The addresses in the DNS output's slices, or why its Service is not ours; undefined: the output is off. */
  dns: ReadonlySet<string> | { refused: string } | undefined;
  /** Writes the API server refused lately, as the PgCluster's Ready condition says. */
  refused: string | undefined;
}

/** A PgCluster that selects pods: the oldest selecting a pod writes its gate. */
export interface SelectorClaim {
  name: string;
  created: string;
  selector: LabelSelector;
}

export interface GateInput {
  pgcluster: { name: string; created: string };
  spec: Pick<EffectiveSpec, 'basename' | 'mode' | 'clusterDomain' | 'publishNotReadyPods'>;
  /** The selected pods, as cached. */
  selected: readonly PodObject[];
  members: readonly Member[];
  /** The peers this reconcile publishes (after maxPeers and the outputs' byte budgets). */
  published: readonly Peer[];
  outputs: PublishedOutputs;
  /** A pod's gate condition as cached, or as we last wrote it. */
  observed(pod: PodObject): PodCondition | undefined;
  /** The other PgClusters of the namespace (valid, not being deleted). */
  rivals: readonly SelectorClaim[];
}

export interface GateWrite {
  /** The pod as cached: its resourceVersion is what the write memo waits for the cache to move past. */
  pod: PodObject;
  condition: GateDesired & { type: string; lastTransitionTime: string };
}

export type GateReason = 'Published' | 'ContainersNotReady' | 'NotAnnounced' | 'NotPublished' | 'OutputRefused';
const WAITS: ReadonlySet<string> = new Set<GateReason>(['ContainersNotReady', 'NotPublished']);

export interface GateDesired {
  status: 'True' | 'False';
  reason: GateReason;
  message: string;
}

export interface GatePlan {
  writes: GateWrite[];
  /** Gated pods announced and not yet in every output: the end of the fan-out pass must bring a reconcile. */
  waiting: number;
  /** Every gated pod's desired condition by pod name, written or not. */
  desired: Map<string, GateDesired>;
}

export function planGates(g: GateInput, nowIso: string): GatePlan {
  const plan: GatePlan = { writes: [], waiting: 0, desired: new Map() };
  const memberOf = new Map(g.members.map((m) => [m.pod, m]));
  const published = new Set(g.published.map((p) => p.node));
  for (const pod of g.selected) {
    if (!hasReadinessGate(pod) || olderSelector(g, pod)) continue;
    const obs = g.observed(pod);
    const d = desiredFor(g, pod, memberOf.get(pod.metadata.name), published, obs?.status === 'True');
    plan.desired.set(pod.metadata.name, d);
    if (d.reason === 'NotPublished') plan.waiting++;
    if (!needsWrite(obs, d)) continue;
    const lastTransitionTime = obs && obs.status === d.status && obs.lastTransitionTime ? obs.lastTransitionTime : nowIso;
    plan.writes.push({ pod, condition: { type: READINESS_GATE, ...d, lastTransitionTime } });
  }
  return plan;
}

/** Whether `d` must be written over `obs` (the rules in the header). */
function needsWrite(obs: PodCondition | undefined, d: GateDesired): boolean {
  const same = obs?.status === d.status && obs.reason === d.reason && obs.message === d.message;
  if (same) return false;
  if (!WAITS.has(d.reason)) return true;
  return obs !== undefined && (obs.status !== 'False' || !WAITS.has(obs.reason ?? ''));
}

/** Another PgCluster, older than this one, selects the pod: its gate is that one's to write. */
function olderSelector(g: GateInput, pod: PodObject): boolean {
  const labels = pod.metadata.labels ?? {};
  return g.rivals.some((r) => olderThan(r, g.pgcluster) && matchesSelector(labels, r.selector));
}

function desiredFor(g: GateInput, pod: PodObject, member: Member | undefined, published: ReadonlySet<string>, wasTrue: boolean): GateDesired {
  const of = `PgCluster ${g.pgcluster.name}`;
  const view = podView(pod);
  if (!isEligible(view, g.spec.publishNotReadyPods)) {
    return { status: 'False', reason: 'ContainersNotReady', message: `waiting for the pod's containers to be ready: ${of} announces it then` };
  }
  if (!member) {
    const naming = podNodeName(view, g.spec);
    const why = naming.ok ? `another selected pod has its node name ${naming.node}` : naming.message;
    return { status: 'False', reason: 'NotAnnounced', message: `not announced by ${of}: ${why}` };
  }
  const node = member.node;
  if (!published.has(node)) {
    return { status: 'False', reason: 'OutputRefused', message: `${node} is left out of the outputs of ${of}: more names than maxPeers or than the outputs hold (see its status)` };
  }
  const isPublished: GateDesired = { status: 'True', reason: 'Published', message: `${node} is in every output of ${of}` };
  if (wasTrue) return isPublished; // stays True while published (see the header)
  const { missing, refused } = whereMissing(g, member);
  if (refused.length) return { status: 'False', reason: 'OutputRefused', message: `${node} cannot be published by ${of}: ${refused.join('; ')}` };
  if (!missing) return isPublished;
  if (g.outputs.refused) return { status: 'False', reason: 'OutputRefused', message: `${node} is not yet in every output of ${of}: ${g.outputs.refused}` };
  return { status: 'False', reason: 'NotPublished', message: `${node} is announced by ${of} and not yet in every output` };
}

/** Whether an output does not list the member yet, and the outputs that cannot (someone else's). */
function whereMissing(g: GateInput, m: Member): { missing: boolean; refused: string[] } {
  let missing = false;
  const refused: string[] = [];
  const { configMap, annotations, dns } = g.outputs;
  if ('refused' in configMap) refused.push(configMap.refused);
  else if (!configMap.has(m.node)) missing = true;
  if (annotations) for (const names of new Set(annotations.values())) if (!names.has(m.node)) missing = true;
  const addressed = peerAddresses([{ node: m.node, host: m.host, source: 'member', pod: m.pod }]);
  if (dns !== undefined && addressed.ipv4.length + addressed.ipv6.length > 0) {
    if ('refused' in dns) refused.push(dns.refused);
    else if (!dns.has(m.host)) missing = true;
  }
  return { missing, refused };
}

/** The PgCluster as a rival for pods' gates; undefined when it selects nothing (being deleted, invalid). */
export function selectorClaimOf(pc: PgClusterObject): SelectorClaim | undefined {
  if (pc.metadata.deletionTimestamp) return undefined;
  const r = effectiveSpec(pc);
  if (!r.ok) return undefined;
  return { name: pc.metadata.name, created: timestamp(pc.metadata.creationTimestamp), selector: r.spec.selector };
}
