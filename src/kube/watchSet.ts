// Watches of one resource, each filtered server-side by a label selector, per namespace, started and stopped as
// the set of wanted (namespace, selector) pairs changes. The operator's pod cache (docs/architecture.md,
// "What is cached"): it holds the pods some PgCluster selects, and the pods the operator has written on, and
// no other pod of the cluster, so that pods no PgCluster selects cost nothing.
import type { Logger } from 'pino';
import type { KubeClient, KubeObject } from './client.ts';
import { Informer, type InformerHandler } from './informer.ts';

export interface WatchSetOptions {
  path: (ns: string) => string;
  transform?: (obj: KubeObject) => KubeObject;
  log: Logger;
}

/** A resourceVersion is opaque, but where both are etcd revisions (digits), the larger one is newer. */
export function newer<T extends KubeObject>(a: T, b: T): T {
  const ra = a.metadata.resourceVersion ?? '';
  const rb = b.metadata.resourceVersion ?? '';
  if (!/^\d+$/.test(ra) || !/^\d+$/.test(rb)) return a;
  // Digit strings without leading zeros: the longer is the larger, else the later in string order.
  return rb.length > ra.length || (rb.length === ra.length && rb > ra) ? b : a;
}

export class WatchSet<T extends KubeObject> {
  #client: KubeClient;
  #opts: WatchSetOptions;
  /** namespace -> label selector -> its informer */
  #watches = new Map<string, Map<string, Informer<T>>>();
  #handlers: InformerHandler<T>[] = [];
  #syncedHandlers: ((ns: string) => void)[] = [];
  #stopped = false;

  constructor(client: KubeClient, opts: WatchSetOptions) {
    this.#client = client;
    this.#opts = opts;
  }

  on(handler: InformerHandler<T>): void {
    this.#handlers.push(handler);
  }

  /** Called when a watch of the namespace has filled its cache (with no pods, no other event says so). */
  onSynced(handler: (ns: string) => void): void {
    this.#syncedHandlers.push(handler);
  }

  /** Makes the watches exactly `want` (namespace -> label selectors): new ones start, dropped ones stop. */
  set(want: ReadonlyMap<string, ReadonlySet<string>>): void {
    if (this.#stopped) return;
    for (const [ns, bySelector] of this.#watches) {
      for (const [selector, informer] of bySelector) {
        if (want.get(ns)?.has(selector)) continue;
        informer.stop();
        bySelector.delete(selector);
        this.#opts.log.debug({ namespace: ns, labelSelector: selector }, 'stopped a watch');
      }
      if (bySelector.size === 0) this.#watches.delete(ns);
    }
    for (const [ns, selectors] of want) {
      for (const selector of selectors) {
        let bySelector = this.#watches.get(ns);
        if (bySelector?.has(selector)) continue;
        if (!bySelector) this.#watches.set(ns, (bySelector = new Map()));
        const informer = new Informer<T>(this.#client, { path: this.#opts.path(ns), labelSelector: selector || undefined, transform: this.#opts.transform, log: this.#opts.log });
        for (const h of this.#handlers) informer.on(h);
        bySelector.set(selector, informer);
        informer.start();
        void informer.waitForSync().then(() => {
          if (this.#watches.get(ns)?.get(selector) === informer) for (const h of this.#syncedHandlers) h(ns);
        });
        this.#opts.log.debug({ namespace: ns, labelSelector: selector }, 'started a watch');
      }
    }
  }

  /**
   * True once the watches of these selectors in the namespace exist and have filled their caches; a watch of
   * the whole namespace (label selector "") covers them all.
   */
  synced(ns: string, selectors: readonly string[]): boolean {
    const bySelector = this.#watches.get(ns);
    const whole = bySelector?.get('');
    if (whole) return whole.hasSynced;
    return selectors.every((s) => bySelector?.get(s)?.hasSynced === true);
  }

  get allSynced(): boolean {
    return [...this.#watches.values()].every((m) => [...m.values()].every((i) => i.hasSynced));
  }

  async waitForSync(): Promise<void> {
    await Promise.all([...this.#watches.values()].flatMap((m) => [...m.values()].map((i) => i.waitForSync())));
  }

  get(ns: string, name: string): T | undefined {
    let found: T | undefined;
    for (const informer of this.#watches.get(ns)?.values() ?? []) {
      const o = informer.get(`${ns}/${name}`);
      if (o) found = found ? newer(found, o) : o;
    }
    return found;
  }

  /** Each object of the namespace once (the newest copy, where two watches hold it). */
  inNamespace(ns: string): Iterable<T> {
    const informers = [...(this.#watches.get(ns)?.values() ?? [])];
    if (informers.length === 1) return (informers[0] as Informer<T>).inNamespace(ns);
    const byName = new Map<string, T>();
    for (const informer of informers) {
      for (const o of informer.inNamespace(ns)) {
        const seen = byName.get(o.metadata.name);
        byName.set(o.metadata.name, seen ? newer(seen, o) : o);
      }
    }
    return byName.values();
  }

  /** Distinct objects cached (a metric: what the cache costs). */
  get size(): number {
    let n = 0;
    for (const ns of this.#watches.keys()) for (const _ of this.inNamespace(ns)) n++;
    return n;
  }

  get watchCount(): number {
    let n = 0;
    for (const m of this.#watches.values()) n += m.size;
    return n;
  }

  stop(): void {
    this.#stopped = true;
    for (const m of this.#watches.values()) for (const i of m.values()) i.stop();
    this.#watches.clear();
  }
}
