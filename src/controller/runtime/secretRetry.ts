// While a Secret a PgCluster names cannot be used (not found, a key missing, forbidden, an invalid URL or TLS
// material, spec.auth's key), it is read again soon and then less often: from 1 s, doubling (with jitter), to
// 30 s. Secrets are not watched — the operator may only get the Secrets its PgClusters name, never list or
// watch them — so without this a Secret created or fixed after its PgCluster would be seen at the next resync,
// up to 60 s later.
import { Backoff } from '../../core/backoff.ts';

export const SECRET_RETRY_BASE_MS = 1_000;
export const SECRET_RETRY_MAX_MS = 30_000;

export class SecretRetry {
  #backoff: Backoff;
  #at: number | undefined;

  constructor(random: () => number = Math.random) {
    this.#backoff = new Backoff(SECRET_RETRY_BASE_MS, SECRET_RETRY_MAX_MS, random);
  }

  /**
   * What this reconcile's Secret reads came to (`now`, monotonic ms). A failure schedules the next read unless
   * one is already due later: reconciles for other reasons (a pod changed) come between and must not push the
   * backoff on. Success forgets the backoff.
   */
  note(usable: boolean, now: number): void {
    if (usable) {
      this.#at = undefined;
      this.#backoff.reset();
    } else if (this.#at === undefined || now >= this.#at) {
      this.#at = now + this.#backoff.next();
    }
  }

  /** When to read the Secrets again, if one is unusable. */
  wakeAt(): number | undefined {
    return this.#at;
  }
}
