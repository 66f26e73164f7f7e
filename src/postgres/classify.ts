// Turns what pg and Node throw into a reason (the Connected condition's reason, see docs/architecture.md) and a message a person can act
// on. Pure. Messages never quote the URL; the server's own text is included only after redact().
import { errorText, type UrlSecrets } from '../core/redact.ts';
import { classifyTlsError, type TlsFailureReason } from './classifyTls.ts';
import type { TlsContext } from './tls.ts';

export type FailureReason =
  | 'Unreachable'
  | 'AuthenticationFailed'
  | 'ReadReplica'
  | 'ListenRefused'
  | 'NoEcho'
  | 'NotPostgres'
  | 'ConnectTimeout'
  | 'InvalidURL'
  | 'InvalidTLS'
  | TlsFailureReason
  | 'Error';

export interface Failure {
  reason: FailureReason;
  message: string;
}

export type Which = 'listener' | 'sender';

export const NO_ECHO_MESSAGE =
  'the listener does not receive notifications: a NOTIFY sent by the operator was not heard back. '
  + 'Typical causes: a transaction-mode pooler such as PgBouncer between the operator and Postgres, or a broken '
  + 'connection. Connect directly to Postgres or use session pooling; reconnecting';

/** NoEcho while other notifications kept arriving: the listener works but is behind (`seconds` at least). */
export function listenerBehindMessage(seconds: number): string {
  return `the listener is more than ${seconds}s behind: a NOTIFY sent by the operator was not heard back while other notifications kept arriving, `
    + 'probably a NOTIFY flood on a channel faster than Postgres delivers to one listener (see pgcluster_notify_flood and the NotifyFlood Event). '
    + 'Reconnecting drops the backlog; remote peers get a fresh peerTimeout';
}

/** A NOTIFY statement not completed within `seconds` on the sending connection. */
export function senderStuckMessage(seconds: number): string {
  return `the server did not complete a NOTIFY within ${seconds}s on the sending connection (a broken connection or an overloaded server); reconnecting`;
}

export const READ_REPLICA_MESSAGE =
  'the server is a read replica (pg_is_in_recovery() is true): NOTIFY is impossible on a standby. '
  + 'Point the Secret at the primary (for example its read-write service)';

/** The server at the URL's host and port does not speak the Postgres protocol (see wire.ts); `problem` says
 * what it sent. */
export function notPostgres(problem: string): Failure {
  return {
    reason: 'NotPostgres',
    message: `the server at the host and port of the Secret's URL does not speak the Postgres protocol: ${problem}. `
      + 'It is not a Postgres server (check the host and port in the URL: Postgres usually listens on 5432) or a proxy in between mangles the traffic; retrying',
  };
}

/**
 * The server accepted the TCP connection but did not finish what the operator asked within timeoutMs: the
 * startup (`what` undefined) or one of the connect phase's queries (`what` names it).
 */
export function connectTimeout(timeoutMs: number, what?: string): Failure {
  const s = `${Math.round(timeoutMs / 1000)}s`;
  return {
    reason: 'ConnectTimeout',
    message: what === undefined
      ? `the server accepted the connection but did not complete the Postgres startup within ${s}: it is probably not a Postgres server (check the host and port in the Secret's URL), or it is overloaded; retrying`
      : `the server did not answer ${what} within ${s} after the connection was opened (a session blocked by a lock, an overloaded server, or something that only looks like Postgres); retrying`,
  };
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH', 'ENETDOWN',
  'EPIPE', 'ECONNABORTED', 'EADDRNOTAVAIL', 'ENOENT', /* unix socket missing */
]);
const DNS_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NONAME', 'EAI_NODATA']);

interface ErrFields {
  code?: string;
  /** A SQLSTATE, when the server sent an ErrorResponse. */
  sqlstate?: string;
}

function fields(err: unknown): ErrFields {
  const out: ErrFields = {};
  if (typeof err !== 'object' || err === null) return out;
  const rec = err as { code?: unknown; errors?: unknown; severity?: unknown };
  let code = typeof rec.code === 'string' ? rec.code : undefined;
  if (!code && Array.isArray(rec.errors)) {
    // AggregateError from happy-eyeballs connects: every address failed.
    const first: unknown = rec.errors[0];
    if (typeof first === 'object' && first !== null && typeof (first as { code?: unknown }).code === 'string') {
      code = (first as { code: string }).code;
    }
  }
  if (code) out.code = code;
  if (code && /^[0-9A-Z]{5}$/.test(code) && typeof rec.severity === 'string') out.sqlstate = code;
  return out;
}

function withState(text: string, sqlstate: string | undefined): string {
  return sqlstate ? `${text} (SQLSTATE ${sqlstate})` : text;
}

const isTlsCode = (code: string) =>
  code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_') || code.startsWith('CERT_')
  || code.includes('CERT') || code.includes('SELF_SIGNED') || code.startsWith('UNABLE_TO_');

