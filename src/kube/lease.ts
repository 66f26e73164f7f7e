// Leader election on a coordination.k8s.io Lease, with client-go's rules: a lease is taken over only when
// its record has not changed for leaseDuration by OUR monotonic clock (no trust in the holder's clock, nor in
// our own wall clock), updates are guarded by resourceVersion, and a leader steps down as soon as it cannot
// renew within renewDeadline (< leaseDuration) of the start of its last successful renewal: so it has
// stopped before the lease could have expired for anyone else. It also steps down at once when it reads the
// Lease held by someone else.
import { systemClock, type Clock, type Timer } from '../core/clock.ts';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import { isConflict, isNotFound, KubeTimeoutError, type KubeClient } from './client.ts';

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}
export interface Lease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: LeaseSpec;
}

/** The three calls leader election makes (a KubeClient; tests pass an in-memory one). */
export type LeaseApi = Pick<KubeClient, 'get' | 'create' | 'update'>;

/** MicroTime: RFC 3339 with exactly six fractional digits, which the API server requires. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  log: Logger;
  clock?: Clock;
  /** Told how long each successful acquire or renewal took, in ms: the margin left before renewDeadline. */
  onRenewed?: (ms: number) => void;
}

/** Why a leader stopped leading. */
export type LostReason = 'RenewDeadlineExceeded' | 'HeldByAnother';

type Attempt = 'ok' | 'held' | 'failed';

export class LeaderElector {
  #kube: LeaseApi;
  #o: Required<Omit<LeaderElectionOptions, 'clock' | 'onRenewed'>>;
  #onRenewed: (ms: number) => void;
  #clock: Clock;
  /** The Lease record last read, and when (monotonic) it was first seen so. */
  #observed: { record: string; at: number } | undefined;
  #leading = false;
  #stopped = false;
  #timer: Timer | undefined;
  #deadline: Timer | undefined;
  #attempt: Promise<unknown> = Promise.resolve();
  #lease: Lease | undefined;
  /** When (monotonic) the last successful renewal started: the renew deadline counts from there. */
  #renewedAt = -Infinity;

