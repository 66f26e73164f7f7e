// Leader election on a coordination.k8s.io Lease, with client-go's rules: a lease is taken over only when
// its record has not changed for leaseDuration by OUR clock (no trust in the holder's clock), updates are
// guarded by resourceVersion, and a leader that cannot renew within renewDeadline steps down.
import { systemClock, type Clock, type Timer } from '../core/clock.ts';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import { isConflict, isNotFound, type KubeClient } from './client.ts';

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}
interface Lease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: LeaseSpec;
}

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
}

export class LeaderElector {
  #kube: KubeClient;
  #o: Required<Omit<LeaderElectionOptions, 'clock'>>;
  #clock: Clock;
  #observed: { record: string; at: number } | undefined;
  #leading = false;
  #stopped = false;
  #timer: Timer | undefined;
  #lastRenew = 0;
  #lease: Lease | undefined;

  constructor(kube: KubeClient, opts: LeaderElectionOptions) {
    this.#kube = kube;
    const { clock, ...rest } = opts;
    this.#o = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, ...rest };
    this.#clock = clock ?? systemClock;
  }

  get leading(): boolean {
    return this.#leading;
  }

  get #path(): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(this.#o.namespace)}/leases`;
  }

  /** Resolves once this process leads; then keeps renewing and calls onLost if it ever fails to. */
  acquire(onLost: () => void): Promise<void> {
    return new Promise((resolve) => {
      const tick = async (): Promise<void> => {
        if (this.#stopped) return;
        const ok = await this.#tryAcquireOrRenew().catch((err: unknown) => {
          this.#o.log.warn({ err: errorMessage(err), lease: this.#o.name }, 'leader election: lease update failed');
          return false;
        });
        const now = this.#clock.now();
        if (ok) {
          this.#lastRenew = now;
          if (!this.#leading) {
            this.#leading = true;
            this.#o.log.info({ lease: `${this.#o.namespace}/${this.#o.name}`, identity: this.#o.identity }, 'leader election: became leader');
            resolve();
          }
        } else if (this.#leading && now - this.#lastRenew > this.#o.renewDeadlineMs) {
          this.#leading = false;
          this.#o.log.error({ lease: this.#o.name }, 'leader election: lost the lease (could not renew in time)');
          onLost();
          return;
        }
        this.#timer = this.#clock.setTimer(() => void tick(), this.#o.retryPeriodMs);
      };
      void tick();
    });
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const now = this.#clock.now();
    const id = this.#o.identity;
    const durationS = Math.ceil(this.#o.leaseDurationMs / 1000);
    let lease: Lease | undefined;
    try {
      lease = await this.#kube.get<Lease>(`${this.#path}/${encodeURIComponent(this.#o.name)}`);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    if (!lease) {
      const fresh: Lease = {
        apiVersion: 'coordination.k8s.io/v1', kind: 'Lease',
        metadata: { name: this.#o.name, namespace: this.#o.namespace },
        spec: { holderIdentity: id, leaseDurationSeconds: durationS, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 },
      };
      this.#lease = await this.#kube.create<Lease>(this.#path, fresh, 'leases');
      return true;
    }
    const record = JSON.stringify(lease.spec);
    if (this.#observed?.record !== record) this.#observed = { record, at: now };
    const holder = lease.spec.holderIdentity ?? '';
    const expired = this.#observed.at + (lease.spec.leaseDurationSeconds ?? durationS) * 1000 <= now;
    if (holder !== '' && holder !== id && !expired) return false;
    const spec: LeaseSpec = holder === id
      ? { ...lease.spec, renewTime: microTime(now), leaseDurationSeconds: durationS }
      : { holderIdentity: id, leaseDurationSeconds: durationS, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: (lease.spec.leaseTransitions ?? 0) + 1 };
    try {
      this.#lease = await this.#kube.update<Lease>(`${this.#path}/${encodeURIComponent(this.#o.name)}`, { ...lease, spec }, 'leases');
    } catch (err) {
      if (isConflict(err)) return false; // someone else won this round
      throw err;
    }
    this.#observed = { record: JSON.stringify(this.#lease.spec), at: now };
    return true;
  }

  /** Stops renewing and, if leading, hands the lease back so a standby takes over at once. */
  async release(): Promise<void> {
    this.#stopped = true;
    this.#timer?.cancel();
    if (!this.#leading || !this.#lease) return;
    this.#leading = false;
    const now = this.#clock.now();
    try {
      await this.#kube.update(`${this.#path}/${encodeURIComponent(this.#o.name)}`, {
        ...this.#lease,
        spec: { ...this.#lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime(now), acquireTime: microTime(now) },
      }, 'leases');
      this.#o.log.info({ lease: this.#o.name }, 'leader election: lease released');
    } catch (err) {
      this.#o.log.warn({ err: errorMessage(err) }, 'leader election: could not release the lease; a standby takes over when it expires');
    }
  }
}
