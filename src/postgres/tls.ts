// TLS for a Postgres connection (docs/postgres.md, "TLS"): what a PgCluster adds to its URL (spec.postgres.tls: an sslmode
// and PEM material read from Secrets), the checks that can be made before connecting, and pg's `ssl` option for
// one connect attempt. The CA comes from, in this order: the CA Secret (spec.postgres.tls.caSecretRef), the
// URL's sslrootcert (a file; `system`: the operating system's store), else Node's built-in public roots. The
// client certificate from the client Secret (kubernetes.io/tls), else the URL's sslcert/sslkey files.
//
// Pure apart from reading the files the URL names (at every connect, so rotated files are picked up) and the
// system store (read once by Node). Messages never contain PEM, keys or the URL.
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { getCACertificates, type ConnectionOptions } from 'node:tls';
import { parsePgUrl, type ParsedPgUrl, type SslMode } from './connstring.ts';

/** PEM material from Secrets. Secret (the key). */
export interface TlsMaterial {
  /** One or more CA certificates (a bundle). */
  ca?: string | undefined;
  /** The client certificate (and any intermediates) and its unencrypted private key. */
  cert?: string | undefined;
  key?: string | undefined;
}

/** What spec.postgres.tls adds to a URL: an sslmode replacing the URL's, and the material. */
export interface TlsSettings extends TlsMaterial {
  sslmode?: SslMode | undefined;
}

/** Where the CA a connection verifies against comes from, and whether a client certificate is offered: for
 * messages that say what to fix. */
