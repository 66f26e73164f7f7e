// What a rolling update of BEAM app pods looks like from the outside, for the readiness-gate e2e and the gate
// benchmark alike: a watch of the pods (when each was Ready, when its gate flipped, when it began to go) and
// every pod's logs followed from its start (its app's events and its file watcher's lines), kept after the pod
// is gone. Then pure measures over that record: whether a pod became Ready before every other Ready member's
// files listed it, whether a leaving pod left every file before its peers saw it disconnect, and how long some
// Ready pod was not connected to some other Ready pod.
import { spawn, type ChildProcess } from 'node:child_process';
import pino from 'pino';
import type { KubeClient } from '../../src/kube/client.ts';
import { Informer } from '../../src/kube/informer.ts';
import { READINESS_GATE } from '../../src/core/spec.ts';
import { parseAppLine, parseFileWatcherLine } from './apps.ts';
import { isReady } from './kube.ts';

interface PodJson {
  metadata: { name: string; namespace?: string; resourceVersion?: string; deletionTimestamp?: string; annotations?: Record<string, string> };
  status?: { podIP?: string; phase?: string; conditions?: { type: string; status: string; reason?: string; message?: string }[]; containerStatuses?: { name: string; state?: { running?: unknown; terminated?: unknown } }[] };
}

/** One pod's life as recorded: times are wall-clock ms on this machine (the watch's receipt, or the lines' own). */
export interface PodTrack {
  name: string;
  /** Its node name, once it has an IP: `<basename>@<IP>`. */
  node: string | undefined;
  /** Ready (condition True, not being deleted) as it changed. */
  ready: { at: number; ready: boolean }[];
  gateTrueAt: number | undefined;
  /** The resourceVersion of the pod when its gate was first seen True. */
  gateTrueRv: string | undefined;
  /** Its gate condition as it changed (status, reason or message): one entry per write that changed it. */
  gate: { at: number; status: string; reason: string; message: string }[];
  /** Its peers annotation (RecorderOptions.annotation) in the API as it changed: at which resourceVersion, which names. */
  annotations: { rv: string; names: string[] }[];
  deletingAt: number | undefined;
  /** The file watcher's lines: which mounted file showed which names, when. */
  files: { at: number; file: 'annotation' | 'configmap'; names: string[] }[];
  /** The app's lines: seen, gone, connected, disconnected, nodes, stopping, ... */
  app: { at: number; event: string; arg: string }[];
}

export interface RecorderOptions {
  kube: KubeClient;
  ns: string;
  /** Which pods: a label selector. */
  labelSelector: string;
  basename: string;
  /** The stack's kubectl and kubeconfig (logs are followed with `kubectl logs -f`). */
  kubectl: string;
  kubeconfig: string;
  /** The containers whose logs are followed: the app's and the file watcher's (none: no file lines). */
  appContainer: string;
  filesContainer?: string;
  /** The peers annotation and the ConfigMap whose versions are recorded (for the order of writes, gateAfterOutputs). */
  annotation?: string;
  configMap?: string;
}

/** Records the pods of a selector from start() to stop(): their Ready changes and their containers' logs. */
export class PodRecorder {
  readonly pods = new Map<string, PodTrack>();
  /** The ConfigMap's `peers` as it changed (RecorderOptions.configMap): at which resourceVersion, which names. */
  readonly configMap: { rv: string; names: string[] }[] = [];
  #o: RecorderOptions;
  #informer: Informer<PodJson & { metadata: { name: string } }>;
  #cmInformer: Informer<{ metadata: { name: string; resourceVersion?: string }; data?: Record<string, string> }> | undefined;
  #followers = new Map<string, ChildProcess>();
  #retry = new Set<NodeJS.Timeout>();
  #stopped = false;

