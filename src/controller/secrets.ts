// The Postgres URL of a PgCluster, from its Secret, with its TLS material (spec.postgres.tls: a CA, a client
// certificate) from theirs, with a short cache (docs/architecture.md, "Secrets"). Every outcome a user must fix
// is a reason and a message for the Connected condition; only API failures that may pass (a 500, a timeout) are
// thrown, for the work queue to retry.
import type { Clock } from '../core/clock.ts';
import { MIN_KEY_BYTES, type SideKeys } from '../core/sideAuth.ts';
import { TLS_CERT_KEY, TLS_KEY_KEY, type EffectiveTls } from '../core/spec.ts';
import { parsePgUrl, type ParsedPgUrl, type SslMode } from '../postgres/connstring.ts';
import { applyTls, checkTlsMaterial, tlsFingerprint, type TlsSettings } from '../postgres/tls.ts';
import { isForbidden } from '../kube/client.ts';
import type { SecretObject } from '../kube/resources.ts';

/** A Secret read successfully is trusted this long (a change to it is seen within this plus the resync):
 * without it 1,000 PgClusters GET their Secrets ~17 times a second. */
export const SECRET_TTL_MS = 30_000;

export type SecretReason = 'SecretForbidden' | 'SecretNotFound' | 'SecretKeyMissing' | 'InvalidURL' | 'InvalidTLS';
/**
 * A usable URL comes parsed (with spec.postgres.tls applied) too: the endpoint does not parse it again. `key`
 * identifies its endpoint: the URL, and a fingerprint of the TLS settings when there are any, so that a
 * rotated CA or client certificate gets connections of its own (docs/postgres.md, "TLS").
 */
export type UrlLookup = { ok: true; url: string; parsed: ParsedPgUrl; tls: TlsSettings | undefined; key: string } | { ok: false; reason: SecretReason; message: string };
type Found = Extract<UrlLookup, { ok: true }>;

export interface SecretRef {
  namespace: string;
  name: string;
  key: string;
}

type ValueReason = Exclude<SecretReason, 'InvalidURL' | 'InvalidTLS'>;
export type KeyReason = ValueReason | 'InvalidKey';
/** spec.auth's keys. Never logged, never in a message. */
export type KeysLookup = { ok: true; keys: SideKeys } | { ok: false; reason: KeyReason; message: string };

export class SecretSource {
  #read: (ns: string, name: string) => Promise<SecretObject | undefined>;
  #clock: Clock;
  #ttlMs: number;
  /** Per PgCluster key: the last good lookup. */
  #cache = new Map<string, { ref: string; found: Found; at: number }>();
  /** Per PgCluster key: the last good spec.auth lookup. */
  #keyCache = new Map<string, { ref: string; keys: SideKeys; at: number }>();

  constructor(read: (ns: string, name: string) => Promise<SecretObject | undefined>, clock: Clock, ttlMs = SECRET_TTL_MS) {
    this.#read = read;
    this.#clock = clock;
    this.#ttlMs = ttlMs;
  }

