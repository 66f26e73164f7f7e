// Parses a libpq connection URI (docs/postgres.md: "postgres://user:pass@host:5432/db?sslmode=verify-full") into
// what `pg` needs, with libpq's meaning of sslmode rather than pg's (pg 8 treats prefer/require/verify-ca
// as verify-full and prints a warning; a user who copies a URI from a cloud console means libpq's):
//
//   disable      no TLS
//   allow        no TLS (libpq would retry with TLS if the server insisted; we do not)
//   prefer       TLS without verification, falling back to plain if the server has no TLS  (libpq's default,
//                also ours when the URI names no sslmode)
//   require      TLS without verification (with a CA — sslrootcert, or spec.postgres.tls — verify the chain, as libpq)
//   verify-ca    TLS, verify the chain but not the host name
//   verify-full  TLS, verify chain and host name
//
// sslrootcert / sslcert / sslkey name files (read at every connect, so rotated files are picked up;
// sslrootcert=system means the operating system's CA store and, as in libpq 16, needs verify-full, its default).
// connect_timeout (seconds) is honoured, per host. The ssl* keys are removed from the strings handed to pg so
// that pg's own parser cannot override what we decided; tls.ts turns them into pg's `ssl` option.
//
// Several hosts (docs/postgres.md, "High availability"), as libpq and Patroni users write them: postgres://h1:5432,h2:5433/db
// or ?host=h1,h2&port=5432,5433. Each becomes a single-host connection string, tried in order (connect.ts) until
// one is a writable primary: target_session_attrs may be any, read-write or primary (all mean "a primary" to an
// operator that must NOTIFY); the values that ask for a standby are refused.
//
// Pure. No message here ever contains the URL.
export type SslMode = 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';
export const SSL_MODES: readonly SslMode[] = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'];

export interface ParsedPgUrl {
  /** One single-host URI per host of the URL, in its order, without ssl* parameters, for pg's `connectionString`.
   * Secret. */
  connectionStrings: readonly string[];
  sslmode: SslMode;
  /** The URL named sslmode (or pg's ssl=true/false) itself; false: the default, prefer (or verify-full with
   * sslrootcert=system). */
  sslmodeGiven: boolean;
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
/** target_session_attrs values that can land on a primary. */
const PRIMARY_ATTRS = ['any', 'read-write', 'primary'];

const invalid = (what: string): { ok: false; message: string } => ({ ok: false, message: `the Postgres URL is not a valid libpq URI: ${what} (${SHAPE})` });

/** Validates and parses; on failure returns a message that names the problem but never the URL. */
export function parsePgUrl(url: string): ParseResult {
  const text = url.trim();
  if (text === '') return invalid('it is empty');
  if (/^[a-z_]+\s*=/i.test(text)) return invalid('key=value connection strings are not supported, only URIs');
  const hosts = splitAuthority(text);
  if (typeof hosts === 'string') return invalid(hosts);
  const parts: ParsedPgUrl[] = [];
  for (const one of hosts) {
    const r = parseOne(one);
    if (!r.ok) return r;
    for (const v of r.value) parts.push(v);
  }
  const first = parts[0]!;
  return { ok: true, value: { ...first, connectionStrings: parts.flatMap((p) => p.connectionStrings) } };
}

/**
 * postgres://u:p@h1:1,h2:2/db?... as one URI per host (WHATWG URLs refuse a host list); a single host as is.
 * A string: what is wrong.
 */
export function splitAuthority(text: string): string[] | string {
  const m = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)(.*)$/is.exec(text);
  if (!m) return [text];
  const [, scheme, authority, rest] = m as unknown as [string, string, string, string];
  const at = authority.lastIndexOf('@');
  const userinfo = at >= 0 ? authority.slice(0, at + 1) : '';
  const list = authority.slice(at + 1);
  if (!list.includes(',')) return [text];
  const entries = list.split(',');
  if (entries.some((e) => e === '' || e === ':' || /^:\d*$/.test(e))) return 'the host list has an empty entry (write host1:5432,host2:5432)';
  return entries.map((e) => `${scheme}${userinfo}${e}${rest}`);
}

