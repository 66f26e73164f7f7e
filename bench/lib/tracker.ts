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
import { DEFAULT_POD_ANNOTATION } from '../../src/core/spec.ts';
import { PEERS_VERSION, peersVersion } from '../../src/core/outputs.ts';
import { paths } from '../../src/kube/resources.ts';

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
  /** The names the annotation lists, parsed once per event (a version: its list's); undefined: not known yet. */
  names: ReadonlySet<string> | undefined;
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

/** The outputs of one PgCluster, which should list its members as they are now. */
export interface ClusterOutputs {
  ns: string;
  cm: string;
  /** Pods whose annotation is checked. */
  pods: string[];
  /** The pods' `app` label (the PgCluster's selector) and the node names' basename. */
  app: string;
  basename: string;
}

interface AllState {
  /** Output key ("cm:ns/name" or "pod:ns/name") -> its cluster ("ns/app"). */
  clusterOf: Map<string, string>;
  /** Cluster -> its spec and its output keys. */
  clusters: Map<string, { spec: ClusterOutputs; keys: string[] }>;
  ok: Set<string>;
  resolve(at: number): void;
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
  #all: AllState | undefined;
  /** "ns/app" -> pod name -> state, for pods that are members now (Ready, an IP, not deleting, not gone). */
  #members = new Map<string, Map<string, PodState>>();
  /** Every pod seen with an IP, by IP (kwok hands freed IPs out again). */
  readonly podsByIp = new Map<string, Set<string>>();
  /** Pods whose IP changed after they had one: "ns/name old -> new". */
  readonly ipChanges: string[] = [];
  /**
   * Every list a ConfigMap has held, by its version (podAnnotationFormat version: an annotation carrying a
   * version lists the names of that list; one the bench has not seen in a ConfigMap yet lists nothing yet).
   */
  readonly versions = new Map<string, ReadonlySet<string>>();
  /** Version -> pods ("ns/name") whose annotation carried it before any ConfigMap did: looked at again then. */
  #unknown = new Map<string, Set<string>>();

  /** The names an annotation value lists (a list, or the list of the version it carries); undefined: not known yet. */
  annotationNames(v: string | undefined): ReadonlySet<string> | undefined {
    if (v !== undefined && PEERS_VERSION.test(v)) return this.versions.get(v);
    return new Set(splitPeers(v, ','));
  }

