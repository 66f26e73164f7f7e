// What we wrote, until the informer's cache shows it (docs/architecture.md, "Observe, plan, apply").
import type { Clock } from '../../core/clock.ts';
import type { KubeObject } from '../../kube/client.ts';

/** Memo entries older than this are dropped (a pod deleted right after we patched it is never observed). */
const MEMO_MAX_AGE_MS = 60_000;

/**
 * Remembers what we wrote until the informer catches up, so that a reconcile running before the watch
 * event arrives compares against our write rather than the stale cache, and does not write again.
 */
export class WriteMemo {
  #memo = new Map<string, { staleVersion: string | undefined; obj: unknown; at: number }>();
  #slim: (o: KubeObject) => KubeObject;
  #clock: Clock;
  #lastSweep: number;

  /** `slim` keeps only what the cache would (a PATCH answers with the whole object). */
  constructor(clock: Clock, slim: (o: KubeObject) => KubeObject = (o) => o) {
    this.#clock = clock;
    this.#slim = slim;
    this.#lastSweep = clock.monotonic();
  }

  record(key: string, before: KubeObject | undefined, written: unknown): void {
    const now = this.#clock.monotonic();
    const obj = written && typeof written === 'object' && 'metadata' in written ? this.#slim(written as KubeObject) : written;
    this.#memo.set(key, { staleVersion: before?.metadata.resourceVersion, obj, at: now });
    if (now - this.#lastSweep > MEMO_MAX_AGE_MS) {
      this.#lastSweep = now;
      for (const [k, m] of this.#memo) if (now - m.at > MEMO_MAX_AGE_MS) this.#memo.delete(k);
    }
  }

  observe<T extends KubeObject>(key: string, cached: T | undefined): T | undefined {
    const m = this.#memo.get(key);
    if (!m) return cached;
    if (cached?.metadata.resourceVersion === m.staleVersion) return m.obj as T;
    // The cache moved, but not yet to our write (another writer's change came first: a kubelet's status, our
    // other write on the same pod): what we wrote is still the newer.
    if (cached && olderThan(cached.metadata.resourceVersion, (m.obj as KubeObject | undefined)?.metadata?.resourceVersion)) return m.obj as T;
    this.#memo.delete(key); // the cache has moved past our write
    return cached;
  }

  forget(key: string): void {
    this.#memo.delete(key);
  }

  get size(): number {
    return this.#memo.size;
  }
}

/**
 * Whether resourceVersion `a` is older than `b`. Opaque in general, but where both are etcd revisions (digits
 * without leading zeros), the longer is the larger, else the later in string order; otherwise: unknown (false).
 */
function olderThan(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined || !/^[1-9]\d*$/.test(a) || !/^[1-9]\d*$/.test(b)) return false;
  return a.length < b.length || (a.length === b.length && a < b);
}
