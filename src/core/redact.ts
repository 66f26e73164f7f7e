// Pure helpers that keep a Postgres URL's secrets out of anything we print: logs, condition messages,
// Events, metric labels. The URL is a secret as a whole (docs/architecture.md, "Secrets"), and errors from pg and from Node's
// socket layer quote parts of it: the host and resolved address ("connect ECONNREFUSED 10.1.2.3:5432"),
// the user and database ('no pg_hba.conf entry for host "10.1.2.3", user "app", database "chat"').
//
//   const secrets = secretsOfUrl(url);          // once per URL
//   redact(someText, secrets)                    // -> text with every secret replaced by a placeholder
//   errorText(err, secrets)                      // -> the redacted message of an unknown thrown value
//   endpointId(url)                              // -> 12 hex chars naming the URL without its password
//
// Never pass an error object itself to a logger: pino would print its message and stack unredacted.

import { createHash } from 'node:crypto';

const PLACEHOLDER = '[redacted]';

export interface UrlSecrets {
  /** The whole URL, and pieces of it, each as written and percent-decoded; longest first. */
  readonly exact: readonly string[];
  /** Host names: matched case-insensitively (DNS is). */
  readonly hosts: readonly string[];
}

function decode(s: string): string {
  try { return decodeURIComponent(s); } catch { return s; }
}

/**
 * The secret parts of a Postgres URL (whole URL, password, user, host, database). Works on text that
 * is not a valid URL too, by falling back to a lenient regex, so that even an unparsable URL's
 * password is found.
 */
