// The Postgres URL of a PgCluster, from its Secret, with a short cache (docs/architecture.md, "Secrets").
// Every outcome a user must fix is a reason and a message for the Connected condition; only API failures
// that may pass (a 500, a timeout) are thrown, for the work queue to retry.
import type { Clock } from '../core/clock.ts';
import { parsePgUrl, type ParsedPgUrl } from '../postgres/connstring.ts';
import { isForbidden } from '../kube/client.ts';
import type { SecretObject } from '../kube/resources.ts';

/** A Secret read successfully is trusted this long (a change to it is seen within this plus the resync):
 * without it 1,000 PgClusters GET their Secrets ~17 times a second. */
export const SECRET_TTL_MS = 30_000;

export type SecretReason = 'SecretForbidden' | 'SecretNotFound' | 'SecretKeyMissing' | 'InvalidURL';
/** A usable URL comes parsed too: the endpoint does not parse it again. */
export type UrlLookup = { ok: true; url: string; parsed: ParsedPgUrl } | { ok: false; reason: SecretReason; message: string };

export interface SecretRef {
  namespace: string;
  name: string;
  key: string;
}

export class SecretSource {
  #read: (ns: string, name: string) => Promise<SecretObject | undefined>;
  #clock: Clock;
  #ttlMs: number;
  /** Per PgCluster key: the last good lookup. */
  #cache = new Map<string, { ref: string; url: string; parsed: ParsedPgUrl; at: number }>();

  constructor(read: (ns: string, name: string) => Promise<SecretObject | undefined>, clock: Clock, ttlMs = SECRET_TTL_MS) {
    this.#read = read;
    this.#clock = clock;
    this.#ttlMs = ttlMs;
  }

  /** The URL for PgCluster `owner`: from the cache while fresh and the reference unchanged, else read. */
  async url(owner: string, ref: SecretRef): Promise<UrlLookup> {
    const refKey = `${ref.namespace}/${ref.name}/${ref.key}`;
    const hit = this.#cache.get(owner);
    if (hit && hit.ref === refKey && this.#clock.now() - hit.at < this.#ttlMs) return { ok: true, url: hit.url, parsed: hit.parsed };
    const r = await this.#lookup(ref);
    if (r.ok) this.#cache.set(owner, { ref: refKey, url: r.url, parsed: r.parsed, at: this.#clock.now() });
    else this.#cache.delete(owner);
    return r;
  }

  /** The next lookup for `owner` reads the Secret again. */
  forget(owner: string): void {
    this.#cache.delete(owner);
  }

  async #lookup({ namespace: ns, name, key }: SecretRef): Promise<UrlLookup> {
    let secret: SecretObject | undefined;
    try {
      secret = await this.#read(ns, name);
    } catch (err) {
      if (isForbidden(err)) {
        return { ok: false, reason: 'SecretForbidden', message: `the operator may not read Secret ${ns}/${name}: grant it get on secrets in this namespace` };
      }
      throw err;
    }
    if (!secret) return { ok: false, reason: 'SecretNotFound', message: `Secret ${ns}/${name} not found: create it with the Postgres URI under key "${key}"` };
    const encoded = secret.data?.[key];
    if (encoded === undefined) {
      // Its other keys are not listed: status and Events are read by people who may not read the Secret.
      return { ok: false, reason: 'SecretKeyMissing', message: `Secret ${ns}/${name} has no key "${key}": add it, or set spec.postgres.urlSecretRef.key to the key that holds the URI` };
    }
    const url = Buffer.from(encoded, 'base64').toString('utf8').trim();
    const parsed = parsePgUrl(url);
    if (!parsed.ok) return { ok: false, reason: 'InvalidURL', message: `Secret ${ns}/${name} key "${key}": ${parsed.message}` };
    return { ok: true, url, parsed: parsed.value };
  }
}
