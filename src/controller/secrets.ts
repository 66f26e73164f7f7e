// The Postgres URL of a PgCluster, from its Secret, with a short cache (docs/architecture.md, "Secrets").
// Every outcome a user must fix is a reason and a message for the Connected condition; only API failures
// that may pass (a 500, a timeout) are thrown, for the work queue to retry.
import type { Clock } from '../core/clock.ts';
import { MIN_KEY_BYTES, type SideKeys } from '../core/sideAuth.ts';
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

export type KeyReason = Exclude<SecretReason, 'InvalidURL'> | 'InvalidKey';
/** spec.auth's keys. Never logged, never in a message. */
export type KeysLookup = { ok: true; keys: SideKeys } | { ok: false; reason: KeyReason; message: string };

export class SecretSource {
  #read: (ns: string, name: string) => Promise<SecretObject | undefined>;
  #clock: Clock;
  #ttlMs: number;
  /** Per PgCluster key: the last good lookup. */
  #cache = new Map<string, { ref: string; url: string; parsed: ParsedPgUrl; at: number }>();
  /** Per PgCluster key: the last good spec.auth lookup. */
  #keyCache = new Map<string, { ref: string; keys: SideKeys; at: number }>();

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

  /**
   * spec.auth's keys for PgCluster `owner` (cached like the URL): `ref.key` signs and verifies; `previousKey`,
   * when the Secret has it, verifies too (rotation). Surrounding whitespace is not part of a key (a file with a
   * trailing newline, made into a Secret, is the same key as the literal).
   */
  async keys(owner: string, ref: SecretRef & { previousKey: string }): Promise<KeysLookup> {
    const refKey = `${ref.namespace}/${ref.name}/${ref.key}/${ref.previousKey}`;
    const hit = this.#keyCache.get(owner);
    if (hit && hit.ref === refKey && this.#clock.now() - hit.at < this.#ttlMs) return { ok: true, keys: hit.keys };
    const r = await this.#keysLookup(ref);
    if (r.ok) this.#keyCache.set(owner, { ref: refKey, keys: r.keys, at: this.#clock.now() });
    else this.#keyCache.delete(owner);
    return r;
  }

  /** The next lookup for `owner` reads the Secret again. */
  forget(owner: string): void {
    this.#cache.delete(owner);
    this.#keyCache.delete(owner);
  }

  async #lookup(ref: SecretRef): Promise<UrlLookup> {
    const v = await this.#value(ref, 'the Postgres URI', 'spec.postgres.urlSecretRef.key', 'the URI');
    if (!v.ok) return v;
    const url = v.data.utf8.trim();
    const parsed = parsePgUrl(url);
    if (!parsed.ok) return { ok: false, reason: 'InvalidURL', message: `Secret ${ref.namespace}/${ref.name} key "${ref.key}": ${parsed.message}` };
    return { ok: true, url, parsed: parsed.value };
  }

  async #keysLookup(ref: SecretRef & { previousKey: string }): Promise<KeysLookup> {
    const v = await this.#value(ref, 'the side-channel signing key', 'spec.auth.secretRef.key', 'the key');
    if (!v.ok) return v;
    const toKey = (raw: string) => Buffer.from(raw.trim(), 'utf8');
    const current = toKey(v.data.utf8);
    const prevEncoded = v.data.secret.data?.[ref.previousKey];
    const previous = prevEncoded === undefined ? undefined : toKey(Buffer.from(prevEncoded, 'base64').toString('utf8'));
    for (const [which, k] of [[ref.key, current], [ref.previousKey, previous]] as const) {
      if (k !== undefined && k.length < MIN_KEY_BYTES) {
        return { ok: false, reason: 'InvalidKey', message: `Secret ${ref.namespace}/${ref.name} key "${which}" is shorter than ${MIN_KEY_BYTES} bytes: use a random key, e.g. openssl rand -hex 32` };
      }
    }
    return { ok: true, keys: { current, previous } };
  }

  /** One key of a Secret; every outcome a user must fix as a reason and a message that never quotes a value. */
  async #value({ namespace: ns, name, key }: SecretRef, what: string, field: string, holds: string): Promise<{ ok: true; data: { utf8: string; secret: SecretObject } } | { ok: false; reason: Exclude<SecretReason, 'InvalidURL'>; message: string }> {
    let secret: SecretObject | undefined;
    try {
      secret = await this.#read(ns, name);
    } catch (err) {
      if (isForbidden(err)) {
        return { ok: false, reason: 'SecretForbidden', message: `the operator may not read Secret ${ns}/${name}: grant it get on secrets in this namespace` };
      }
      throw err;
    }
    if (!secret) return { ok: false, reason: 'SecretNotFound', message: `Secret ${ns}/${name} not found: create it with ${what} under key "${key}"` };
    const encoded = secret.data?.[key];
    if (encoded === undefined) {
      // Its other keys are not listed: status and Events are read by people who may not read the Secret.
      return { ok: false, reason: 'SecretKeyMissing', message: `Secret ${ns}/${name} has no key "${key}": add it, or set ${field} to the key that holds ${holds}` };
    }
    return { ok: true, data: { utf8: Buffer.from(encoded, 'base64').toString('utf8'), secret } };
  }
}
