// The annotation fan-out of one PgCluster (docs/outputs.md, "The fan-out policy"): O(members) PATCHes per membership
// change, run beside the reconcile instead of inside it, so that the ConfigMap and the status of the next
// change never wait behind them. The policy that bounds the writes:
//  - at most one pass in flight per PgCluster, each pod written at most once per pass;
//  - a newer plan replaces the older one at once: a pod not written yet in this pass gets the newest value
//    (the stale remainder is abandoned), a pod already written in it waits for the next pass;
//  - a pass starts at least `minIntervalMs` after the previous one ended (spec.output.annotationMinInterval);
//  - one exception: a pod's first write (it carried nothing of ours: a pod new to the PgCluster, annotated while
//    Pending) may be followed by one more in the same pass, once it has been answered. A join is then one pass
//    (the new member's own annotation, written while it was Pending, is rewritten with itself in it behind
//    the others), not a pass plus another.
// So a burst of changes costs at most `members` PATCHes per pass (plus one per new pod), whatever the number
// of changes, and a stream of them at most that per (pass + interval).
import { Backoff } from '../../core/backoff.ts';
import type { Clock, Timer } from '../../core/clock.ts';
import type { PodPatch } from '../plan/outputs.ts';

export interface FanOutDeps {
  clock: Clock;
  /** PATCHes in flight at once. */
  concurrency: number;
  /** Carries out one patch; resolves with the API server's refusal (422, 413) if it refused it. */
  write(p: PodPatch): Promise<string | undefined>;
  /**
   * A pass ended: `failed` is its first write error, if any (its pods are retried after a backoff);
   * `rejectedChanged`: the set of refused writes changed (the status says which); `ms`: from its first write
   * issued to its last answered (monotonic).
   */
  onPassEnd(failed: unknown, rejectedChanged: boolean, ms: number): void;
}

/**
 * Whether two patches write the same, to tell a write already on its way from a new one. Compared key by key:
 * the peers value is one string per plan, shared by every pod's patch (usually the same object, so `===` is
 * a pointer check; serialising it per pod cost O(members) per pod, O(members²) per plan).
 */
function samePatch(a: PodPatch, b: PodPatch): boolean {
  if (a.guard?.key !== b.guard?.key || a.guard?.value !== b.guard?.value) return false;
  const ka = Object.keys(a.annotations);
  if (ka.length !== Object.keys(b.annotations).length) return false;
  return ka.every((k) => k in b.annotations && a.annotations[k] === b.annotations[k]);
}
const podOf = (p: PodPatch): string => p.pod.metadata.name;

export class FanOut {
  readonly #d: FanOutDeps;
  /** The newest plan's patches not yet issued, by pod. */
  #desired = new Map<string, PodPatch>();
  /** Pods of `#desired` that may be issued in this pass, in plan order (checked against #desired when taken). */
  #ready: string[] = [];
  /** Pods written (or being written) in the current pass: non-empty while a pass runs. */
  #issued = new Set<string>();
  /** Pods of #issued whose write was their first (PodPatch.first): each may be written once more in this pass. */
  #again = new Set<string>();
  /** Pod -> the write in flight. */
  #inFlight = new Map<string, PodPatch>();
  #passEndedAt = -Infinity;
  #passStartedAt = 0;
  #minIntervalMs = 0;
  #timer: Timer | undefined;
  #failure: unknown;
  readonly #backoff = new Backoff(200, 30_000);
  #retryAt = -Infinity;
  #rejected = new Map<string, string>();
  #rejectedChanged = false;
  #stopped = false;
  #idle: (() => void)[] = [];
  /** PATCHes issued, passes started: for tests and the bench's view of the policy. */
  readonly stats = { writes: 0, passes: 0, superseded: 0 };

  constructor(d: FanOutDeps) {
    this.#d = d;
  }

