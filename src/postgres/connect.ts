// One attempt at a connection (docs/architecture.md, "Postgres", "A server that is not Postgres"): connectOnce
// opens a client (TLS as libpq's sslmode says, keepalive on, its wire guarded by wire.ts), checks it is a
// primary, turns off its session timeouts, LISTENs if it is the listener, and turns every failure on the way
// into a Failure with an actionable message. Every step has the connect timeout: the startup (pg's
// connectionTimeoutMillis) and each query (`answered`), so a server that accepts and then never answers ends the
// attempt. Whether to retry, and when, is connection.ts's.
import pg from 'pg';
import type { Clock, Timer } from '../core/clock.ts';
import {
  classifyConnectError, classifyListenError, classifyLostConnection, connectTimeout, isStatementRefused, notPostgres,
  READ_REPLICA_MESSAGE, type Failure, type Which,
} from './classify.ts';
import { tlsOptions, type ParsedPgUrl } from './connstring.ts';
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
class ConfigError extends Error {}

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
  ca: string | undefined;
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

/** Opens, checks and (for the listener) LISTENs one connection. Never throws. */
export async function connectOnce(c: Session, o: ConnectOptions): Promise<ConnectResult> {
  let step: 'connect' | 'check' | 'listen' = 'connect';
  const timeoutMs = o.parsed.connectTimeoutMs ?? o.connectTimeoutMs;
  try {
    const client = await open(c, o);
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
    if (r.rows[0]?.r === true) return { ok: false, failure: { reason: 'ReadReplica', message: READ_REPLICA_MESSAGE } };
    if (o.listenSql) {
      step = 'listen';
      await answered(o, timeoutMs, 'LISTEN', client.query(o.listenSql()));
      if (o.stale()) return { ok: 'stale' };
    }
    return { ok: true, client };
  } catch (err) {
    if (o.stale()) return { ok: 'stale' };
    if (err instanceof ConfigError) return { ok: false, failure: { reason: 'Error', message: err.message } };
    if (err instanceof AttemptFailed) return { ok: false, failure: err.failure };
    const problem = c.client ? wireOf(c.client)?.problem : undefined;
    if (problem !== undefined) return { ok: false, failure: notPostgres(problem) };
    if (step === 'connect') return { ok: false, failure: classifyConnectError(err, o.secrets, { timeoutMs }) };
    if (isStatementRefused(err)) {
      return {
        ok: false,
        failure: step === 'listen' ? classifyListenError(err, o.secrets) : { reason: 'Error', message: `SELECT pg_is_in_recovery() failed: ${errorText(err, o.secrets)}` },
      };
    }
    return { ok: false, failure: classifyLostConnection(err, c.which, o.secrets) };
  }
}

/** Opens a client (TLS first for sslmode=prefer, plain if the server has no TLS). */
async function open(c: Session, o: ConnectOptions): Promise<pg.Client> {
  const { parsed } = o;
  const attempt = async (plain: boolean): Promise<pg.Client> => {
    let ssl;
    try {
      ssl = tlsOptions(parsed, { ca: o.ca, plain });
    } catch (e) {
      throw new ConfigError(errorText(e, o.secrets));
    }
    let client: pg.Client;
    try {
      client = new pg.Client({
        connectionString: parsed.connectionString,
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
