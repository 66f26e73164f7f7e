// The benchmark's own view of the cluster: list+watch of pods, the operator's ConfigMaps and PgClusters in
// the bench namespaces, with the moment each event arrived (mono()). Latencies are measured between two
// events of these watches — the pod turning Ready (or being deleted) as the API server reported it on the
// same kind of stream the operator watches, and the last output write that made the membership visible.
import { pino } from 'pino';
import type { KubeClient } from '../../src/kube/client.ts';
import { Informer } from '../../src/kube/informer.ts';
import type { PodObject } from '../../src/kube/pods.ts';
import type { ConfigMapObject, PgClusterObject } from '../../src/kube/resources.ts';
import { mono } from './util.ts';

export const PEERS_ANNOTATION = 'pgcluster.io/peers';
const MANAGED = 'app.kubernetes.io/managed-by=pgcluster-operator';

export interface PodState {
  ns: string;
  name: string;
  labels: Record<string, string>;
  ip: string | undefined;
  ready: boolean;
  deleting: boolean;
  gone: boolean;
  annotation: string | undefined;
  /** mono() of the event in which the pod was first seen Ready with an IP. */
  readyAt: number | undefined;
  /** mono() of the event in which the pod was first seen deleting (or deleted). */
  goneAt: number | undefined;
}

interface Expectation {
  ns: string;
  cm: string;
  node: string;
  want: 'present' | 'absent';
  pending: Set<string>;
  cmOk: boolean;
  /** mono() when the ConfigMap first agreed. */
  cmAt: number | undefined;
  t0: number;
  resolve(r: Latency): void;
}

/** ms from t0 until everything agreed (`ms`) and until the ConfigMap alone did (`cmMs`). */
export interface Latency {
  ms: number;
  cmMs: number;
}

export interface ClusterOutputs {
  ns: string;
  cm: string;
  pods: string[];
  names: string[];
}

const silent = pino({ level: 'silent' });
const k = (ns: string, name: string) => `${ns}/${name}`;
const splitPeers = (s: string | undefined, sep: string) => (s ? s.split(sep).filter(Boolean) : []);

export class Tracker {
  readonly pods = new Map<string, PodState>();
  /** ConfigMap key -> its `peers` names. */
  readonly cms = new Map<string, Set<string>>();
  /** Events seen (adds, updates, deletes) per kind, for cross-checking write counts. */
  readonly events = { pods: 0, configmaps: 0, pgclusters: 0 };
  readonly pgclusters = new Map<string, PgClusterObject>();
  #informers: Informer<PodObject | ConfigMapObject | PgClusterObject>[] = [];
  #expectations = new Set<Expectation>();
  #podHooks: ((p: PodState, prev: PodState | undefined, at: number) => void)[] = [];
  #all: { want: Map<string, string>; ok: Set<string>; resolve(at: number): void } | undefined;
  /** Every pod seen with an IP, by IP (kwok hands freed IPs out again). */
  readonly podsByIp = new Map<string, Set<string>>();

