// One attempt at a connection (docs/architecture.md, "Postgres", "A server that is not Postgres"): connectOnce
// opens a client (TLS as libpq's sslmode says, keepalive on, its wire guarded by wire.ts), checks it is a
// primary, turns off its session timeouts, LISTENs if it is the listener, and turns every failure on the way
// into a Failure with an actionable message. Every step has the connect timeout: the startup (pg's
// connectionTimeoutMillis) and each query (`answered`), so a server that accepts and then never answers ends the
// attempt. A URL with several hosts (docs/postgres.md, "High availability") tries them in order until one is a writable
// primary, as libpq does with target_session_attrs=read-write; a refused login or an unusable TLS option ends
// the attempt at once (libpq does not try the next host after an authentication failure either). Whether to
// retry, and when, is connection.ts's.
import pg from 'pg';
import type { Clock, Timer } from '../core/clock.ts';
import {
  classifyConnectError, classifyListenError, classifyLostConnection, connectTimeout, isStatementRefused, notPostgres,
  READ_REPLICA_MESSAGE, type Failure, type Which,
} from './classify.ts';
import type { ParsedPgUrl } from './connstring.ts';
import { tlsContext, tlsOptions, type TlsMaterial } from './tls.ts';
import { errorText, type UrlSecrets } from '../core/redact.ts';
import { guardWire, wireOf } from './wire.ts';

/** Postgres identifier quoting: LISTEN "chan" keeps the exact spelling pg_notify('chan', ...) uses. */
export function quoteIdent(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}

/** One attempt, and the connection it becomes if it succeeds. */
export interface Session {
  readonly which: Which;
  /** Set as soon as the client exists, so that ending the session ends it even mid-connect. */
  client: pg.Client | null;
  /** client.connect() resolved: from then on the client's 'error'/'end' are the connection's to handle. */
  connected: boolean;
  /** Listener only: the LISTEN of every channel has been issued (later subscribes LISTEN on their own). */
  listenIssued: boolean;
}

/** A URL that pg cannot use at all (a TLS option that cannot be applied, ...): not worth a server round trip. */
class ConfigError extends Error {
  readonly reason: 'Error' | 'InvalidTLS';
  constructor(message: string, reason: 'Error' | 'InvalidTLS' = 'Error') {
    super(message);
    this.reason = reason;
  }
}

/** An attempt that failed for a reason already known (the wire guard's, a timeout of the server's). */
class AttemptFailed extends Error {
  readonly failure: Failure;
  constructor(failure: Failure) {
    super(failure.message);
    this.failure = failure;
  }
}

export interface ConnectOptions {
  parsed: ParsedPgUrl;
  secrets: UrlSecrets;
  /** PEM material from Secrets (spec.postgres.tls), in place of the URL's files. */
  tls: TlsMaterial | undefined;
  /** Used when the URL has no connect_timeout; for the startup and for each query of the connect phase. */
  connectTimeoutMs: number;
  /** For the queries' timeouts. */
  clock: Clock;
  /** See applicationName. */
  identity?: string | undefined;
  /** The attempt no longer matters (closed, or superseded): stop and end what was opened. */
  stale(): boolean;
  /** Wires the client's events before it connects (errors, end, notifications). */
  wire(client: pg.Client): void;
  /** Listener only: the LISTEN statements, built when they are issued (see Session.listenIssued). */
  listenSql?(): string;
}

export type ConnectResult = { ok: true; client: pg.Client } | { ok: false; failure: Failure } | { ok: 'stale' };

/** Opens, checks and (for the listener) LISTENs one connection, on the first host of the URL that is a
 * writable primary. Never throws. */
