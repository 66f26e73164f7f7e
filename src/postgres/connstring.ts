// Parses a libpq connection URI (README, "PgCluster": "postgres://user:pass@host:5432/db?sslmode=verify-full") into
// what `pg` needs, with libpq's meaning of sslmode rather than pg's (pg 8 treats prefer/require/verify-ca
// as verify-full and prints a warning; a user who copies a URI from a cloud console means libpq's):
//
//   disable      no TLS
//   allow        no TLS (libpq would retry with TLS if the server insisted; we do not)
//   prefer       TLS without verification, falling back to plain if the server has no TLS  (libpq's default,
//                also ours when the URI names no sslmode)
//   require      TLS without verification (with sslrootcert or the `ca` option: verify the chain, as libpq)
//   verify-ca    TLS, verify the chain but not the host name
//   verify-full  TLS, verify chain and host name
//
// sslrootcert / sslcert / sslkey name files (read at every connect, so rotated files are picked up;
// sslrootcert=system means the system CAs). connect_timeout (seconds) is honoured. The ssl* keys are removed
// from the string handed to pg so that pg's own parser cannot override what we decided.
//
// Pure except for reading the named files in tlsOptions(). No message here ever contains the URL.
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';

export type SslMode = 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';
const SSL_MODES: readonly SslMode[] = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'];

export interface ParsedPgUrl {
  /** The URI without ssl* parameters, for pg's `connectionString`. Secret. */
  connectionString: string;
  sslmode: SslMode;
  sslrootcert?: string;
  sslcert?: string;
  sslkey?: string;
  /** Passphrase of sslkey. Secret. */
  sslpassword?: string;
  /** From connect_timeout, else undefined (the caller picks a default). */
  connectTimeoutMs?: number;
}

export type ParseResult = { ok: true; value: ParsedPgUrl } | { ok: false; message: string };

