// A list+watch cache that survives what client-node's informer does not: it restarts a failed watch with
// capped backoff, relists on 410 Gone, resumes a cleanly closed watch from the last resourceVersion, and
// periodically replays its cache so that level-based reconcilers catch anything they missed.
import { errorText } from '../core/redact.ts';
import type { Logger } from 'pino';
import type { KubeClient, KubeObject } from './client.ts';
import { KubeApiError } from './client.ts';
import { Backoff } from '../core/backoff.ts';
import { errorMessage } from '../errors.ts';

export type InformerEvent = 'add' | 'update' | 'delete' | 'resync';
export type InformerHandler<T> = (event: InformerEvent, obj: T, old?: T) => void;

export interface InformerOptions {
  /** Collection path, e.g. /api/v1/namespaces/prod/pods or /api/v1/pods. */
  path: string;
  labelSelector?: string;
  resyncMs?: number;
  /** Slims each object before it is cached (client-go's SetTransform): the cache holds only what is read. */
  transform?: (obj: KubeObject) => KubeObject;
  log: Logger;
  onError?: (err: unknown) => void;
  /** A watch expired (410 Gone): the versions in between are lost, and a list follows. */
  onExpired?: () => void;
}

export const objectKey = (o: KubeObject): string => (o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name);

export class Informer<T extends KubeObject> {
  readonly path: string;
  #client: KubeClient;
  #opts: InformerOptions;
  #cache = new Map<string, T>();
  #byNamespace = new Map<string, Map<string, T>>();
  #handlers: InformerHandler<T>[] = [];
  #resourceVersion = '';
  #abort: AbortController | undefined;
  #stopped = false;
  #backoff = new Backoff(500, 30_000);
  #resyncTimer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #synced: Promise<void>;
  #markSynced!: () => void;
  #hasSynced = false;

  constructor(client: KubeClient, opts: InformerOptions) {
    this.#client = client;
    this.#opts = opts;
    this.path = opts.path;
    this.#synced = new Promise((resolve) => (this.#markSynced = resolve));
  }

  on(handler: InformerHandler<T>): void {
    this.#handlers.push(handler);
  }

  get(key: string): T | undefined {
    return this.#cache.get(key);
  }

  list(): IterableIterator<T> {
    return this.#cache.values();
  }

  /** Objects of one namespace (an index, so a reconcile does not scan every pod of the cluster). */
  inNamespace(ns: string): IterableIterator<T> {
    return (this.#byNamespace.get(ns) ?? new Map<string, T>()).values();
  }

  #slim(obj: T): T {
    return (this.#opts.transform ? this.#opts.transform(obj) : stripManagedFields(obj)) as T;
  }

  #put(key: string, obj: T): void {
    this.#cache.set(key, obj);
    const ns = obj.metadata.namespace ?? '';
    let m = this.#byNamespace.get(ns);
    if (!m) this.#byNamespace.set(ns, (m = new Map()));
    m.set(obj.metadata.name, obj);
  }