export async function connectOnce(c: Session, o: ConnectOptions): Promise<ConnectResult> {
  const targets = o.parsed.connectionStrings;
  const failures: Failure[] = [];
  for (const target of targets) {
    const r = await connectHost(c, o, target);
    if (r.ok !== false) return r;
    failures.push(r.failure);
    if (r.final) break;
    // On to the next host: this one's client is ended here, and nothing may LISTEN on the next one before
    // it has been checked (a LISTEN queued on a standby would fail the whole attempt).
    const client = c.client;
    c.client = null;
    c.connected = false;
    c.listenIssued = false;
    if (client) void endClient(client);
    if (o.stale()) return { ok: 'stale' };
  }
  return { ok: false, failure: combineFailures(failures, targets.length) };
}

/**
 * The failures of every host tried, as one: a single host's as it is; of several, each host's message by its
 * position (host names are secret), with the reason they share, else ReadReplica when any host was a standby
 * (a failover under way: no primary yet), else the first host's.
 */
export function combineFailures(failures: readonly Failure[], hosts: number): Failure {
  if (failures.length === 1 && hosts === 1) return failures[0]!;
  const reasons = new Set(failures.map((f) => f.reason));
  const reason = reasons.size === 1 ? failures[0]!.reason : reasons.has('ReadReplica') ? 'ReadReplica' : failures[0]!.reason;
  const tried = failures.length === hosts ? `all ${hosts} hosts of the Secret's URL were tried in order` : `host ${failures.length} of the ${hosts} in the Secret's URL ended the attempt`;
  const each = failures.map((f, i) => `host ${i + 1}: ${f.message}`).join(' | ');
  return { reason, message: `no writable primary found (${tried}): ${each}` };
}

type HostResult = { ok: true; client: pg.Client } | { ok: 'stale' } | { ok: false; failure: Failure; final: boolean };

/** connectOnce on one host. `final`: the next host would fail alike (a refused login, an unusable option). */
async function connectHost(c: Session, o: ConnectOptions, target: string): Promise<HostResult> {
  let step: 'connect' | 'check' | 'listen' = 'connect';
  const timeoutMs = o.parsed.connectTimeoutMs ?? o.connectTimeoutMs;
  const failed = (failure: Failure, final = false): HostResult => ({ ok: false, failure, final: final || failure.reason === 'AuthenticationFailed' || failure.reason === 'ClientCertificateRefused' });
  try {
    const client = await open(c, o, target);
    if (o.stale()) {
      void endClient(client);
      return { ok: 'stale' };
    }
    c.connected = true;
    step = 'check';
    // One statement: is this a primary, and turn off the session timeouts a role or database may set
    // (idle_session_timeout would end the idle listener and make Connected flap; the others must not cut
    // a NOTIFY statement short either). Only those this server knows: idle_session_timeout is Postgres 14+.
    const r = await answered(o, timeoutMs, 'SELECT pg_is_in_recovery() (with set_config of its session timeouts)', client.query<{ r: boolean }>(`SELECT pg_is_in_recovery() AS r,
      (SELECT count(set_config(name, '0', false)) FROM pg_settings
        WHERE name IN ('idle_session_timeout', 'statement_timeout', 'idle_in_transaction_session_timeout')) AS n`));
    if (o.stale()) return { ok: 'stale' };
    if (r.rows[0]?.r === true) return failed({ reason: 'ReadReplica', message: READ_REPLICA_MESSAGE });
    if (o.listenSql) {
      step = 'listen';
      await answered(o, timeoutMs, 'LISTEN', client.query(o.listenSql()));
      if (o.stale()) return { ok: 'stale' };
    }
    return { ok: true, client };
  } catch (err) {
    if (o.stale()) return { ok: 'stale' };
    if (err instanceof ConfigError) return failed({ reason: err.reason, message: err.message }, true);
    if (err instanceof AttemptFailed) return failed(err.failure);
    const problem = c.client ? wireOf(c.client)?.problem : undefined;
    if (problem !== undefined) return failed(notPostgres(problem));
    if (step === 'connect') return failed(classifyConnectError(err, o.secrets, { timeoutMs, tls: tlsContext(o.parsed, o.tls) }));
    if (isStatementRefused(err)) {
      return failed(step === 'listen' ? classifyListenError(err, o.secrets) : { reason: 'Error', message: `SELECT pg_is_in_recovery() failed: ${errorText(err, o.secrets)}` });
    }
    return failed(classifyLostConnection(err, c.which, o.secrets));
  }
}