  constructor(kube: KubeClient, namespaces: string[]) {
    for (const ns of namespaces) {
      const pods = new Informer<PodObject>(kube, { path: paths.pods(ns), log: silent });
      pods.on((ev, obj) => this.#pod(ev, obj));
      const cms = new Informer<ConfigMapObject>(kube, { path: paths.configMaps(ns), labelSelector: MANAGED, log: silent });
      cms.on((ev, obj) => this.#cm(ev, obj));
      const pcs = new Informer<PgClusterObject>(kube, { path: paths.pgclusters(ns), log: silent });
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
    return [...(this.#members.get(k(ns, app))?.values() ?? [])];
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

  /**
   * Resolves with mono() of the event that made every listed output list exactly the cluster's members as
   * they are at that moment (kwok may give a Ready pod a new IP: what is right follows it).
   */
  expectAll(clusters: ClusterOutputs[]): Promise<number> {
    return new Promise((resolve) => {
      const a: AllState = { clusterOf: new Map(), clusters: new Map(), ok: new Set(), resolve: (at) => { this.#all = undefined; resolve(at); } };
      for (const c of clusters) {
        const id = k(c.ns, c.app);
        const keys = [`cm:${k(c.ns, c.cm)}`, ...c.pods.map((p) => `pod:${k(c.ns, p)}`)];
        a.clusters.set(id, { spec: c, keys });
        for (const key of keys) a.clusterOf.set(key, id);
      }
      this.#all = a;
      for (const id of a.clusters.keys()) this.#allCheckCluster(id);
      this.#allDone(mono());
    });
  }

  /**
   * The node names the outputs should list: each once. kwok now and then gives two pods one IP (it recycles
   * the IPs of deleted pods); their one node name is announced once, and Ready says so.
   */
  #want(id: string): string[] {
    const c = this.#all?.clusters.get(id);
    if (!c) return [];
    return [...new Set([...(this.#members.get(id)?.values() ?? [])].map((p) => `${c.spec.basename}@${p.ip}`))].sort();
  }

  #have(key: string): string[] {
    const id = key.slice(key.indexOf(':') + 1);
    if (key.startsWith('cm:')) return [...(this.cms.get(id) ?? [])];
    const p = this.pods.get(id);
    return p ? [...(p.names ?? [`<unknown version ${p.annotation}>`])] : ['<gone>'];
  }

  #allCheck(key: string, want?: string): void {
    const a = this.#all;
    const id = a?.clusterOf.get(key);
    if (!a || id === undefined) return;
    const w = want ?? this.#want(id).join('\n');
    if ([...this.#have(key)].sort().join('\n') === w) a.ok.add(key); else a.ok.delete(key);
  }

  #allCheckCluster(id: string): void {
    const c = this.#all?.clusters.get(id);
    if (!c) return;
    const w = this.#want(id).join('\n');
    for (const key of c.keys) this.#allCheck(key, w);
  }

  #allDone(at: number): void {
    const a = this.#all;
    if (a && a.ok.size === a.clusterOf.size) a.resolve(at);
  }

  /** The outputs of the pending expectAll() that are not right yet: key, wanted names, names seen. */
  allWrong(limit = 5): { key: string; want: string[]; have: string[] }[] {
    const a = this.#all;
    if (!a) return [];
    const out: { key: string; want: string[]; have: string[] }[] = [];
    for (const [key, id] of a.clusterOf) {
      if (a.ok.has(key) || out.length >= limit) continue;
      out.push({ key, want: this.#want(id), have: this.#have(key) });
    }
    return out;
  }

  /** How many of the outputs of the pending expectAll() are right now (for progress). */
  allProgress(): { ok: number; total: number } {
    return { ok: this.#all?.ok.size ?? 0, total: this.#all?.clusterOf.size ?? 0 };
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
      annotation: obj.metadata.annotations?.[DEFAULT_POD_ANNOTATION],
      names: undefined,
      readyAt: prev?.readyAt ?? (ready && ip ? at : undefined),
      goneAt: prev?.goneAt ?? (deleting ? at : undefined),
    };
    // The same value as the previous event (most pod events are not the annotation's): its names again.
    st.names = prev && prev.annotation === st.annotation ? prev.names : this.annotationNames(st.annotation);
    if (gone) this.pods.delete(key); else this.pods.set(key, st);
    if (!gone && st.annotation !== undefined && st.names === undefined) {
      let waiting = this.#unknown.get(st.annotation);
      if (!waiting) this.#unknown.set(st.annotation, (waiting = new Set()));
      waiting.add(key);
    }
    if (prev?.ip && ip && prev.ip !== ip) this.ipChanges.push(`${key} ${prev.ip} -> ${ip}`);
    if (ip) {
      let seen = this.podsByIp.get(ip);
      if (!seen) this.podsByIp.set(ip, (seen = new Set()));
      seen.add(key);
    }
    // The member index (before the hooks, which read members()), and the outputs that depend on it.
    const isMember = st.ready && !!st.ip && !st.deleting && !st.gone;
    const changed: string[] = [];
    for (const a of new Set([prev?.labels.app, st.labels.app])) {
      if (a === undefined) continue;
      const id = k(ns, a);
      let m = this.#members.get(id);
      if (!m) this.#members.set(id, (m = new Map()));
      const before = m.get(st.name)?.ip;
      const member = isMember && a === st.labels.app;
      if (member) m.set(st.name, st); else m.delete(st.name);
      if (before !== (member ? st.ip : undefined)) changed.push(id);
    }
    for (const h of this.#podHooks) h(st, prev, at);
    for (const e of this.#expectations) {
      if (e.ns !== ns || !e.pending.has(st.name)) continue;
      if (st.gone || st.deleting || this.#podSays(e, st)) e.pending.delete(st.name);
      this.#check(e, at);
    }
    for (const id of changed) if (this.#all?.clusters.has(id)) this.#allCheckCluster(id);
    if (this.#all) {
      this.#allCheck(`pod:${key}`);
      this.#allDone(at);
    }
  }

  #cm(ev: string, obj: ConfigMapObject): void {
    const at = mono();
    this.events.configmaps++;
    const ns = obj.metadata.namespace ?? '';
    const key = k(ns, obj.metadata.name);
    const names = ev === 'delete' ? [] : splitPeers(obj.data?.peers, '\n');
    if (ev === 'delete') this.cms.delete(key); else this.cms.set(key, new Set(names));
    // A new version: annotations that carry it (their event may have come first) now list its names.
    const version = ev === 'delete' ? undefined : peersVersion(obj.data?.peers ?? '');
    const fresh = version !== undefined && !this.versions.has(version);
    if (fresh) this.versions.set(version, new Set(names));
    const carrying = fresh ? [...(this.#unknown.get(version) ?? [])].flatMap((pk) => this.pods.get(pk) ?? []).filter((st) => st.annotation === version) : [];
    if (fresh) this.#unknown.delete(version);
    for (const st of carrying) st.names = this.versions.get(version as string);
    for (const e of this.#expectations) {
      if (e.ns !== ns) continue;
      for (const st of carrying) if (st.ns === ns && e.pending.has(st.name) && this.#podSays(e, st)) e.pending.delete(st.name);
      if (e.cm === obj.metadata.name) {
        e.cmOk = this.#cmSays(e);
        if (e.cmOk) e.cmAt ??= at;
      }
      this.#check(e, at);
    }
    if (this.#all) {
      for (const st of carrying) this.#allCheck(`pod:${k(st.ns, st.name)}`);
      this.#allCheck(`cm:${key}`);
      this.#allDone(at);
    }
  }

  #cmSays(e: Expectation): boolean {
    const has = this.cms.get(k(e.ns, e.cm))?.has(e.node) ?? false;
    return e.want === 'present' ? has : !has;
  }

  #podSays(e: Expectation, p: PodState): boolean {
    const names = p.names;
    if (names === undefined) return false; // a version whose list the bench has not seen yet
    const has = names.has(e.node);
    return e.want === 'present' ? has : !has;
  }

  #check(e: Expectation, at: number): void {
    if (e.cmOk && e.pending.size === 0) e.resolve({ ms: at - e.t0, cmMs: (e.cmAt ?? at) - e.t0 });
  }
}