export interface TlsContext {
  ca: 'secret' | 'file' | 'system' | 'builtin' | 'none';
  clientCert: 'secret' | 'file' | undefined;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The PEM certificates of a bundle, parsed; a string says what is wrong. */
function certificates(pem: string): X509Certificate[] | string {
  const blocks = pem.match(PEM_CERT) ?? [];
  if (blocks.length === 0) return 'holds no PEM certificate (-----BEGIN CERTIFICATE-----)';
  const out: X509Certificate[] = [];
  for (const [i, b] of blocks.entries()) {
    try {
      out.push(new X509Certificate(b));
    } catch {
      return `holds a PEM block that is not a valid certificate (certificate ${i + 1} of ${blocks.length})`;
    }
  }
  return out;
}

/**
 * Checks what the Secrets hold before anything connects: the CA is one or more PEM certificates; the client
 * certificate parses, its key is an unencrypted PEM private key, and the two belong together. Answers what is
 * wrong, naming the field (`where` describes each Secret key), or undefined.
 */
export function checkTlsMaterial(m: TlsMaterial, where: { ca: string; cert: string; key: string }): string | undefined {
  if (m.ca !== undefined) {
    const c = certificates(m.ca);
    if (typeof c === 'string') return `${where.ca} ${c}: put the CA certificate(s) there in PEM form (for example the ca.crt of CloudNativePG's <cluster>-ca Secret, or your cloud's CA bundle)`;
  }
  if (m.cert === undefined && m.key === undefined) return undefined;
  if (m.cert === undefined || m.key === undefined) return `the client certificate needs both ${where.cert} and ${where.key}`;
  const c = certificates(m.cert);
  if (typeof c === 'string') return `${where.cert} ${c}: a kubernetes.io/tls Secret holds the client certificate there (cert-manager writes it)`;
  let key;
  try {
    key = createPrivateKey({ key: m.key, format: 'pem' });
  } catch {
    return `${where.key} is not an unencrypted PEM private key: a kubernetes.io/tls Secret holds the client certificate's key there (cert-manager writes it)`;
  }
  if (!c[0]!.checkPrivateKey(key)) return `${where.key} is not the private key of the certificate in ${where.cert}: store the certificate and the key that belong together`;
  return undefined;
}

/**
 * The URL as spec.postgres.tls changes it: its sslmode (else the URL's; else verify-full when a CA is given, as
 * a CA is for verifying), the CA and client certificate from Secrets in place of the URL's files. A string: a
 * combination that cannot be meant (material that the sslmode would not use).
 */
export function applyTls(p: ParsedPgUrl, s: TlsSettings | undefined): ParsedPgUrl | string {
  if (!s) return p;
  const out: ParsedPgUrl = { ...p };
  if (s.sslmode) out.sslmode = s.sslmode;
  else if (!p.sslmodeGiven && s.ca !== undefined) out.sslmode = 'verify-full';
  const from = s.sslmode ? 'spec.postgres.tls.sslmode' : 'the URL';
  const weak = out.sslmode === 'disable' || out.sslmode === 'allow' || out.sslmode === 'prefer';
  if (weak && (s.ca !== undefined || s.cert !== undefined)) {
    const what = s.ca !== undefined ? 'a CA (spec.postgres.tls.caSecretRef)' : 'a client certificate (spec.postgres.tls.clientCertSecretRef)';
    return `spec.postgres.tls gives ${what}, but sslmode is ${out.sslmode} (from ${from}), which would not use it: set spec.postgres.tls.sslmode to verify-full (or verify-ca, or require)`;
  }
  if (s.ca !== undefined) delete out.sslrootcert;
  else if (p.sslrootcert === 'system' && out.sslmode !== 'verify-full') {
    return `sslrootcert=system needs sslmode=verify-full, but spec.postgres.tls.sslmode is ${out.sslmode}: set it to verify-full, or give the CA in spec.postgres.tls.caSecretRef`;
  }
  if (s.cert !== undefined) {
    delete out.sslcert;
    delete out.sslkey;
    delete out.sslpassword;
  }
  return out;
}

/** parsePgUrl, then applyTls: the URL as the connections use it, or why it cannot be used. */
export function prepareUrl(url: string, tls: TlsSettings | undefined): { ok: true; value: ParsedPgUrl } | { ok: false; failure: { reason: 'InvalidURL' | 'InvalidTLS'; message: string } } {
  const parsed = parsePgUrl(url);
  if (!parsed.ok) return { ok: false, failure: { reason: 'InvalidURL', message: parsed.message } };
  const applied = applyTls(parsed.value, tls);
  return typeof applied === 'string' ? { ok: false, failure: { reason: 'InvalidTLS', message: applied } } : { ok: true, value: applied };
}

/** A digest of the settings ('' for none): part of an endpoint's identity, so that a rotated Secret (new
 * material) gets connections of its own. Never the material itself. */
export function tlsFingerprint(s: TlsSettings | undefined): string {
  if (!s || (s.sslmode === undefined && s.ca === undefined && s.cert === undefined && s.key === undefined)) return '';
  const h = createHash('sha256').update('pgcluster-operator/tls/v1\0');
  for (const v of [s.sslmode, s.ca, s.cert, s.key]) h.update(v ?? '\u0001').update('\0');
  return h.digest('hex').slice(0, 16);
}

export function tlsContext(p: ParsedPgUrl, m: TlsMaterial | undefined): TlsContext {
  const verifies = p.sslmode === 'verify-ca' || p.sslmode === 'verify-full' || (p.sslmode === 'require' && (m?.ca !== undefined || p.sslrootcert !== undefined));
  const ca = !verifies ? 'none' : m?.ca !== undefined ? 'secret' : p.sslrootcert === 'system' ? 'system' : p.sslrootcert ? 'file' : 'builtin';
  return { ca, clientCert: m?.cert !== undefined ? 'secret' : p.sslcert ? 'file' : undefined };
}

/** The operating system's CA store (OpenSSL's default file and directory; SSL_CERT_FILE and SSL_CERT_DIR move
 * them). Throws when it is empty. */
export function systemCertificates(): string[] {
  const certs = getCACertificates('system');
  if (certs.length === 0) {
    throw new Error('sslrootcert=system names the system CA store, but the operator\'s container has none (no /etc/ssl/certs/ca-certificates.crt): '
      + 'give the CA in spec.postgres.tls.caSecretRef, or mount a CA bundle (the chart\'s extraVolumes) and set SSL_CERT_FILE to it (extraEnv)');
  }
  return certs;
}

/** pg's `ssl` option for one connect attempt; `plain` forces no TLS (the prefer fallback). Throws (with a
 * message naming only the parameter) when a named file cannot be read. */
export function tlsOptions(p: ParsedPgUrl, extra: { tls?: TlsMaterial | undefined; plain?: boolean; system?: () => string[] }): false | ConnectionOptions {
  if (extra.plain || p.sslmode === 'disable' || p.sslmode === 'allow') return false;
  const read = (param: string, file: string): string => {
    try {
      return readFileSync(file, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'error';
      throw new Error(`cannot read the file named by ${param} in the Postgres URL (${code}); mount it into the operator's pod (the chart's extraVolumes) or remove ${param}`);
    }
  };
  const m = extra.tls ?? {};
  const opts: ConnectionOptions = {};
  let ca: string | string[] | undefined;
  if (m.ca !== undefined) ca = m.ca;
  else if (p.sslrootcert === 'system') ca = (extra.system ?? systemCertificates)();
  else if (p.sslrootcert) ca = read('sslrootcert', p.sslrootcert);
  if (ca !== undefined) opts.ca = ca;
  if (m.cert !== undefined && m.key !== undefined) {
    opts.cert = m.cert;
    opts.key = m.key;
  } else if (p.sslcert && p.sslkey) {
    opts.cert = read('sslcert', p.sslcert);
    opts.key = read('sslkey', p.sslkey);
    if (p.sslpassword) opts.passphrase = p.sslpassword;
  }
  switch (p.sslmode) {
    case 'prefer':
      opts.rejectUnauthorized = false;
      break;
    case 'require':
      if (ca !== undefined) opts.checkServerIdentity = () => undefined;
      else opts.rejectUnauthorized = false;
      break;
    case 'verify-ca':
      opts.checkServerIdentity = () => undefined;
      break;
    case 'verify-full':
      break;
  }
  return opts;
}
