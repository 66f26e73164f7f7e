// One Postgres connection's life (docs/architecture.md, "Connections"): open it (TLS as libpq's sslmode says,
// keepalive on), check it is a primary, LISTEN if it is the listener, and turn every failure on the way into
// a Failure with an actionable message. The endpoint decides when to (re)connect; this does one attempt.
import pg from 'pg';
import {
  classifyConnectError, classifyListenError, classifyLostConnection, isStatementRefused, READ_REPLICA_MESSAGE,
  type Failure, type Which,
} from './classify.ts';
import { tlsOptions, type ParsedPgUrl } from './connstring.ts';
import { errorText, type UrlSecrets } from './redact.ts';

export interface Conn {
  readonly which: Which;
  client: pg.Client | null;
  /** Bumped on every connect attempt and every loss; callbacks from older generations are ignored. */
  gen: number;
  /** client.connect() resolved. */
  connected: boolean;
  /** Listener only: the LISTEN of every channel has been issued (later subscribes LISTEN on their own). */
  listenIssued: boolean;
  /** Fully usable: connected, not a replica, LISTENs done. */
  ready: boolean;
  everReady: boolean;
  attempt: number;
}

export function newConn(which: Which): Conn {
  return { which, client: null, gen: 0, connected: false, listenIssued: false, ready: false, everReady: false, attempt: 0 };
}

/** A URL that pg cannot use at all (a TLS option that cannot be applied, ...): not worth a server round trip. */
class ConfigError extends Error {}

export interface ConnectOptions {
  parsed: ParsedPgUrl;
  secrets: UrlSecrets;
  ca: string | undefined;
  /** Used when the URL has no connect_timeout. */
  connectTimeoutMs: number;
  /** The attempt no longer matters (closed, or superseded): stop and end what was opened. */
  stale(): boolean;
  /** Wires the client's events before it connects (errors, end, notifications). */
  wire(client: pg.Client): void;
  /** Listener only: the LISTEN statements, built when they are issued (see Conn.listenIssued). */
  listenSql?(): string;
}

export type ConnectResult = { ok: true; client: pg.Client } | { ok: false; failure: Failure } | { ok: 'stale' };

/** Opens, checks and (for the listener) LISTENs one connection. Never throws. */
export async function connectOnce(c: Conn, o: ConnectOptions): Promise<ConnectResult> {
  let step: 'connect' | 'check' | 'listen' = 'connect';
  try {
    const client = await open(c, o);
    if (o.stale()) {
      void endClient(client);
      return { ok: 'stale' };
    }
    c.connected = true;
    step = 'check';
    const r = await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
    if (o.stale()) return { ok: 'stale' };
    if (r.rows[0]?.r === true) return { ok: false, failure: { reason: 'ReadReplica', message: READ_REPLICA_MESSAGE } };
    if (o.listenSql) {
      step = 'listen';
      await client.query(o.listenSql());
      if (o.stale()) return { ok: 'stale' };
    }
    return { ok: true, client };
  } catch (err) {
    if (o.stale()) return { ok: 'stale' };
    if (err instanceof ConfigError) return { ok: false, failure: { reason: 'Error', message: err.message } };
    if (step === 'connect') return { ok: false, failure: classifyConnectError(err, o.secrets, { timeoutMs: o.parsed.connectTimeoutMs ?? o.connectTimeoutMs }) };
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
async function open(c: Conn, o: ConnectOptions): Promise<pg.Client> {
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
        application_name: `pgcluster-operator/${c.which}`,
      });
    } catch (e) {
      throw new ConfigError(`the Postgres URL cannot be used: ${errorText(e, o.secrets)}`);
    }
    o.wire(client);
    c.client = client;
    try {
      await client.connect();
    } catch (e) {
      if (c.client === client) c.client = null;
      void endClient(client);
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