/** Opens a client on `target` (TLS first for sslmode=prefer, plain if the server has no TLS). */
async function open(c: Session, o: ConnectOptions, target: string): Promise<pg.Client> {
  const { parsed } = o;
  const attempt = async (plain: boolean): Promise<pg.Client> => {
    let ssl;
    try {
      ssl = tlsOptions(parsed, { tls: o.tls, plain });
    } catch (e) {
      // A file or the system store that cannot be read: the TLS configuration, not the server.
      throw new ConfigError(errorText(e, o.secrets), 'InvalidTLS');
    }
    let client: pg.Client;
    try {
      client = new pg.Client({
        connectionString: target,
        ssl,
        keepAlive: true,
        keepAliveInitialDelayMillis: 10_000,
        connectionTimeoutMillis: parsed.connectTimeoutMs ?? o.connectTimeoutMs,
        application_name: applicationName(c.which, o.identity),
      });
    } catch (e) {
      throw new ConfigError(`the Postgres URL cannot be used: ${errorText(e, o.secrets)}`);
    }
    let wire;
    try {
      wire = guardWire(client);
    } catch (e) {
      throw new ConfigError(errorText(e));
    }
    o.wire(client);
    c.client = client;
    try {
      await client.connect();
    } catch (e) {
      if (c.client === client) c.client = null;
      void endClient(client);
      if (wire.problem !== undefined) throw new AttemptFailed(notPostgres(wire.problem));
      if (wire.tcpConnected && /timeout expired/i.test(errorText(e))) throw new AttemptFailed(connectTimeout(parsed.connectTimeoutMs ?? o.connectTimeoutMs));
      throw e;
    }
    return client;
  };
  try {
    return await attempt(false);
  } catch (e) {
    if (parsed.sslmode === 'prefer' && !(e instanceof ConfigError) && /does not support SSL/i.test(errorText(e)) && !o.stale()) {
      return attempt(true);
    }
    throw e;
  }
}

/** A query of the connect phase, answered within timeoutMs or failed with ConnectTimeout (the attempt's failure
 * path then ends the client; the query's own late rejection is absorbed by the race). */
async function answered<T>(o: ConnectOptions, timeoutMs: number, what: string, query: Promise<T>): Promise<T> {
  let timer: Timer | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = o.clock.setTimer(() => reject(new AttemptFailed(connectTimeout(timeoutMs, what))), timeoutMs);
  });
  try {
    return await Promise.race([query, late]);
  } finally {
    timer?.cancel();
  }
}

/** Postgres keeps the first 63 bytes of an application_name. */
const APPLICATION_NAME_BYTES = 63;

/**
 * The application_name of a connection, so that pg_stat_activity tells whose it is:
 * `pgcluster-operator/<listener|sender>/<identity>` (without an identity, no third part). An identity too long
 * for 63 bytes loses characters from its start: the end of a pod name is what tells replicas apart.
 */
export function applicationName(which: Which, identity?: string): string {
  const base = `pgcluster-operator/${which}`;
  if (!identity) return base;
  const chars = Array.from(identity);
  while (chars.length > 0 && Buffer.byteLength(`${base}/${chars.join('')}`) > APPLICATION_NAME_BYTES) chars.shift();
  return `${base}/${chars.join('')}`;
}

/** End a client without ever rejecting or hanging: after 2 s the socket is destroyed. */
export function endClient(client: pg.Client): Promise<void> {
  return new Promise<void>((resolve) => {
    const t = setTimeout(() => {
      try { client.connection.stream.destroy(); } catch { /* already gone */ }
      resolve();
    }, 2000);
    client.end().then(() => undefined, () => undefined).finally(() => {
      clearTimeout(t);
      resolve();
    });
  });
}