export function secretsOfUrl(url: string): UrlSecrets {
  const exact = new Set<string>();
  const hosts = new Set<string>();
  const add = (set: Set<string>, s: string | null | undefined) => {
    if (!s) return;
    set.add(s);
    const d = decode(s);
    if (d) set.add(d);
  };
  add(exact, url.trim());
  let parsed: URL | undefined;
  try { parsed = new URL(url.trim()); } catch { parsed = undefined; }
  if (parsed) {
    add(exact, parsed.password);
    add(exact, parsed.username);
    add(exact, parsed.pathname.replace(/^\//, ''));
    add(hosts, parsed.hostname.replace(/^\[(.*)\]$/, '$1'));
    for (const k of ['password', 'user', 'dbname', 'sslpassword']) add(exact, parsed.searchParams.get(k));
    add(hosts, parsed.searchParams.get('host'));
    add(hosts, parsed.searchParams.get('hostaddr'));
  }
  {
    // scheme://user:password@host:port,host2:port/db, leniently, in addition to the parse above: a URL with an
    // unencoded @ / ? # in its password does not parse, or parses into the wrong pieces, and a host list never
    // does, so here the user info runs to the LAST @ and every host of the list is found. Finding too much only
    // redacts more.
    const t = url.trim();
    const start = t.indexOf('://');
    const at = t.lastIndexOf('@');
    if (start >= 0 && at > start) {
      const info = t.slice(start + 3, at);
      const colon = info.indexOf(':');
      add(exact, colon >= 0 ? info.slice(colon + 1) : undefined);
      add(exact, colon >= 0 ? info.slice(0, colon) : info);
    }
    const rest = /^([^/?#]*)(?:\/([^?#]*))?/.exec(t.slice(at > start ? at + 1 : start >= 0 ? start + 3 : 0));
    if (rest) {
      for (const h of (rest[1] ?? '').split(',')) add(hosts, /^\[([^\]]*)\]/.exec(h)?.[1] ?? h.replace(/:\d*$/, ''));
      add(exact, rest[2]);
    }
    // ?host=h1,h2 lists hosts too.
    for (const m of t.matchAll(/[?&]host(?:addr)?=([^&#]*)/g)) for (const h of decode(m[1] ?? '').split(',')) add(hosts, h);
  }
  const byLength = (a: string, b: string) => b.length - a.length;
  return { exact: [...exact].sort(byLength), hosts: [...hosts].sort(byLength) };
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Passwords at least this long are removed wherever they occur; shorter secrets only as whole tokens. */
const ANYWHERE_MIN = 6;

/**
 * Replaces, in this order: anything that looks like a postgres:// URI; `password=...` keywords; the
 * given secrets (long passwords anywhere, everything else as whole tokens, so a user named "postgres"
 * does not turn "PostgreSQL" into nonsense); IPv4 and IPv6 addresses.
 */
export function redact(text: string, secrets?: UrlSecrets): string {
  let out = text.replace(/\bpostgres(?:ql)?:\/\/[^\s"'<>]*/gi, `postgres://${PLACEHOLDER}`);
  out = out.replace(/\b(password|passwd|pwd)(\s*[=:]\s*)('[^']*'|"[^"]*"|[^\s,;)]+)/gi, `$1$2${PLACEHOLDER}`);
  if (secrets) {
    for (const s of secrets.exact) {
      if (s === PLACEHOLDER || s.length === 0) continue;
      if (s.length >= ANYWHERE_MIN) {
        out = out.split(s).join(PLACEHOLDER);
      } else {
        out = out.replace(new RegExp(`(?<![A-Za-z0-9_])${escapeRe(s)}(?![A-Za-z0-9_])`, 'g'), PLACEHOLDER);
      }
    }
    for (const h of secrets.hosts) {
      if (h.length === 0) continue;
      out = out.replace(new RegExp(`(?<![A-Za-z0-9_-])${escapeRe(h)}(?![A-Za-z0-9_-])`, 'gi'), PLACEHOLDER);
    }
  }
  // IPv4 (optionally with :port).
  out = out.replace(/(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?(?![\w.])/g, '[address]');
  // IPv6: a run of hex digits, colons and dots with "::" or at least five colons (not a clock time).
  out = out.replace(/(?<![\w:.])\[?[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\]?(?::\d+)?(?![\w:.])/g, (m) => {
    const colons = m.split(':').length - 1;
    return m.includes('::') || colons >= 5 ? '[address]' : m;
  });
  return out;
}

/** The redacted message of any thrown value (never its stack). */
export function errorText(err: unknown, secrets?: UrlSecrets): string {
  let msg: string;
  if (err instanceof Error) msg = err.message;
  else if (typeof err === 'string') msg = err;
  else {
    try { msg = String(err); } catch { msg = 'unknown error'; }
  }
  return redact(msg || 'unknown error', secrets).trim();
}

/** A short, stable id for a URL that is safe to show (logs, labels): 12 hex chars of a hash of the URL without
 * its password, and of `extra` (what else tells two endpoints of one URL apart: spec.postgres.tls's fingerprint). */
export function endpointId(url: string, extra = ''): string {
  // Derived without the password, so that an id seen in status or metrics cannot be used to test password
  // guesses offline. URLs that differ only in their password (a rotation) share an id: same server, user, db.
  const h = createHash('sha256').update('pgcluster-operator/endpoint-id/v2\0').update(withoutPassword(url));
  if (extra) h.update('\0').update(extra);
  return h.digest('hex').slice(0, 12);
}

/** The URL without its password (in the user info or as ?password=); a host list (h1,h2), which WHATWG URLs
 * refuse, too. */
function withoutPassword(url: string): string {
  try {
    const u = new URL(url);
    u.password = '';
    u.searchParams.delete('password');
    return u.toString();
  } catch {
    // Leniently, as secretsOfUrl: the user info runs to the last @ before the path.
    const m = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)(.*)$/is.exec(url.trim());
    if (!m) return url;
    const [, scheme, authority, rest] = m as unknown as [string, string, string, string];
    const at = authority.lastIndexOf('@');
    const user = at >= 0 ? authority.slice(0, at).split(':')[0] + '@' : '';
    return `${scheme}${user}${authority.slice(at + 1)}${rest.replace(/([?&])password=[^&#]*&?/g, '$1')}`;
  }
}