  /**
   * The newest plan: every patch the pods need now. Replaces whatever was planned before (a pod left out
   * needs nothing any more); a write already in flight with the same content is not planned again.
   */
  submit(patches: readonly PodPatch[], minIntervalMs: number): void {
    if (this.#stopped) return;
    this.#minIntervalMs = minIntervalMs;
    const before = this.#desired;
    this.#desired = new Map();
    for (const p of patches) {
      const pod = podOf(p);
      const inFlight = this.#inFlight.get(pod);
      if (inFlight && samePatch(inFlight, p)) continue;
      const older = before.get(pod);
      if (older && !samePatch(older, p)) this.stats.superseded++;
      this.#desired.set(pod, p);
    }
    // A refusal stays reported while the plan still wants that pod written.
    const wanted = new Set(patches.map(podOf));
    for (const pod of this.#rejected.keys()) if (!wanted.has(pod)) this.#rejected.delete(pod);
    this.#ready = [...this.#desired.keys()].filter((pod) => !this.#issued.has(pod) || this.#again.has(pod));
    this.#pump();
  }

  /** The writes the API server refused (422, 413) at their latest try, in its words. */
  rejected(): string[] {
    return [...this.#rejected.values()];
  }

  /** Patches planned and not yet written (in flight included). */
  get pending(): number {
    return this.#desired.size + this.#inFlight.size;
  }

  /** Resolves once nothing is planned or in flight (or once stopped and the writes in flight have ended). */
  idle(): Promise<void> {
    if (this.#inFlight.size === 0 && (this.#stopped || this.#desired.size === 0)) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** No more writes; resolves when those in flight have ended (the finalizer must not race them). */
  stop(): Promise<void> {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#desired.clear();
    this.#ready = [];
    return this.idle();
  }

  #pump(): void {
    if (this.#stopped || this.#timer) return;
    const { clock, concurrency } = this.#d;
    for (;;) {
      if (this.#issued.size === 0) {
        // Between passes: a new one starts when there is work, the interval has passed and no retry is due.
        if (this.#desired.size === 0) return this.#settle();
        const at = Math.max(this.#passEndedAt + this.#minIntervalMs, this.#retryAt);
        const now = clock.monotonic();
        if (now < at) {
          this.#timer = clock.setTimer(() => { this.#timer = undefined; this.#pump(); }, at - now);
          return;
        }
        this.stats.passes++;
        this.#passStartedAt = now;
        this.#ready = [...this.#desired.keys()];
      }
      while (this.#inFlight.size < concurrency && this.#ready.length) {
        const pod = this.#ready.shift() as string;
        const p = this.#desired.get(pod);
        // A pod written again in this pass waits until its first write is answered (then it is ready again).
        if (!p || (this.#issued.has(pod) && !this.#again.has(pod)) || this.#inFlight.has(pod)) continue;
        this.#issue(pod, p);
      }
      if (this.#inFlight.size > 0) return;
      // Nothing in flight and nothing left to issue in this pass: it is over. What is still desired (pods
      // whose value changed after they were written in it) goes in the next pass.
      this.#issued.clear();
      this.#again.clear();
      this.#passEndedAt = clock.monotonic();
      const failed = this.#failure;
      const rejectedChanged = this.#rejectedChanged;
      this.#failure = undefined;
      this.#rejectedChanged = false;
      if (failed === undefined) this.#backoff.reset();
      else this.#retryAt = this.#passEndedAt + this.#backoff.next();
      this.#d.onPassEnd(failed, rejectedChanged, this.#passEndedAt - this.#passStartedAt);
    }
  }

  #issue(pod: string, p: PodPatch): void {
    this.#desired.delete(pod);
    if (this.#issued.has(pod)) this.#again.delete(pod);
    else if (p.first) this.#again.add(pod);
    this.#issued.add(pod);
    this.#inFlight.set(pod, p);
    this.stats.writes++;
    this.#d.write(p).then(
      (refusal) => {
        if (refusal === this.#rejected.get(pod)) return;
        this.#rejectedChanged = true;
        if (refusal === undefined) this.#rejected.delete(pod);
        else this.#rejected.set(pod, refusal);
      },
      (err: unknown) => {
        this.#failure ??= err;
        // Wanted again unless a newer plan said otherwise meanwhile.
        if (!this.#desired.has(pod) && !this.#stopped) this.#desired.set(pod, p);
      },
    ).finally(() => {
      this.#inFlight.delete(pod);
      if (this.#again.has(pod) && this.#desired.has(pod)) this.#ready.push(pod);
      if (this.#stopped) this.#settle();
      else this.#pump();
    });
  }

  #settle(): void {
    if (this.#inFlight.size > 0 || (!this.#stopped && this.#desired.size > 0)) return;
    for (const r of this.#idle.splice(0)) r();
  }
}
