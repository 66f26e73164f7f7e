// The PgEndpoint's public types (endpoint.ts re-exports them).
import type { Logger } from 'pino';
import type { Clock } from '../core/clock.ts';
import type { FailureReason } from './classify.ts';
import type { ParsedPgUrl } from './connstring.ts';
import type { TlsSettings } from './tls.ts';

export type EndpointState =
  | { phase: 'Connecting' | 'Listening'; since: number }
  | { phase: 'Failed'; reason: FailureReason; message: string; since: number };

export interface EndpointHooks {
  /** A statement committed: `names` node names NOTIFYed in it (the liveness probe is not counted), `ms` from
   * sending it to its completion. */
  onCommit?(names: number, ms: number): void;
  /** A notification arrived on a subscribed channel (not counted: the private probe channel). */
  onPayload?(channel: string): void;
  /** A probe came back; rttMs from sending the statement to hearing the probe. */
  onEcho?(rttMs: number): void;
  /** pg_notification_queue_usage() (0 to 1) as read with each NOTIFY statement: the server's queue fill. */
  onQueueUsage?(fraction: number): void;
  /** A connection was re-established after it had been lost (not called for the first connect). */
  onReconnect?(which: 'listener' | 'sender'): void;
}

export interface Announcement {
  channel: string;
  intervalMs: number;
  /** Node names to NOTIFY on the channel, each as one bare payload. */
  names: readonly string[];
  /** Whenever names are sent, also send sign(those names, wall-clock now) on `channel` (signed "alive"). */
  side?: { channel: string; sign(names: readonly string[], now: number): string[] } | undefined;
}

export interface Subscription {
  close(): void;
}

export interface EndpointOptions {
  url: string;
  /** The URL already parsed (parsePgUrl) with `tls` applied (applyTls), when the caller has done so. */
  parsed?: ParsedPgUrl;
  log: Logger;
  hooks?: EndpointHooks;
  /** spec.postgres.tls: an sslmode replacing the URL's, a PEM CA bundle and a client certificate and key (in place
   * of the URL's sslrootcert, sslcert and sslkey). Part of the endpoint's identity (its id). */
  tls?: TlsSettings | undefined;
  /** Default 3000. */
  echoTimeoutMs?: number;
  /** Default 5000. */
  livenessIntervalMs?: number;
  /** Default { baseMs: 250, maxMs: 30000 }. */
  backoff?: { baseMs: number; maxMs: number };
  /** How long a newly added name may wait for others to share its statement. Default 10. */
  coalesceMs?: number;
  /** Wall clock for alignment and `since`, monotonic clock for echo deadlines, timers. Default: the system's. */
  clock?: Clock;
  /** TCP+TLS+startup timeout when the URL has no connect_timeout. Default 10000. */
  connectTimeoutMs?: number;
  /** Who runs the connections (the operator's identity, a pod name): part of their application_name. */
  identity?: string;
}