  constructor(kube: KubeClient, namespaces: string[]) {
    for (const ns of namespaces) {
      const pods = new Informer<PodObject>(kube, { path: `/api/v1/namespaces/${ns}/pods`, log: silent });
      pods.on((ev, obj) => this.#pod(ev, obj));
      const cms = new Informer<ConfigMapObject>(kube, { path: `/api/v1/namespaces/${ns}/configmaps`, labelSelector: MANAGED, log: silent });
      cms.on((ev, obj) => this.#cm(ev, obj));
      const pcs = new Informer<PgClusterObject>(kube, { path: `/apis/pgcluster.io/v1alpha1/namespaces/${ns}/pgclusters`, log: silent });
      pcs.on((ev, obj) => {
        this.events.pgclusters++;
        if (ev === 'delete') this.pgclusters.delete(k(ns, obj.metadata.name));
        else this.pgclusters.set(k(ns, obj.metadata.name), obj);
      });
      this.#informers.push(pods as Informer<PodObject | ConfigMapObject | PgClusterObject>, cms as never, pcs as never);
    }
  }

  async start(): Promise<void> {
    for (const i of this.#informers) i.start();
    await Promise.all(this.#informers.map((i) => i.waitForSync()));
  }

  stop(): void {
    for (const i of this.#informers) i.stop();
    for (const e of this.#expectations) e.resolve({ ms: NaN, cmMs: NaN });
    this.#expectations.clear();
  }

  /** Called synchronously on every pod event, after the state is updated (to register expectations at t0). */
  onPod(cb: (p: PodState, prev: PodState | undefined, at: number) => void): () => void {
    this.#podHooks.push(cb);
    return () => { this.#podHooks = this.#podHooks.filter((h) => h !== cb); };
  }

  /** Members of a cluster as the operator should see them: selected by `app` label, Ready with an IP, not deleting. */
  members(ns: string, app: string): PodState[] {
    const out: PodState[] = [];
    for (const p of this.pods.values()) if (p.ns === ns && p.labels.app === app && p.ready && p.ip && !p.deleting && !p.gone) out.push(p);
    return out;
  }

  /**
   * Resolves with the ms from t0 until `node` is present in (or absent from) ConfigMap `cm` and in the
   * annotation of every pod in `pods` (pods deleted meanwhile are dropped from the wait). NaN on stop().
   */
  expect(ns: string, cm: string, node: string, want: 'present' | 'absent', pods: string[], t0: number): Promise<Latency> {
    return new Promise((resolve) => {
      const e: Expectation = { ns, cm, node, want, pending: new Set(), cmOk: false, cmAt: undefined, t0, resolve: (r) => { this.#expectations.delete(e); resolve(r); } };
      e.cmOk = this.#cmSays(e);
      if (e.cmOk) e.cmAt = t0;
      for (const p of pods) {
        const st = this.pods.get(k(ns, p));
        if (st && !st.gone && !st.deleting && !this.#podSays(e, st)) e.pending.add(p);
      }
      this.#expectations.add(e);
      this.#check(e, mono());
    });
  }

  /** The expectations still waiting, for a timeout message. */
  waiting(): { node: string; want: string; cmOk: boolean; pending: string[]; sinceMs: number }[] {
    return [...this.#expectations].map((e) => ({ node: e.node, want: e.want, cmOk: e.cmOk, pending: [...e.pending], sinceMs: Math.round(mono() - e.t0) }));
  }

  /** Resolves with mono() of the event that made every listed output exactly right. */
  expectAll(clusters: ClusterOutputs[]): Promise<number> {
    const want = new Map<string, string>();
    for (const c of clusters) {
      const names = [...c.names].sort();
      want.set(`cm:${k(c.ns, c.cm)}`, names.join('\n'));
      for (const p of c.pods) want.set(`pod:${k(c.ns, p)}`, names.join('\n'));
    }
    return new Promise((resolve) => {
      const ok = new Set<string>();
      this.#all = { want, ok, resolve: (at) => { this.#all = undefined; resolve(at); } };
      for (const [key, set] of this.cms) this.#allCheck(`cm:${key}`, [...set]);
      for (const [key, p] of this.pods) this.#allCheck(`pod:${key}`, splitPeers(p.annotation, ','));
      if (this.#all && ok.size === want.size) this.#all.resolve(mono());
    });
  }

  /** How many of the outputs of the last expectAll() are right now (for progress). */
  allProgress(): { ok: number; total: number } {
    return { ok: this.#all?.ok.size ?? 0, total: this.#all?.want.size ?? 0 };
  }

  #allCheck(key: string, names: string[]): void {
    const a = this.#all;
    if (!a) return;
    const w = a.want.get(key);
    if (w === undefined) return;
    if ([...names].sort().join('\n') === w) a.ok.add(key); else a.ok.delete(key);
  }

  #pod(ev: string, obj: PodObject): void {
    const at = mono();
    this.events.pods++;
    const ns = obj.metadata.namespace ?? '';
    const key = k(ns, obj.metadata.name);
    const prev = this.pods.get(key);
    const ip = obj.status?.podIP || undefined;
    const ready = obj.status?.phase === 'Running' && (obj.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
    const gone = ev === 'delete';
    const deleting = gone || !!obj.metadata.deletionTimestamp;
    const st: PodState = {
      ns, name: obj.metadata.name, labels: obj.metadata.labels ?? {}, ip, ready, deleting, gone,
      annotation: obj.metadata.annotations?.[PEERS_ANNOTATION],
      readyAt: prev?.readyAt ?? (ready && ip ? at : undefined),
      goneAt: prev?.goneAt ?? (deleting ? at : undefined),
    };
    if (gone) this.pods.delete(key); else this.pods.set(key, st);
    if (ip) {
      let seen = this.podsByIp.get(ip);
      if (!seen) this.podsByIp.set(ip, (seen = new Set()));
      seen.add(key);
    }
    for (const h of this.#podHooks) h(st, prev, at);
    for (const e of this.#expectations) {
      if (e.ns !== ns || !e.pending.has(st.name)) continue;
      if (st.gone || st.deleting || this.#podSays(e, st)) e.pending.delete(st.name);
      this.#check(e, at);
    }
    if (this.#all) {
      this.#allCheck(`pod:${key}`, gone ? ['<gone>'] : splitPeers(st.annotation, ','));
      if (this.#all.ok.size === this.#all.want.size) this.#all.resolve(at);
    }
  }

  #cm(ev: string, obj: ConfigMapObject): void {
    const at = mono();
    this.events.configmaps++;
    const ns = obj.metadata.namespace ?? '';
    const key = k(ns, obj.metadata.name);
    const names = ev === 'delete' ? [] : splitPeers(obj.data?.peers, '\n');
    if (ev === 'delete') this.cms.delete(key); else this.cms.set(key, new Set(names));
    for (const e of this.#expectations) {
      if (e.ns !== ns || e.cm !== obj.metadata.name) continue;
      e.cmOk = this.#cmSays(e);
      if (e.cmOk) e.cmAt ??= at;
      this.#check(e, at);
    }
    if (this.#all) {
      this.#allCheck(`cm:${key}`, names);
      if (this.#all.ok.size === this.#all.want.size) this.#all.resolve(at);
    }
  }

  #cmSays(e: Expectation): boolean {
    const has = this.cms.get(k(e.ns, e.cm))?.has(e.node) ?? false;
    return e.want === 'present' ? has : !has;
  }

  #podSays(e: Expectation, p: PodState): boolean {
    const has = splitPeers(p.annotation, ',').includes(e.node);
    return e.want === 'present' ? has : !has;
  }

  #check(e: Expectation, at: number): void {
    if (e.cmOk && e.pending.size === 0) e.resolve({ ms: at - e.t0, cmMs: (e.cmAt ?? at) - e.t0 });
  }
}