  constructor(o: RecorderOptions) {
    this.#o = o;
    this.#informer = new Informer(o.kube, { path: `/api/v1/namespaces/${o.ns}/pods`, labelSelector: o.labelSelector, log: pino({ level: 'silent' }), transform: (x) => x });
    this.#informer.on((event, pod) => this.#saw(pod, event === 'delete'));
    if (o.configMap) {
      this.#cmInformer = new Informer(o.kube, { path: `/api/v1/namespaces/${o.ns}/configmaps`, log: pino({ level: 'silent' }), transform: (x) => x });
      this.#cmInformer.on((event, cm) => {
        if (event === 'delete' || cm.metadata.name !== o.configMap) return;
        const names = (cm.data?.peers ?? '').split('\n').filter(Boolean);
        if (JSON.stringify(this.configMap.at(-1)?.names) !== JSON.stringify(names)) this.configMap.push({ rv: cm.metadata.resourceVersion ?? '', names });
      });
    }
  }

  async start(): Promise<void> {
    this.#informer.start();
    this.#cmInformer?.start();
    await Promise.all([this.#informer.waitForSync(), this.#cmInformer?.waitForSync()]);
  }

  /** Stops the watch and every log follower (by its process). */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#informer.stop();
    this.#cmInformer?.stop();
    for (const t of this.#retry) clearTimeout(t);
    const exits = [...this.#followers.values()].map((c) => new Promise<void>((r) => { if (c.exitCode !== null || c.signalCode !== null) r(); else { c.once('exit', () => r()); c.kill('SIGTERM'); } }));
    await Promise.all(exits);
  }

  #saw(pod: PodJson, deleted: boolean): void {
    const now = Date.now();
    const name = pod.metadata.name;
    let t = this.pods.get(name);
    if (!t) this.pods.set(name, (t = { name, node: undefined, ready: [], gateTrueAt: undefined, gateTrueRv: undefined, gate: [], annotations: [], deletingAt: undefined, files: [], app: [] }));
    if (pod.status?.podIP) t.node ??= `${this.#o.basename}@${pod.status.podIP}`;
    if (pod.metadata.deletionTimestamp || deleted) t.deletingAt ??= now;
    const ready = isReady(pod) && t.deletingAt === undefined;
    if ((t.ready.at(-1)?.ready ?? false) !== ready) t.ready.push({ at: now, ready });
    const rv = pod.metadata.resourceVersion ?? '';
    const gate = pod.status?.conditions?.find((c) => c.type === READINESS_GATE);
    const last = t.gate.at(-1);
    if (gate && (last?.status !== gate.status || last.reason !== (gate.reason ?? '') || last.message !== (gate.message ?? ''))) {
      t.gate.push({ at: now, status: gate.status, reason: gate.reason ?? '', message: gate.message ?? '' });
    }
    if (t.gateTrueAt === undefined && gate?.status === 'True') {
      t.gateTrueAt = now;
      t.gateTrueRv = rv;
    }
    if (this.#o.annotation && !deleted) {
      const names = (pod.metadata.annotations?.[this.#o.annotation] ?? '').split(',').filter(Boolean);
      if (JSON.stringify(t.annotations.at(-1)?.names) !== JSON.stringify(names)) t.annotations.push({ rv, names });
    }
    for (const c of pod.status?.containerStatuses ?? []) {
      if (c.state?.running || c.state?.terminated) this.#follow(name, c.name);
    }
  }

  /** `kubectl logs -f` of one container from its start; tried again while the container is not there yet. */
  #follow(pod: string, container: string): void {
    const o = this.#o;
    if (container !== o.appContainer && container !== o.filesContainer) return;
    const key = `${pod}/${container}`;
    if (this.#stopped || this.#followers.has(key)) return;
    const child = spawn(o.kubectl, ['-n', o.ns, 'logs', '-f', pod, '-c', container], { env: { ...process.env, KUBECONFIG: o.kubeconfig }, stdio: ['ignore', 'pipe', 'ignore'] });
    this.#followers.set(key, child);
    let buf = '';
    let lines = 0;
    child.stdout.on('data', (b: Buffer) => {
      buf += b.toString();
      const parts = buf.split('\n');
      buf = parts.pop() ?? '';
      for (const l of parts) {
        lines++;
        this.#line(pod, container, l);
      }
    });
    child.on('exit', (code) => {
      // Nothing read and a failure: the container was not there yet. Once gone for good, it stays gone.
      if (code !== 0 && lines === 0 && !this.#stopped && this.pods.get(pod)?.deletingAt === undefined) {
        const t = setTimeout(() => { this.#retry.delete(t); this.#followers.delete(key); this.#follow(pod, container); }, 500);
        this.#retry.add(t);
      }
    });
  }

  #line(pod: string, container: string, line: string): void {
    const t = this.pods.get(pod);
    if (!t) return;
    if (container === this.#o.filesContainer) {
      const f = parseFileWatcherLine(line);
      if (f) t.files.push({ at: f.at, file: f.file, names: f.names });
    } else {
      const a = parseAppLine(line);
      if (a) t.app.push(a);
    }
  }
}

const readyAt = (t: PodTrack, at: number): boolean => {
  let r = false;
  for (const x of t.ready) if (x.at <= at) r = x.ready;
  return r;
};
const firstReady = (t: PodTrack): number | undefined => t.ready.find((x) => x.ready)?.at;

/** When the union of a pod's two mounted files first listed `node` (from `since`), or undefined. */
function firstListed(t: PodTrack, node: string, since = -Infinity): number | undefined {
  return t.files.find((f) => f.at >= since && f.names.includes(node))?.at;
}

/** From `since` on, when neither of a pod's mounted files listed `node` (`since` itself if they did not then). */
function firstDropped(t: PodTrack, node: string, since: number): number | undefined {
  const has: Record<string, boolean> = { annotation: false, configmap: false };
  let checked = false;
  for (const f of t.files) {
    if (f.at >= since && !checked) {
      checked = true;
      if (!has.annotation && !has.configmap) return since;
    }
    has[f.file] = f.names.includes(node);
    if (f.at >= since && !has.annotation && !has.configmap) return f.at;
  }
  return !checked && !has.annotation && !has.configmap ? since : undefined;
}

export interface JoinCheck {
  pod: string;
  node: string;
  readyAt: number;
  /** Per member Ready then: when its files first listed the new pod, minus the new pod's Ready (ms; <= 0 is in time). */
  margins: { member: string; ms: number | undefined }[];
}

/**
 * For each pod that became Ready after `since`: every other member Ready at that moment, and when its files
 * first listed the new pod's name relative to its Ready (a missing or positive margin is a violation).
 */
export function joinChecks(tracks: Iterable<PodTrack>, since: number): JoinCheck[] {
  const all = [...tracks];
  const out: JoinCheck[] = [];
  for (const p of all) {
    const r = firstReady(p);
    if (r === undefined || r < since || !p.node) continue;
    const members = all.filter((m) => m !== p && readyAt(m, r));
    out.push({
      pod: p.name, node: p.node, readyAt: r,
      margins: members.map((m) => {
        const listed = firstListed(m, p.node!);
        return { member: m.name, ms: listed === undefined ? undefined : listed - r };
      }),
    });
  }
  return out;
}

/** etcd revisions (resourceVersions here) in order; across kinds too, one etcd holds them all. */
const rvBefore = (a: string, b: string): boolean => a.length < b.length || (a.length === b.length && a < b);

export interface GateCheck {
  pod: string;
  node: string;
  /** The outputs that listed the pod only after its gate was True (at a later resourceVersion), or never. */
  late: string[];
}

/**
 * For each pod whose gate was seen True after `since`: the ConfigMap and the annotation of every other pod Ready
 * then listed it at an earlier resourceVersion than the one the gate's write made (the order of writes, not
 * of their arrival). `configMap` as PodRecorder.configMap records it.
 */
export function gateAfterOutputs(tracks: Iterable<PodTrack>, configMap: readonly { rv: string; names: string[] }[], since: number): GateCheck[] {
  const all = [...tracks];
  const out: GateCheck[] = [];
  for (const p of all) {
    if (p.gateTrueAt === undefined || p.gateTrueAt < since || !p.gateTrueRv || !p.node) continue;
    const gateRv = p.gateTrueRv;
    const listedBefore = (history: readonly { rv: string; names: string[] }[]) => history.some((h) => h.names.includes(p.node!) && rvBefore(h.rv, gateRv));
    const late: string[] = [];
    if (!listedBefore(configMap)) late.push('ConfigMap');
    for (const m of all) if (m !== p && readyAt(m, p.gateTrueAt) && !listedBefore(m.annotations)) late.push(`annotation of ${m.name}`);
    out.push({ pod: p.name, node: p.node, late });
  }
  return out;
}

export interface LeaveCheck {
  pod: string;
  node: string;
  deletingAt: number;
  /** Per peer that saw it disconnect (and was not leaving itself by then): files dropped it this many ms before (> 0 is in time). */
  leads: { member: string; ms: number | undefined }[];
}

/** For each pod deleted after `since`: in each other pod that saw it disconnect, how long before that its files dropped it. */
export function leaveChecks(tracks: Iterable<PodTrack>, since: number): LeaveCheck[] {
  const all = [...tracks];
  const out: LeaveCheck[] = [];
  for (const p of all) {
    if (p.deletingAt === undefined || p.deletingAt < since || !p.node) continue;
    const leads: LeaveCheck['leads'] = [];
    for (const m of all) {
      if (m === p) continue;
      const down = m.app.find((e) => e.event === 'disconnected' && e.arg === p.node && e.at >= p.deletingAt!)?.at;
      if (down === undefined || (m.deletingAt !== undefined && m.deletingAt <= down)) continue;
      const dropped = firstDropped(m, p.node, p.deletingAt);
      leads.push({ member: m.name, ms: dropped === undefined ? undefined : down - dropped });
    }
    out.push({ pod: p.name, node: p.node, deletingAt: p.deletingAt, leads });
  }
  return out;
}

/**
 * In [from, to]: the total time (ms) during which some Ready pod's Node.list() (its app's last "nodes" line)
 * lacked some other Ready pod. Ready: condition Ready True and not being deleted (a pod on its way out is no
 * longer served, and its peers are right to let it go).
 */
export function disconnectedMs(tracks: Iterable<PodTrack>, from: number, to: number): number {
  const all = [...tracks].filter((t) => t.node);
  const times = new Set<number>([from]);
  for (const t of all) {
    for (const x of t.ready) if (x.at > from && x.at < to) times.add(x.at);
    for (const e of t.app) if (e.event === 'nodes' && e.at > from && e.at < to) times.add(e.at);
  }
  const sorted = [...times].sort((a, b) => a - b);
  let total = 0;
  for (let i = 0; i < sorted.length; i++) {
    const at = sorted[i]!;
    const end = sorted[i + 1] ?? to;
    const ready = all.filter((t) => readyAt(t, at));
    const lacking = ready.some((p) => {
      const last = p.app.filter((e) => e.event === 'nodes' && e.at <= at).at(-1);
      const list = new Set(last ? last.arg.split(',').filter(Boolean) : []);
      return ready.some((q) => q !== p && !list.has(q.node!));
    });
    if (lacking) total += end - at;
  }
  return total;
}

/** Whether exactly `count` pods are live (not being deleted), all Ready, each with every other one in its Node.list(); else why not. */
export function clusteredNow(tracks: Iterable<PodTrack>, count: number): { ok: boolean; detail: string } {
  const live = [...tracks].filter((p) => p.deletingAt === undefined);
  const ready = live.filter((p) => p.ready.at(-1)?.ready && p.node);
  if (live.length !== count || ready.length !== count) return { ok: false, detail: `${ready.length} of ${live.length} live pods Ready, want ${count}` };
  for (const p of ready) {
    const last = p.app.filter((e) => e.event === 'nodes').at(-1)?.arg.split(',').filter(Boolean).sort() ?? [];
    const want = ready.filter((q) => q !== p).map((q) => q.node!).sort();
    if (JSON.stringify(last) !== JSON.stringify(want)) return { ok: false, detail: `${p.name} lists [${last.join(',')}], wants [${want.join(',')}]` };
  }
  return { ok: true, detail: '' };
}

interface DeploymentJson { metadata: { generation: number }; status?: { observedGeneration?: number; replicas?: number; updatedReplicas?: number; availableReplicas?: number } }

/**
 * Whether a Deployment's rollout is complete as `kubectl rollout status` has it (its new ReplicaSet has every
 * replica, all available, the old ones scaled to 0), and every pod in `old` is being deleted or gone.
 */
export async function rolloutDone(kube: KubeClient, ns: string, name: string, replicas: number, tracks: ReadonlyMap<string, PodTrack>, old: Iterable<string>): Promise<boolean> {
  const d = await kube.get<DeploymentJson>(`/apis/apps/v1/namespaces/${ns}/deployments/${name}`);
  const s = d.status ?? {};
  const oldGone = [...old].every((p) => tracks.get(p)?.deletingAt !== undefined);
  return (s.observedGeneration ?? 0) >= d.metadata.generation && s.replicas === replicas && s.updatedReplicas === replicas && s.availableReplicas === replicas && oldGone;
}