/** One URI of at most one host in its authority; ?host=h1,h2 may still list several. */
function parseOne(text: string): { ok: true; value: ParsedPgUrl[] } | { ok: false; message: string } {
  const fail = invalid;
  let u: URL;
  try {
    // postgres://user@/db?host=/socket: WHATWG URLs refuse user info without a host; parse with a stand-in.
    u = /^[a-z]+:\/\/[^/?#]*@\//i.test(text) ? emptyHost(text) : new URL(text);
  } catch {
    // Commonest causes, so the message can be specific without quoting anything.
    if (!/^postgres(ql)?:\/\//i.test(text)) return fail('it does not start with postgres:// or postgresql://');
    return fail('it does not parse (a password with special characters such as @ : / ? # % must be percent-encoded)');
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    return fail('it does not start with postgres:// or postgresql://');
  }
  const hostParam = u.searchParams.get('host');
  if (u.hostname === EMPTY_HOST && !hostParam) return fail('it names no host');
  if (u.hostname === '' && !hostParam) return fail('it names no host');
  if (u.port !== '' && (Number(u.port) < 1 || Number(u.port) > 65535)) return fail('the port is out of range');
  for (const k of ['host', 'port', 'user', 'password', 'dbname', 'target_session_attrs']) {
    if (u.searchParams.getAll(k).length > 1) return fail(`the parameter ${k} is given more than once`);
  }
  try {
    decodeURIComponent(u.username);
    decodeURIComponent(u.password);
    decodeURIComponent(u.pathname);
  } catch {
    return fail('it contains a malformed percent-encoding');
  }
  const attrs = u.searchParams.get('target_session_attrs');
  if (attrs !== null && !PRIMARY_ATTRS.includes(attrs)) {
    return fail(`target_session_attrs must be ${PRIMARY_ATTRS.join(', ')}: the operator NOTIFYs, which only a primary can (it never uses a standby, whatever the value)`);
  }

  const rawMode = u.searchParams.get('sslmode');
  const legacySsl = u.searchParams.get('ssl'); // pg's own ?ssl=true
  const rootcert = u.searchParams.get('sslrootcert');
  let sslmode: SslMode;
  let sslmodeGiven = true;
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
    // libpq 16: sslrootcert=system makes verify-full the default.
    sslmode = rootcert === 'system' ? 'verify-full' : 'prefer';
    sslmodeGiven = false;
  }
  if (rootcert === 'system' && sslmode !== 'verify-full') {
    return fail('sslrootcert=system needs sslmode=verify-full (as in libpq: any server with a certificate from a public CA would pass a weaker check)');
  }
  const value: ParsedPgUrl = { connectionStrings: [], sslmode, sslmodeGiven };
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
  for (const k of ['sslmode', 'ssl', 'sslrootcert', 'sslcert', 'sslkey', 'sslpassword', 'uselibpqcompat', 'connect_timeout', 'target_session_attrs']) {
    u.searchParams.delete(k);
  }
  // ?host=h1,h2&port=p1,p2 (libpq's other spelling of a host list): one port for all, or one per host.
  const paramHosts = hostParam?.split(',') ?? [];
  if (paramHosts.length > 1 && u.hostname !== '' && u.hostname !== EMPTY_HOST) return fail('give the hosts either before the path or as ?host=, not both');
  const ports = u.searchParams.get('port')?.split(',') ?? [];
  if (paramHosts.some((h) => h === '')) return fail('the host list has an empty entry (write host1:5432,host2:5432)');
  if (ports.length > 1 && ports.length !== paramHosts.length) return fail('the port parameter must give one port, or one per host');
  if (ports.some((p) => !/^\d+$/.test(p) || Number(p) < 1 || Number(p) > 65535)) return fail('the port is out of range');
  const asString = (x: URL) => (x.hostname === EMPTY_HOST ? x.toString().replace(`@${EMPTY_HOST}/`, '@/') : x.toString());
  if (paramHosts.length <= 1) return { ok: true, value: [{ ...value, connectionStrings: [asString(u)] }] };
  return {
    ok: true,
    value: paramHosts.map((h, i) => {
      const one = new URL(u.toString());
      one.searchParams.set('host', h);
      if (ports.length > 0) one.searchParams.set('port', ports[ports.length === 1 ? 0 : i]!);
      return { ...value, connectionStrings: [asString(one)] };
    }),
  };
}