  constructor(kube: LeaseApi, opts: LeaderElectionOptions) {
    this.#kube = kube;
    const { clock, onRenewed, ...rest } = opts;
    this.#onRenewed = onRenewed ?? (() => {});
    this.#o = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, ...rest };
    if (!(this.#o.renewDeadlineMs < this.#o.leaseDurationMs)) throw new Error(`leader election: renewDeadline (${this.#o.renewDeadlineMs} ms) must be shorter than leaseDuration (${this.#o.leaseDurationMs} ms)`);
    if (!(this.#o.retryPeriodMs < this.#o.renewDeadlineMs)) throw new Error(`leader election: retryPeriod (${this.#o.retryPeriodMs} ms) must be shorter than renewDeadline (${this.#o.renewDeadlineMs} ms)`);
    this.#clock = clock ?? systemClock;
  }

  get leading(): boolean {
    return this.#leading;
  }

  get #path(): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(this.#o.namespace)}/leases`;
  }

  get #leasePath(): string {
    return `${this.#path}/${encodeURIComponent(this.#o.name)}`;
  }

  /**
   * Resolves once this process leads; then keeps renewing every retry period. onLost is called once, at the
   * latest renewDeadline after the start of the last successful renewal (a timer: a request that hangs does
   * not delay it), or as soon as another holder is seen; the caller must stop all work at once.
   */
  acquire(onLost: (reason: LostReason) => void): Promise<void> {
    const lose = (reason: LostReason, detail: string): void => {
      if (!this.#leading || this.#stopped) return;
      this.#leading = false;
      this.#stopped = true;
      this.#timer?.cancel();
      this.#deadline?.cancel();
      this.#o.log.error({ lease: `${this.#o.namespace}/${this.#o.name}`, identity: this.#o.identity, reason }, `leader election: lost the lease (${detail})`);
      onLost(reason);
    };
    return new Promise((resolve) => {
      const tick = async (): Promise<void> => {
        if (this.#stopped) return;
        // The renewal is as old as its start: the Lease's record may change at any moment after it.
        const started = this.#clock.monotonic();
        // Each request may take half the time left before the deadline: one stuck on a dead connection is
        // abandoned (its connection replaced) early enough for a retry on a fresh one to make it.
        const budget = this.#leading ? this.#renewedAt + this.#o.renewDeadlineMs - started : this.#o.renewDeadlineMs;
        const timeoutMs = Math.max(500, Math.floor(budget / 2));
        let timedOut = false;
        const attempt = this.#tryAcquireOrRenew(timeoutMs).catch((err: unknown): Attempt => {
          timedOut = err instanceof KubeTimeoutError;
          this.#o.log.warn({ err: errorMessage(err), lease: `${this.#o.namespace}/${this.#o.name}` }, 'leader election: lease update failed');
          return 'failed';
        });
        this.#attempt = attempt;
        const result = await attempt;
        if (this.#stopped) return;
        if (result === 'ok') {
          this.#renewedAt = started;
          this.#onRenewed(this.#clock.monotonic() - started);
          this.#deadline?.cancel();
          const left = started + this.#o.renewDeadlineMs - this.#clock.monotonic();
          this.#deadline = this.#clock.setTimer(() => lose('RenewDeadlineExceeded', `could not renew within ${this.#o.renewDeadlineMs} ms`), left);
          if (!this.#leading) {
            this.#leading = true;
            this.#o.log.info({ lease: `${this.#o.namespace}/${this.#o.name}`, identity: this.#o.identity }, 'leader election: became leader');
            resolve();
          }
        } else if (result === 'held' && this.#leading) {
          lose('HeldByAnother', 'another replica holds it');
          return;
        }
        // A timeout replaced the connection: try again at once, on the fresh one.
        this.#timer = this.#clock.setTimer(() => void tick(), timedOut ? 0 : this.#o.retryPeriodMs);
      };
      void tick();
    });
  }

  async #tryAcquireOrRenew(timeoutMs: number): Promise<Attempt> {
    const t = { timeoutMs };
    const now = this.#clock.now();
    const mono = this.#clock.monotonic();
    const id = this.#o.identity;
    const durationS = Math.ceil(this.#o.leaseDurationMs / 1000);
    const renewed = (spec: LeaseSpec): LeaseSpec => ({ ...spec, renewTime: microTime(now), leaseDurationSeconds: durationS });
    // A leader renews with one request, on the record it wrote last (client-go's fast path): on a busy API
    // server that halves the time a renewal takes. A conflict means the record changed: read it again.
    if (this.#leading && this.#lease) {
      try {
        return this.#wrote(await this.#kube.update<Lease>(this.#leasePath, { ...this.#lease, spec: renewed(this.#lease.spec) }, 'leases', t), mono);
      } catch (err) {
        if (!isConflict(err)) throw err;
      }
      if (this.#stopped) return 'failed';
    }
    let lease: Lease | undefined;
    try {
      lease = await this.#kube.get<Lease>(this.#leasePath, t);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    if (this.#stopped) return 'failed';
    if (!lease) {
      const fresh: Lease = {
        apiVersion: 'coordination.k8s.io/v1', kind: 'Lease',
        metadata: { name: this.#o.name, namespace: this.#o.namespace },
        spec: { holderIdentity: id, leaseDurationSeconds: durationS, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 },
      };
      return this.#wrote(await this.#kube.create<Lease>(this.#path, fresh, 'leases', t), mono);
    }
    const record = JSON.stringify(lease.spec);
    if (this.#observed?.record !== record) this.#observed = { record, at: mono };
    const holder = lease.spec.holderIdentity ?? '';
    const expired = this.#observed.at + (lease.spec.leaseDurationSeconds ?? durationS) * 1000 <= mono;
    if (holder !== '' && holder !== id && !expired) return 'held';
    const spec: LeaseSpec = holder === id
      ? renewed(lease.spec)
      : { holderIdentity: id, leaseDurationSeconds: durationS, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: (lease.spec.leaseTransitions ?? 0) + 1 };
    try {
      return this.#wrote(await this.#kube.update<Lease>(this.#leasePath, { ...lease, spec }, 'leases', t), mono);
    } catch (err) {
      if (isConflict(err)) return 'failed'; // the record changed under us: read it again next round
      throw err;
    }
  }

  /** The Lease as we wrote it: held, and its record observed now (monotonic). */
  #wrote(lease: Lease, mono: number): 'ok' {
    this.#lease = lease;
    this.#observed = { record: JSON.stringify(lease.spec), at: mono };
    return 'ok';
  }

  /**
   * Stops renewing and, if leading, hands the lease back (holder empty, duration 1 s, as client-go's
   * ReleaseOnCancel) so a standby takes over at once. Call it only once all work has stopped.
   */
  async release(): Promise<void> {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#deadline?.cancel();
    await this.#attempt; // a renewal in flight would otherwise make the release's update conflict
    if (!this.#leading || !this.#lease) return;
    this.#leading = false;
    const now = this.#clock.now();
    try {
      await this.#kube.update(this.#leasePath, {
        ...this.#lease,
        spec: { ...this.#lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime(now), acquireTime: microTime(now) },
      }, 'leases');
      this.#o.log.info({ lease: `${this.#o.namespace}/${this.#o.name}` }, 'leader election: lease released');
    } catch (err) {
      this.#o.log.warn({ err: errorMessage(err), lease: `${this.#o.namespace}/${this.#o.name}` }, 'leader election: could not release the lease; a standby takes over when it expires');
    }
  }
}
