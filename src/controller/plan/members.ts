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

export function selectMembers(pods: Iterable<PodObject>, spec: EffectiveSpec): Selection {
  const selected: PodObject[] = [];
  const members: Member[] = [];
  const unannounced: string[] = [];
  for (const pod of pods) {
    const view = podView(pod);
    if (!matchesSelector(view.labels, spec.selector) || view.deleting || view.terminated) continue;
    selected.push(pod);
    if (!isEligible(view, spec.publishNotReadyPods)) continue;
    const naming = podNodeName(view, spec);
    if (naming.ok) members.push({ node: naming.node, host: naming.host, pod: view.name });
    else if (naming.reason !== 'NoPodIP') unannounced.push(naming.message);
  }
  unannounced.push(...dedupeMembers(members));
  return { selected, members, unannounced };
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
