// Join and leave latency of one pod, measured on the bench's watches: t0 is the event in which the pod
// turned Ready with an IP (join) or got its deletionTimestamp (leave); the end is the event after which the
// ConfigMap and the annotation of every pod that was a member at t0 agree with the change.
import type { KubeClient } from '../../src/kube/client.ts';
import type { Latency, Tracker } from './tracker.ts';
import { DEFAULT_POD_ANNOTATION } from '../../src/core/spec.ts';
import { paths } from '../../src/kube/resources.ts';

export interface ClusterRef {
  ns: string;
  /** The pods' `app` label, which the PgCluster selects. */
  app: string;
  /** The PgCluster's name: the node names' basename. */
  basename: string;
  cm: string;
}

/** Call before creating the pod; resolves with the join latency (NaN if the tracker stops). */
export function awaitJoin(tracker: Tracker, c: ClusterRef, pod: string): Promise<Latency> {
  return new Promise((resolve) => {
    const off = tracker.onPod((st, prev, at) => {
      if (st.ns !== c.ns || st.name !== pod || !st.ready || !st.ip || st.deleting || (prev?.ready && prev.ip)) return;
      off();
      const members = tracker.members(c.ns, c.app).map((m) => m.name);
      resolve(tracker.expect(c.ns, c.cm, `${c.basename}@${st.ip}`, 'present', members, at));
    });
  });
}

/** Call before deleting the pod (a member); resolves with the leave latency in ms. */
export function awaitLeave(tracker: Tracker, c: ClusterRef, pod: string): Promise<Latency> {
  return new Promise((resolve) => {
    const ip = tracker.pods.get(`${c.ns}/${pod}`)?.ip;
    if (!ip) throw new Error(`pod ${c.ns}/${pod} has no IP: it is not a member`);
    const off = tracker.onPod((st, prev, at) => {
      if (st.ns !== c.ns || st.name !== pod || !st.deleting || prev?.deleting) return;
      off();
      const members = tracker.members(c.ns, c.app).map((m) => m.name);
      resolve(tracker.expect(c.ns, c.cm, `${c.basename}@${ip}`, 'absent', members, at));
    });
  });
}

/** For a timeout: what the bench's watch shows against what the API server says now. */
export async function diagnose(kube: KubeClient, tracker: Tracker, c: ClusterRef): Promise<string> {
  const cm = await kube.getOptional<{ data?: Record<string, string> }>(paths.configMap(c.ns, c.cm));
  const live = (cm?.data?.peers ?? '').split('\n').filter(Boolean);
  const watched = tracker.cms.get(`${c.ns}/${c.cm}`);
  const want = new Set(tracker.members(c.ns, c.app).map((m) => `${c.basename}@${m.ip}`));
  const extra = live.filter((n) => !want.has(n));
  const missing = [...want].filter((n) => !live.includes(n));
  const parts = [`ConfigMap ${c.cm}: ${live.length} names on the API server (extra: ${extra.join(' ') || '-'}; missing: ${missing.join(' ') || '-'}), `
    + `${watched?.size ?? 'none'} in the bench's watch cache; bench sees ${tracker.members(c.ns, c.app).length} members`];
  for (const w of tracker.waiting()) {
    const ip = w.node.slice(w.node.indexOf('@') + 1);
    const pods = [...(tracker.podsByIp.get(ip) ?? [])].join(' ');
    const pending: string[] = [];
    for (const p of w.pending.slice(0, 5)) {
      const pod = await kube.getOptional<{ metadata: { annotations?: Record<string, string> } }>(paths.pod(c.ns, p));
      const a = pod?.metadata.annotations?.[DEFAULT_POD_ANNOTATION];
      pending.push(`${p} (live annotation ${a === undefined ? 'absent' : a.split(',').includes(w.node) ? 'has it' : `lacks it, ${a.split(',').length} names`})`);
    }
    parts.push(`waiting ${w.sinceMs} ms for ${w.node} ${w.want}: ConfigMap ${w.cmOk ? 'agrees' : `does not (live: ${live.includes(w.node) ? 'has it' : 'lacks it'})`}; `
      + `${w.pending.length} pod annotations pending: ${pending.join(', ') || '-'}; pods ever seen with ${ip}: ${pods}`);
  }
  return parts.join('; ');
}
