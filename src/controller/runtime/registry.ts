// Owns the PgClusters' runtimes: one per work-queue key, made on its first reconcile with a valid spec and
// stopped (heartbeats, listening, annotation writes) when forgotten.
import type { EndpointPool } from '../endpointPool.ts';
import type { FanOut } from '../write/fanout.ts';
import type { PgEndpoint } from '../../postgres/endpoint.ts';
import { ClusterRuntime, type RuntimeLimits } from './clusterRuntime.ts';

export class RuntimeRegistry {
  readonly #runtimes = new Map<string, ClusterRuntime>();
  readonly #pool: Pick<EndpointPool, 'acquire' | 'release'>;
  readonly #newFanOut: (key: string) => FanOut;

  constructor(pool: Pick<EndpointPool, 'acquire' | 'release'>, newFanOut: (key: string) => FanOut) {
    this.#pool = pool;
    this.#newFanOut = newFanOut;
  }

  get(key: string): ClusterRuntime | undefined {
    return this.#runtimes.get(key);
  }

  /** The runtime of `key`, made if new, with the spec's current limits. */
  ensure(key: string, limits: RuntimeLimits): ClusterRuntime {
    let rt = this.#runtimes.get(key);
    if (!rt) {
      rt = new ClusterRuntime(key, limits, { pool: this.#pool, fanOut: this.#newFanOut(key) });
      this.#runtimes.set(key, rt);
    }
    rt.setLimits(limits);
    return rt;
  }

  /** Stops and drops the runtime of `key`; whether there was one. */
  forget(key: string): boolean {
    const rt = this.#runtimes.get(key);
    if (!rt) return false;
    void rt.stop();
    this.#runtimes.delete(key);
    return true;
  }

  /** The runtimes attached to `endpoint`. */
  *attachedTo(endpoint: PgEndpoint | string): Generator<ClusterRuntime> {
    for (const rt of this.#runtimes.values()) {
      const ep = rt.attachment?.endpoint;
      if (ep && (typeof endpoint === 'string' ? ep.id === endpoint : ep === endpoint)) yield rt;
    }
  }

  /** Stops every announcer: no pod is announced from here on, until a reconcile runs. */
  silence(): void {
    for (const rt of this.#runtimes.values()) rt.attachment?.endpoint.setAnnouncer(rt.key, null);
  }

  get size(): number {
    return this.#runtimes.size;
  }
}