/** A failure to open a connection (TCP, TLS, startup, authentication). */
export function classifyConnectError(err: unknown, secrets: UrlSecrets | undefined, ctx: { timeoutMs: number; tls?: TlsContext | undefined }): Failure {
  const { code, sqlstate } = fields(err);
  const text = errorText(err, secrets);
  const tls = classifyTlsError({ code, sqlstate, text }, ctx.tls ?? { ca: 'builtin', clientCert: undefined });
  if (tls) return tls;
  if (sqlstate === '28P01') {
    return { reason: 'AuthenticationFailed', message: 'password authentication failed (SQLSTATE 28P01): check the user and password in the Secret\'s URL' };
  }
  if (sqlstate === '28000') {
    return {
      reason: 'AuthenticationFailed',
      message: withState(`the server rejected the connection: ${text}. Check the user in the Secret's URL, that it may log in, and that pg_hba.conf allows the operator's address and the sslmode in use`, sqlstate),
    };
  }
  if (sqlstate === '42501') {
    return {
      reason: 'AuthenticationFailed',
      message: 'the user of the Secret\'s URL may not connect to its database (SQLSTATE 42501, permission denied): GRANT CONNECT ON DATABASE <database> TO <user>, the one privilege it needs besides LOGIN (docs/postgres.md, "Least privilege")',
    };
  }
  if (sqlstate === '3D000') {
    return { reason: 'Error', message: 'the database named in the Secret\'s URL does not exist (SQLSTATE 3D000): fix the path of the URL or create the database' };
  }
  if (sqlstate === '53300' || sqlstate === '53400') {
    return { reason: 'Error', message: withState('the server has no free connection slots: raise max_connections or the role\'s CONNECTION LIMIT, or close other connections; retrying', sqlstate) };
  }
  if (sqlstate === '57P03') {
    return { reason: 'Unreachable', message: 'the server is starting up, shutting down or in recovery and does not accept connections yet (SQLSTATE 57P03); retrying' };
  }
  if (sqlstate && sqlstate.startsWith('57P')) {
    return { reason: 'Unreachable', message: withState(`the server closed the connection while it was being opened: ${text}; retrying`, sqlstate) };
  }
  if (code && DNS_CODES.has(code)) {
    return { reason: 'Unreachable', message: `cannot resolve the host name in the Secret's URL (${code}): check the host name and the cluster's DNS; retrying` };
  }
  if (code && NETWORK_CODES.has(code)) {
    return { reason: 'Unreachable', message: `cannot reach the Postgres server (${code}): check the host and port in the Secret's URL, that the server is running, and that network policies let the operator connect; retrying` };
  }
  if (/timeout expired|timed out|connection timeout/i.test(text)) {
    return { reason: 'Unreachable', message: `connecting to the Postgres server timed out after ${Math.round(ctx.timeoutMs / 1000)}s: check the host and port in the Secret's URL and that network policies let the operator connect; retrying` };
  }
  if (/does not support SSL/i.test(text)) {
    return { reason: 'Error', message: 'the server does not support TLS but the URL requires it: enable ssl on the server, or use sslmode=prefer or sslmode=disable in the URL' };
  }
  if ((code && isTlsCode(code)) || /SSL|TLS|certificate/i.test(text)) {
    return {
      reason: 'Error',
      message: `the TLS handshake failed${code ? ` (${code})` : ''}: if the server certificate is not signed by a public CA, give its CA (spec.postgres.tls.caSecretRef, or sslrootcert), or use sslmode=require to encrypt without verifying`,
    };
  }
  if (/Connection terminated unexpectedly/i.test(text)) {
    return { reason: 'Unreachable', message: 'the server closed the connection while it was being opened (a proxy, a full server, or a TLS mismatch); retrying' };
  }
  return { reason: 'Error', message: withState(`cannot connect to Postgres: ${text}; retrying`, sqlstate) };
}

const ROLE: Record<Which, string> = { listener: 'listening', sender: 'sending' };

/** An established connection that broke (error or end). */
export function classifyLostConnection(err: unknown, which: Which, secrets: UrlSecrets | undefined): Failure {
  const { code, sqlstate } = fields(err);
  const text = err === undefined ? 'closed' : errorText(err, secrets);
  const what = `lost the ${ROLE[which]} connection to Postgres`;
  if (sqlstate === '57P01') return { reason: 'Unreachable', message: `${what}: it was terminated by the server (an administrator, a failover or a shutdown; SQLSTATE 57P01); reconnecting` };
  if (sqlstate) return { reason: 'Unreachable', message: withState(`${what}: ${text}; reconnecting`, sqlstate) };
  if (code) return { reason: 'Unreachable', message: `${what} (${code}); reconnecting` };
  return { reason: 'Unreachable', message: `${what}: ${text}; reconnecting` };
}

/** LISTEN itself failed on a working connection. */
export function classifyListenError(err: unknown, secrets: UrlSecrets | undefined): Failure {
  const { sqlstate } = fields(err);
  if (sqlstate === '25006') {
    return { reason: 'ReadReplica', message: READ_REPLICA_MESSAGE };
  }
  return {
    reason: 'ListenRefused',
    message: withState(`the server refused LISTEN: ${errorText(err, secrets)}. The operator needs a session that may LISTEN: connect directly to Postgres or through a session-mode pooler`, sqlstate),
  };
}

/** The pg_notify statement failed on a working connection. */
export function classifySendError(err: unknown, secrets: UrlSecrets | undefined): Failure {
  const { sqlstate } = fields(err);
  if (sqlstate === '25006') return { reason: 'ReadReplica', message: READ_REPLICA_MESSAGE };
  if (sqlstate === '54000') {
    return { reason: 'Error', message: withState('NOTIFY failed: the notification queue is full, probably because a session LISTENs without reading; find it with pg_notification_queue_usage() and pg_stat_activity', sqlstate) };
  }
  return { reason: 'Error', message: withState(`NOTIFY failed: ${errorText(err, secrets)}; retrying at the next heartbeat`, sqlstate) };
}

/** True when the error came with a server ErrorResponse, i.e. the connection itself is probably fine. */
export function isServerError(err: unknown): boolean {
  return fields(err).sqlstate !== undefined;
}

/**
 * The server refused this statement and the connection stays usable: an ErrorResponse that is not of class
 * 57P (operator intervention: a terminated backend or a shutdown, which end the connection — those arrive
 * as a lost connection and are classified there).
 */
export function isStatementRefused(err: unknown): boolean {
  const { sqlstate } = fields(err);
  return sqlstate !== undefined && !sqlstate.startsWith('57P');
}