  /** The URL (and spec.postgres.tls's material, in `ref`'s namespace) for PgCluster `owner`: from the cache while
   * fresh and the references unchanged, else read. */
  async url(owner: string, ref: SecretRef, tls?: EffectiveTls): Promise<UrlLookup> {
    const refKey = JSON.stringify([ref.namespace, ref.name, ref.key, tls ?? null]);
    const hit = this.#cache.get(owner);
    if (hit && hit.ref === refKey && this.#clock.now() - hit.at < this.#ttlMs) return hit.found;
    const r = await this.#lookup(ref, tls);
    if (r.ok) this.#cache.set(owner, { ref: refKey, found: r, at: this.#clock.now() });
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

  async #lookup(ref: SecretRef, tls: EffectiveTls | undefined): Promise<UrlLookup> {
    // One GET per Secret, however many of its keys are used (a cert-manager Secret can hold the CA too).
    const reads = new Map<string, Promise<SecretObject | undefined>>();
    const read = (ns: string, name: string) => {
      let p = reads.get(name);
      if (!p) reads.set(name, (p = this.#read(ns, name)));
      return p;
    };
    const v = await this.#value(ref, 'the Postgres URI', 'spec.postgres.urlSecretRef.key', 'the URI', read);
    if (!v.ok) return v;
    const url = v.data.utf8.trim();
    const parsed = parsePgUrl(url);
    if (!parsed.ok) return { ok: false, reason: 'InvalidURL', message: `Secret ${ref.namespace}/${ref.name} key "${ref.key}": ${parsed.message}` };
    if (!tls) return { ok: true, url, parsed: parsed.value, tls: undefined, key: url };
    const settings = await this.#tls(ref.namespace, tls, read);
    if ('reason' in settings) return settings;
    const applied = applyTls(parsed.value, settings);
    if (typeof applied === 'string') return { ok: false, reason: 'InvalidTLS', message: applied };
    const fingerprint = tlsFingerprint(settings);
    return { ok: true, url, parsed: applied, tls: settings, key: fingerprint ? `${url}\n${fingerprint}` : url };
  }

  /** spec.postgres.tls's Secrets, read and checked (docs/postgres.md, "TLS"). */
  async #tls(ns: string, tls: EffectiveTls, read: (ns: string, name: string) => Promise<SecretObject | undefined>): Promise<TlsSettings | { ok: false; reason: SecretReason; message: string }> {
    const out: TlsSettings = { sslmode: tls.sslmode as SslMode | undefined };
    const where = { ca: '', cert: '', key: '' };
    if (tls.ca) {
      const { secretName: name, key } = tls.ca;
      const v = await this.#value({ namespace: ns, name, key }, 'the Postgres server\'s CA certificate (PEM) for spec.postgres.tls.caSecretRef', 'spec.postgres.tls.caSecretRef.key', 'the CA certificate', read);
      if (!v.ok) return v;
      out.ca = v.data.utf8;
      where.ca = `Secret ${ns}/${name} key "${key}"`;
    }
    if (tls.clientCert) {
      const name = tls.clientCert.secretName;
      const shape = `spec.postgres.tls.clientCertSecretRef names a kubernetes.io/tls Secret, with the client certificate under ${TLS_CERT_KEY} and its key under ${TLS_KEY_KEY} (cert-manager writes it so)`;
      for (const key of [TLS_CERT_KEY, TLS_KEY_KEY]) {
        const v = await this.#value({ namespace: ns, name, key }, `the client certificate of spec.postgres.tls.clientCertSecretRef (${shape})`, '', '', read, shape);
        if (!v.ok) return v;
        if (key === TLS_CERT_KEY) out.cert = v.data.utf8;
        else out.key = v.data.utf8;
      }
      where.cert = `Secret ${ns}/${name} key "${TLS_CERT_KEY}"`;
      where.key = `Secret ${ns}/${name} key "${TLS_KEY_KEY}"`;
    }
    const bad = checkTlsMaterial(out, where);
    return bad ? { ok: false, reason: 'InvalidTLS', message: bad } : out;
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

  /** One key of a Secret; every outcome a user must fix as a reason and a message that never quotes a value.
   * `missingHint` replaces "add it, or set <field>..." when the key's name is fixed. */
  async #value({ namespace: ns, name, key }: SecretRef, what: string, field: string, holds: string, read = this.#read, missingHint?: string): Promise<{ ok: true; data: { utf8: string; secret: SecretObject } } | { ok: false; reason: ValueReason; message: string }> {
    let secret: SecretObject | undefined;
    try {
      secret = await read(ns, name);
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
      return { ok: false, reason: 'SecretKeyMissing', message: `Secret ${ns}/${name} has no key "${key}": ${missingHint ?? `add it, or set ${field} to the key that holds ${holds}`}` };
    }
    return { ok: true, data: { utf8: Buffer.from(encoded, 'base64').toString('utf8'), secret } };
  }
}