  #remove(key: string, obj: T): void {
    this.#cache.delete(key);
    const ns = obj.metadata.namespace ?? '';
    const m = this.#byNamespace.get(ns);
    m?.delete(obj.metadata.name);
    if (m?.size === 0) this.#byNamespace.delete(ns);
  }

  get hasSynced(): boolean {
    return this.#hasSynced;
  }

  /** Resolves after the first successful list. */
  waitForSync(): Promise<void> {
    return this.#synced;
  }

  start(): void {
    void this.#relist();
    if (this.#opts.resyncMs) {
      this.#resyncTimer = setInterval(() => {
        for (const obj of this.#cache.values()) this.#emit('resync', obj);
      }, this.#opts.resyncMs);
      this.#resyncTimer.unref();
    }
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#resyncTimer);
    clearTimeout(this.#retryTimer);
    this.#abort?.abort();
  }

  #emit(event: InformerEvent, obj: T, old?: T): void {
    for (const h of this.#handlers) {
      try {
        h(event, obj, old);
      } catch (err) {
        this.#opts.log.error({ error: errorText(err), path: this.path }, 'informer handler failed');
      }
    }
  }

  async #relist(): Promise<void> {
    if (this.#stopped) return;
    try {
      const list = await this.#client.list<T>(this.path, { labelSelector: this.#opts.labelSelector });
      const fresh = new Map(list.items.map((o) => [objectKey(o), this.#slim(o)]));
      for (const [key, old] of this.#cache) {
        if (!fresh.has(key)) {
          this.#remove(key, old);
          this.#emit('delete', old);
        }
      }
      for (const [key, obj] of fresh) {
        const old = this.#cache.get(key);
        this.#put(key, obj);
        if (!old) this.#emit('add', obj);
        else if (old.metadata.resourceVersion !== obj.metadata.resourceVersion) this.#emit('update', obj, old);
      }
      this.#resourceVersion = list.metadata.resourceVersion;
      if (!this.#hasSynced) {
        this.#hasSynced = true;
        this.#markSynced();
      }
      this.#backoff.reset();
      void this.#startWatch();
    } catch (err) {
      this.#fail(err, () => void this.#relist());
    }
  }

  #fail(err: unknown, retry: () => void): void {
    if (this.#stopped) return;
    const delay = this.#backoff.next();
    this.#opts.log.warn({ path: this.path, err: errorMessage(err), retryInMs: delay }, 'list/watch failed; retrying');
    this.#opts.onError?.(err);
    this.#retryTimer = setTimeout(retry, delay);
  }

  async #startWatch(): Promise<void> {
    if (this.#stopped) return;
    let gone = false;
    let failed: unknown;
    let sawEvent = false;
    const onEvent = (type: string, raw: unknown): void => {
      sawEvent = true;
      if (type === 'ERROR') {
        const status = raw as { code?: number; message?: string };
        if (status.code === 410) gone = true;
        else failed = new Error(`watch error ${status.code}: ${status.message}`);
        return;
      }
      if ((raw as T).metadata?.resourceVersion) this.#resourceVersion = (raw as T).metadata.resourceVersion as string;
      if (type === 'BOOKMARK') return;
      const obj = this.#slim(raw as T);
      const key = objectKey(obj);
      const old = this.#cache.get(key);
      if (type === 'DELETED') {
        this.#remove(key, obj);
        this.#emit('delete', obj);
      } else {
        this.#put(key, obj);
        this.#emit(old ? 'update' : 'add', obj, old);
      }
    };
    const done = (err: unknown): void => {
      this.#abort = undefined;
      if (this.#stopped) return;
      if (err instanceof KubeApiError && err.status === 410) gone = true;
      if (gone) {
        this.#opts.log.info({ path: this.path }, 'watch expired (410 Gone); relisting');
        this.#opts.onExpired?.();
        void this.#relist();
      } else if (err || failed) {
        this.#fail(err ?? failed, () => void this.#startWatch());
      } else {
        // A clean close (server timeout, idle timeout): resume from where we were.
        if (sawEvent) this.#backoff.reset();
        void this.#startWatch();
      }
    };
    try {
      this.#abort = await this.#client.watch(
        this.path,
        { resourceVersion: this.#resourceVersion, allowWatchBookmarks: 'true', labelSelector: this.#opts.labelSelector, timeoutSeconds: '300' },
        onEvent,
        done,
      );
    } catch (err) {
      this.#fail(err, () => void this.#startWatch());
    }
  }
}

/** Server-side-apply bookkeeping, often the largest part of an object, which the operator never reads. */
export function stripManagedFields<T extends KubeObject>(obj: T): T {
  if ('managedFields' in obj.metadata) delete (obj.metadata as { managedFields?: unknown }).managedFields;
  return obj;
}

/** The caches of one resource across the watched scope (all namespaces, or one informer per namespace). */
export class Store<T extends KubeObject> {
  readonly informers: Informer<T>[];
  constructor(informers: Informer<T>[]) {
    this.informers = informers;
  }
  get(ns: string, name: string): T | undefined {
    const key = `${ns}/${name}`;
    for (const i of this.informers) {
      const o = i.get(key);
      if (o) return o;
    }
    return undefined;
  }
  *inNamespace(ns: string): Generator<T> {
    for (const i of this.informers) yield* i.inNamespace(ns);
  }
  *all(): Generator<T> {
    for (const i of this.informers) yield* i.list();
  }
  on(handler: InformerHandler<T>): void {
    for (const i of this.informers) i.on(handler);
  }
  start(): void {
    for (const i of this.informers) i.start();
  }
  stop(): void {
    for (const i of this.informers) i.stop();
  }
  async waitForSync(): Promise<void> {
    await Promise.all(this.informers.map((i) => i.waitForSync()));
  }
}
