// A work queue in the manner of controller-runtime's: a key is never processed twice at once, adds of a
// key already waiting coalesce into one, a key added while it is processed runs once more afterwards, and
// failures back off per key.
import { Backoff } from '../core/backoff.ts';
import { systemClock, type Clock, type Timer } from '../core/clock.ts';

export interface WorkQueueHooks {
  onAdd?(): void;
  onDepth?(depth: number): void;
  onQueueLatency?(seconds: number): void;
  onWorkDuration?(seconds: number): void;
  onRetry?(): void;
  onActive?(active: number): void;
}

export type ReconcileHandler = (key: string) => Promise<{ requeueAfterMs?: number } | void>;

export class WorkQueue {
  #queue: string[] = [];
  #queued = new Map<string, number>(); // key -> enqueue time (dirty set)
  #processing = new Set<string>();
  #redo = new Set<string>(); // added while processing
  #delayed = new Map<string, { at: number; timer: Timer }>();
  #failures = new Map<string, Backoff>();
  #waiters: (() => void)[] = [];
  #shuttingDown = false;
  #hooks: WorkQueueHooks;
  #backoffBaseMs: number;
  #backoffMaxMs: number;
  #clock: Clock;

  constructor(opts: { hooks?: WorkQueueHooks; backoffBaseMs?: number; backoffMaxMs?: number; clock?: Clock } = {}) {
    this.#hooks = opts.hooks ?? {};
    this.#clock = opts.clock ?? systemClock;
    this.#backoffBaseMs = opts.backoffBaseMs ?? 100;
    this.#backoffMaxMs = opts.backoffMaxMs ?? 60_000;
  }

  get length(): number {
    return this.#queue.length;
  }

  /** Keys waiting, running, or due later: 0 when the queue has nothing left to do. */
  get pending(): number {
    return this.#queue.length + this.#processing.size + this.#delayed.size;
  }

  add(key: string): void {
    if (this.#shuttingDown) return;
    this.#hooks.onAdd?.();
    if (this.#queued.has(key)) return;
    if (this.#processing.has(key)) {
      this.#redo.add(key);
      return;
    }
    this.#queued.set(key, this.#clock.monotonic());
    this.#queue.push(key);
    this.#hooks.onDepth?.(this.#queue.length);
    this.#waiters.shift()?.();
  }

  /** Adds the key after a delay; an earlier pending delay for the key wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.#shuttingDown) return;
    if (delayMs <= 0) return this.add(key);
    const at = this.#clock.monotonic() + delayMs;
    const pending = this.#delayed.get(key);
    if (pending && pending.at <= at) return;
    pending?.timer.cancel();
    const timer = this.#clock.setTimer(() => {
      this.#delayed.delete(key);
      this.add(key);
    }, delayMs);
    this.#delayed.set(key, { at, timer });
  }

  /** Requeues a failed key with its own exponential backoff. */
  addRateLimited(key: string): number {
    let b = this.#failures.get(key);
    if (!b) {
      b = new Backoff(this.#backoffBaseMs, this.#backoffMaxMs, () => 1);
      this.#failures.set(key, b);
    }
    const delay = b.next();
    this.#hooks.onRetry?.();
    this.addAfter(key, delay);
    return delay;
  }

  forget(key: string): void {
    this.#failures.delete(key);
  }

  /** Runs `concurrency` workers until shutDown(). */
  async run(concurrency: number, handler: ReconcileHandler, onError: (key: string, err: unknown, retryInMs: number) => void): Promise<void> {
    const worker = async (): Promise<void> => {
      for (;;) {
        const key = await this.#next();
        if (key === undefined) return;
        const started = this.#clock.monotonic();
        try {
          const result = await handler(key);
          this.forget(key);
          if (result?.requeueAfterMs !== undefined) this.addAfter(key, result.requeueAfterMs);
        } catch (err) {
          onError(key, err, this.addRateLimited(key));
        } finally {
          this.#hooks.onWorkDuration?.((this.#clock.monotonic() - started) / 1000);
          this.#done(key);
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  }

  async #next(): Promise<string | undefined> {
    while (this.#queue.length === 0) {
      if (this.#shuttingDown) return undefined;
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
    const key = this.#queue.shift() as string;
    const now = this.#clock.monotonic();
    const enqueued = this.#queued.get(key) ?? now;
    this.#queued.delete(key);
    this.#processing.add(key);
    this.#hooks.onDepth?.(this.#queue.length);
    this.#hooks.onQueueLatency?.((now - enqueued) / 1000);
    this.#hooks.onActive?.(this.#processing.size);
    return key;
  }

  #done(key: string): void {
    this.#processing.delete(key);
    this.#hooks.onActive?.(this.#processing.size);
    if (this.#redo.delete(key)) this.add(key);
  }

  shutDown(): void {
    this.#shuttingDown = true;
    for (const d of this.#delayed.values()) d.timer.cancel();
    this.#delayed.clear();
    for (const w of this.#waiters.splice(0)) w();
  }
}
