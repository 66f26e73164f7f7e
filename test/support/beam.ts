// Real BEAM apps in pods on the real node (the examples' apps: examples/mounted-files/peer_watch.exs,
// examples/dns-cluster/dns_poll.exs): what they print, and the wait until they form one cluster.
import { parseAppLine } from '../harness/apps.ts';
import { isReady } from '../harness/kube.ts';
import { kubectl, kubectlJson, MOUNTED_FILE_SYNC_MS, waitFor } from './env.ts';

export interface AppPod {
  metadata: { name: string; deletionTimestamp?: string };
  status: {
    phase?: string;
    podIP?: string;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
    containerStatuses?: { name: string; ready: boolean; restartCount: number; state?: Record<string, { reason?: string; message?: string; exitCode?: number } | undefined> }[];
  };
}

export type AppEvent = { at: number; event: string; arg: string };

/** The app's event lines ("<ms> <event> <args>"), from its log. */
export async function appEvents(ns: string, pod: string): Promise<AppEvent[]> {
  const log = await kubectl(['logs', pod], { ns });
  return log.split('\n').flatMap((l) => parseAppLine(l) ?? []);
}

/** Node.list() as the app last printed it ("nodes a,b,..."). */
export function lastNodeList(events: readonly AppEvent[]): string[] {
  const last = events.filter((e) => e.event === 'nodes').at(-1);
  return last ? last.arg.split(',').filter(Boolean).sort() : [];
}

/** The pods of `selector` (label=value,...) that are not being deleted. */
export async function livePods(ns: string, selector: string): Promise<AppPod[]> {
  return (await kubectlJson<{ items: AppPod[] }>(['get', 'pods', '-l', selector], { ns })).items.filter((p) => !p.metadata.deletionTimestamp);
}

/** Why a pod is not Ready, in a line: its phase, the conditions that are not True, its containers' states. */
export function podState(p: AppPod): string {
  const conditions = (p.status.conditions ?? []).filter((c) => c.status !== 'True')
    .map((c) => `${c.type}=${c.status}${c.reason ? ` (${c.reason}${c.message ? `: ${c.message}` : ''})` : ''}`);
  const containers = (p.status.containerStatuses ?? []).flatMap((c) => Object.entries(c.state ?? {})
    .filter(([state]) => state !== 'running')
    .map(([state, s]) => `container ${c.name} ${state}${s?.reason ? ` ${s.reason}` : ''}${s?.message ? `: ${s.message}` : ''}`)
    .concat(c.restartCount ? [`container ${c.name} restarted ${c.restartCount}x`] : []));
  return `${p.metadata.name} ${p.status.phase ?? 'no phase'}${p.status.podIP ? ` ${p.status.podIP}` : ''}: ${[...conditions, ...containers].join(', ') || 'Ready'}`;
}

/** The namespace's latest Warning events (a failing probe, a missing Secret, an unschedulable pod), one line each. */
export async function warningEvents(ns: string, most = 6): Promise<string[]> {
  const list = await kubectlJson<{ items: { involvedObject: { kind: string; name: string }; reason: string; message: string; count?: number; lastTimestamp?: string; eventTime?: string }[] }>(
    ['get', 'events', '--field-selector', 'type=Warning'], { ns }).catch(() => ({ items: [] }));
  return list.items
    .sort((a, b) => (a.lastTimestamp ?? a.eventTime ?? '').localeCompare(b.lastTimestamp ?? b.eventTime ?? ''))
    .slice(-most)
    .map((e) => `${e.involvedObject.kind}/${e.involvedObject.name} ${e.reason}${e.count && e.count > 1 ? ` (x${e.count})` : ''}: ${e.message.trim()}`);
}

/**
 * Waits until exactly `count` pods of `selector` are Ready, each with an IP, and every one's app has every other
 * pod's node `<basename>@<its IP>` (and `extra`) in its Node.list(), as it last printed it; and `check`, given a
 * pod, its app's events and all the pods, returns nothing (else what is still missing). On timeout the error
 * says what was missing last, which pods are not Ready and why, and the namespace's latest Warning events.
 */
export async function waitForBeamCluster(o: {
  ns: string; selector: string; basename: string; count: number; what: string; extra?: string[]; timeoutMs?: number;
  check?: (pod: AppPod, events: AppEvent[], pods: AppPod[]) => string | undefined;
}): Promise<AppPod[]> {
  const nodeOf = (p: AppPod) => `${o.basename}@${p.status.podIP}`;
  return waitFor(async () => {
    const pods = await livePods(o.ns, o.selector);
    const notReady = pods.filter((p) => !isReady(p) || !p.status.podIP);
    if (pods.length !== o.count || notReady.length) {
      throw new Error(`${pods.length} of ${o.count} pods, ${notReady.length} not Ready: ${notReady.map(podState).join('; ')}`);
    }
    for (const p of pods) {
      const events = await appEvents(o.ns, p.metadata.name);
      const want = [...pods.filter((q) => q !== p).map(nodeOf), ...(o.extra ?? [])].sort();
      const have = lastNodeList(events);
      // What the app itself said was wrong (a name that is not in its files, an address not in its answer).
      const warning = events.filter((e) => e.event === 'warning').at(-1);
      const says = warning ? `; the app warns: ${warning.arg}` : '';
      if (JSON.stringify(have) !== JSON.stringify(want)) throw new Error(`${p.metadata.name} (${nodeOf(p)}) lists [${have.join(',')}] in Node.list(), wants [${want.join(',')}]${says}`);
      const missing = o.check?.(p, events, pods);
      if (missing) throw new Error(`${p.metadata.name} (${nodeOf(p)}): ${missing}${says}`);
    }
    return pods;
  }, { timeoutMs: o.timeoutMs ?? MOUNTED_FILE_SYNC_MS, intervalMs: 500, message: `${o.what}: ${o.count} Ready pods (${o.selector}), every app's Node.list() holding the others` })
    .catch(async (e: Error) => {
      const warnings = await warningEvents(o.ns);
      throw new Error(`${e.message}${warnings.length ? `\nlatest Warning events in ${o.ns}:\n  ${warnings.join('\n  ')}` : ''}`);
    });
}