const EMPTY_HOST = 'pgco-empty-host.invalid';
function emptyHost(text: string): URL {
  const u = new URL(text.replace(/@\//, `@${EMPTY_HOST}/`));
  return u;
}

const SHAPE = 'expected postgres://user:password@host:5432/database?sslmode=verify-full';

/** Validates and parses; on failure returns a message that names the problem but never the URL. */
export function parsePgUrl(url: string): ParseResult {
  const fail = (what: string): ParseResult => ({ ok: false, message: `the Postgres URL is not a valid libpq URI: ${what} (${SHAPE})` });
  const text = url.trim();
  if (text === '') return fail('it is empty');
  if (/^[a-z_]+\s*=/i.test(text)) return fail('key=value connection strings are not supported, only URIs');
  let u: URL;
  try {
    // postgres://user@/db?host=/socket: WHATWG URLs refuse user info without a host; parse with a stand-in.
    u = /^[a-z]+:\/\/[^/?#]*@\//i.test(text) ? emptyHost(text) : new URL(text);
  } catch {
    // Commonest causes, so the message can be specific without quoting anything.
    if (!/^postgres(ql)?:\/\//i.test(text)) return fail('it does not start with postgres:// or postgresql://');
    if (/@[^/?#]*,/.test(text)) return fail('multiple hosts are not supported');
    return fail('it does not parse (a password with special characters such as @ : / ? # % must be percent-encoded)');
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    return fail('it does not start with postgres:// or postgresql://');
  }
  const hostParam = u.searchParams.get('host');
  if (u.hostname === EMPTY_HOST && !hostParam) return fail('it names no host');
  if (u.hostname === '' && !hostParam) return fail('it names no host');
  if (u.hostname.includes(',') || (hostParam ?? '').includes(',')) return fail('multiple hosts are not supported');
  if (u.port !== '' && (Number(u.port) < 1 || Number(u.port) > 65535)) return fail('the port is out of range');
  for (const k of ['host', 'port', 'user', 'password', 'dbname']) {
    if (u.searchParams.getAll(k).length > 1) return fail(`the parameter ${k} is given more than once`);
  }
  try {
    decodeURIComponent(u.username);
    decodeURIComponent(u.password);
    decodeURIComponent(u.pathname);
  } catch {
    return fail('it contains a malformed percent-encoding');
  }

  const rawMode = u.searchParams.get('sslmode');
  const legacySsl = u.searchParams.get('ssl'); // pg's own ?ssl=true
  let sslmode: SslMode;
  if (rawMode !== null) {
    if (!(SSL_MODES as readonly string[]).includes(rawMode)) {
      return fail(`sslmode must be one of ${SSL_MODES.join(', ')}`);
    }
    sslmode = rawMode as SslMode;
  } else if (legacySsl === 'true' || legacySsl === '1') {
    sslmode = 'verify-full';
  } else if (legacySsl === 'false' || legacySsl === '0') {
    sslmode = 'disable';
  } else {
    sslmode = 'prefer';
  }
  const value: ParsedPgUrl = { connectionString: '', sslmode };
  const rootcert = u.searchParams.get('sslrootcert');
  const cert = u.searchParams.get('sslcert');
  const key = u.searchParams.get('sslkey');
  if (rootcert) value.sslrootcert = rootcert;
  if (cert) value.sslcert = cert;
  if (key) value.sslkey = key;
  const keyPass = u.searchParams.get('sslpassword');
  if (keyPass) value.sslpassword = keyPass;
  if ((cert === null) !== (key === null)) return fail('sslcert and sslkey must be given together');
  const ct = u.searchParams.get('connect_timeout');
  if (ct !== null) {
    const n = Number(ct);
    if (!Number.isFinite(n) || n < 0) return fail('connect_timeout must be a number of seconds');
    if (n > 0) value.connectTimeoutMs = Math.max(2, n) * 1000; // libpq: values below 2 mean 2
  }
  const negotiation = u.searchParams.get('sslnegotiation');
  if (negotiation !== null && negotiation !== 'postgres' && negotiation !== 'direct') {
    return fail('sslnegotiation must be postgres or direct');
  }
  if (negotiation === 'direct' && (sslmode === 'disable' || sslmode === 'allow' || sslmode === 'prefer')) {
    return fail('sslnegotiation=direct needs sslmode=require or stronger');
  }
  for (const k of ['sslmode', 'ssl', 'sslrootcert', 'sslcert', 'sslkey', 'sslpassword', 'uselibpqcompat', 'connect_timeout']) {
    u.searchParams.delete(k);
  }
  value.connectionString = u.hostname === EMPTY_HOST ? u.toString().replace(`@${EMPTY_HOST}/`, '@/') : u.toString();
  return { ok: true, value };
}

/** pg's `ssl` option for one connect attempt; `plain` forces no TLS (the prefer fallback). Throws (with a
 * message naming only the parameter) when a named file cannot be read. */
export function tlsOptions(p: ParsedPgUrl, extra: { ca?: string | undefined; plain?: boolean }): false | ConnectionOptions {
  if (extra.plain || p.sslmode === 'disable' || p.sslmode === 'allow') return false;
  const read = (param: string, file: string): string => {
    try {
      return readFileSync(file, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'error';
      throw new Error(`cannot read the file named by ${param} in the Postgres URL (${code}); mount it into the operator's pod or remove ${param}`);
    }
  };
  const opts: ConnectionOptions = {};
  let ca: string | undefined;
  if (p.sslrootcert && p.sslrootcert !== 'system') ca = read('sslrootcert', p.sslrootcert);
  else if (extra.ca && p.sslrootcert !== 'system') ca = extra.ca;
  if (ca !== undefined) opts.ca = ca;
  if (p.sslcert && p.sslkey) {
    opts.cert = read('sslcert', p.sslcert);
    opts.key = read('sslkey', p.sslkey);
    if (p.sslpassword) opts.passphrase = p.sslpassword;
  }
  const haveRoot = ca !== undefined || p.sslrootcert === 'system';
  switch (p.sslmode) {
    case 'prefer':
      opts.rejectUnauthorized = false;
      break;
    case 'require':
      if (haveRoot) opts.checkServerIdentity = () => undefined;
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
