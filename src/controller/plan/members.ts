// Which selected pods are members (announced on the channel), and why the others are not. Pure.
import { isEligible, podNodeName } from '../../core/nodeName.ts';
import type { Member } from '../../core/peerTable.ts';
import { matchesSelector } from '../../core/selector.ts';
import type { EffectiveSpec } from '../../core/spec.ts';
import { podView, type PodObject } from '../../kube/pods.ts';

export interface Selection {
  /** Pods the selector matches that are neither deleting nor terminated: they carry the annotation. */
  selected: PodObject[];
  /** Selected, eligible pods with a valid, distinct node name: announced on the channel. */
  members: Member[];
  /** Why selected pods are not announced (shown in the Ready condition). */
  unannounced: string[];
}

/** One pod's part of a selection, for the spec it was computed with. */
interface PodPart { selected: boolean; member?: Member; problem?: string }
/** Pod object -> its part and the spec it was computed for (cached pods are replaced, never changed). */
export type SelectionMemo = WeakMap<PodObject, { sig: string; part: PodPart }>;

/** `memo` (the runtime's): a pod's part is computed once per pod object and spec, not at every reconcile. */
export function selectMembers(pods: Iterable<PodObject>, spec: EffectiveSpec, memo?: SelectionMemo): Selection {
  const selected: PodObject[] = [];
  const members: Member[] = [];
  const unannounced: string[] = [];
  const sig = memo ? JSON.stringify([spec.selector, spec.publishNotReadyPods, spec.basename, spec.mode, spec.clusterDomain]) : '';
  for (const pod of pods) {
    const hit = memo?.get(pod);
    let part = hit && hit.sig === sig ? hit.part : undefined;
    if (!part) {
      part = podPart(pod, spec);
      memo?.set(pod, { sig, part });
    }
    if (!part.selected) continue;
    selected.push(pod);
    if (part.member) members.push(part.member);
    else if (part.problem) unannounced.push(part.problem);
  }
  unannounced.push(...dedupeMembers(members));
  return { selected, members, unannounced };
}

function podPart(pod: PodObject, spec: EffectiveSpec): PodPart {
  const view = podView(pod);
  if (!matchesSelector(view.labels, spec.selector) || view.deleting || view.terminated) return { selected: false };
  if (!isEligible(view, spec.publishNotReadyPods)) return { selected: true };
  const naming = podNodeName(view, spec);
  if (naming.ok) return { selected: true, member: { node: naming.node, host: naming.host, pod: view.name } };
  return naming.reason !== 'NoPodIP' ? { selected: true, problem: naming.message } : { selected: true };
}

/** Two pods with one node name (e.g. the same override): announce it once, and say so. */
function dedupeMembers(members: Member[]): string[] {
  const seen = new Map<string, string>();
  const problems: string[] = [];
  for (let i = members.length - 1; i >= 0; i--) {
    const m = members[i] as Member;
    const other = seen.get(m.node);
    if (other !== undefined) {
      problems.push(`pods ${m.pod} and ${other} have the same node name ${m.node}`);
      members.splice(i, 1);
    } else seen.set(m.node, m.pod);
  }
  return problems;
}
