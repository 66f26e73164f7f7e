// The connections' life (docs/architecture.md, "Postgres"): a ConnectionPair keeps one listener and one sender
// up, each a Connection that reconnects on its own with capped, jittered backoff and reports up/down. A
// Connection owns its generation: every attempt is a Session (connect.ts opens it), and a callback of a session
// that is no longer the current one (lost, replaced, closed) is dropped in one place, #current.
import type pg from 'pg';
import type { Logger } from 'pino';
import { backoffDelay } from '../core/backoff.ts';
import type { Clock, Timer } from '../core/clock.ts';
import { classifyListenError, classifyLostConnection, isStatementRefused, notPostgres, type Failure, type Which } from './classify.ts';
import { connectOnce, endClient, quoteIdent, type Session } from './connect.ts';
import type { ParsedPgUrl } from './connstring.ts';
import type { TlsMaterial } from './tls.ts';
import { errorText, type UrlSecrets } from '../core/redact.ts';
import { wireOf } from './wire.ts';

export { applicationName, quoteIdent } from './connect.ts';

export interface PairEvents {
  /** A connection is usable (connected, a primary, LISTENs done); `again`: not its first time. */
  up(which: Which, again: boolean): void;
  /** A connection broke, failed to connect or had a LISTEN refused: it has ended, its reconnect is scheduled.
   * Not called for drop(), whose caller knows. */
  down(which: Which, f: Failure): void;
  /** A notification on the listener. */
  notification(channel: string, payload: string): void;
}

export interface PairOptions {
  parsed: ParsedPgUrl;
  secrets: UrlSecrets;
  tls: TlsMaterial | undefined;
  connectTimeoutMs: number;
  backoff: { baseMs: number; maxMs: number };
  clock: Clock;
  log: Logger;
  /** The channels to LISTEN on when the listener (re)connects. */
  channels(): Iterable<string>;
  events: PairEvents;
  /** Who runs the connections (a pod name): part of their application_name. */
  identity?: string | undefined;
}

/** The listener and the sender of one endpoint. */
export class ConnectionPair {
  readonly #listener: Connection;
  readonly #sender: Connection;

  constructor(o: PairOptions) {
    this.#listener = new Connection('listener', o);
    this.#sender = new Connection('sender', o);
  }

  start(): void {
    this.#listener.start();
    this.#sender.start();
  }

  /** A healthy endpoint starts its backoff afresh at the next loss. */
  resetBackoff(): void {
    this.#listener.resetBackoff();
    this.#sender.resetBackoff();
  }

  /** Ends connection `which` and reconnects it after its backoff; no `down` event (the caller decided). */
  drop(which: Which, f: Failure): void {
    (which === 'listener' ? this.#listener : this.#sender).drop(f);
  }

  /** Runs a statement on the sender; ok/fail are called only if the sender is still the same connection then. */
  send<R extends pg.QueryResultRow>(sql: string, values: unknown[], ok: (r: pg.QueryResult<R>) => void, fail: (err: unknown) => void): void {
    this.#sender.query(sql, values, ok, fail);
  }

  /** LISTEN/UNLISTEN on the live listener, if any (else its next connect LISTENs every channel); a refused
   * LISTEN fails the listener. */
  listen(channel: string, on: boolean): void {
    this.#listener.listen(channel, on);
  }

  /** Ends both connections; no events afterwards. */
  close(): Promise<void> {
    return Promise.all([this.#listener.close(), this.#sender.close()]).then(() => undefined);
  }
}

class Connection {
  readonly #which: Which;
  readonly #o: PairOptions;
  /** The current attempt, or the connection it became; null while waiting to reconnect, and once closed. */
  #session: Session | null = null;
  #retry: Timer | null = null;
  /** Losses since it was last healthy: the backoff's exponent. */
  #attempt = 0;
  #everUp = false;
  #closed = false;

  constructor(which: Which, o: PairOptions) {
    this.#which = which;
    this.#o = o;
  }

  start(): void {
    this.#connect();
  }

  resetBackoff(): void {
    this.#attempt = 0;
  }

  /** Ends the current session and reconnects after the backoff. */
  drop(f: Failure): void {
    if (this.#closed) return;
    const client = this.#session?.client;
    this.#session = null;
    if (client) void endClient(client);
    const delay = backoffDelay(this.#attempt, this.#o.backoff);
    this.#attempt++;
    this.#o.log.debug({ which: this.#which, reason: f.reason, retryInMs: delay }, f.message);
    this.#retry?.cancel();
    this.#retry = this.#o.clock.setTimer(() => this.#connect(), delay);
  }

  /** Runs sql on the live client (the endpoint sends only while the connection is up). */
  query<R extends pg.QueryResultRow>(sql: string, values: unknown[], ok: (r: pg.QueryResult<R>) => void, fail: (err: unknown) => void): void {
    const s = this.#session;
    if (!s?.client) return;
    s.client.query<R>(sql, values).then(this.#current(s, ok), this.#current(s, fail));
  }

  listen(channel: string, on: boolean): void {
    const s = this.#session;
    if (!s?.client || !s.listenIssued) return;
    s.client.query(`${on ? 'LISTEN' : 'UNLISTEN'} ${quoteIdent(channel)}`).then(() => undefined, this.#current(s, (err: unknown) => {
      if (on && isStatementRefused(err)) this.#lose(classifyListenError(err, this.#o.secrets));
      else if (!on) this.#o.log.debug({ error: errorText(err, this.#o.secrets) }, 'UNLISTEN failed');
      // Connection-level failures arrive through 'error'/'end' as well.
    }));
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#retry?.cancel();
    this.#retry = null;
    const client = this.#session?.client;
    this.#session = null;
    return client ? endClient(client) : Promise.resolve();
  }

  /** `f`, called only while session `s` is still the current one: the one place where a late callback of a
   * lost, replaced or closed session is dropped. */
  #current<A extends unknown[]>(s: Session, f: (...a: A) => void): (...a: A) => void {
    return (...a) => {
      if (this.#session === s) f(...a);
    };
  }

  /** A problem the connection found itself: drop it and say so. */
  #lose(f: Failure): void {
    this.drop(f);
    this.#o.events.down(this.#which, f);
  }

  #connect(): void {
    this.#retry = null;
    if (this.#closed) return;
    const o = this.#o;
    const which = this.#which;
    const s: Session = { which, client: null, connected: false, listenIssued: false };
    this.#session = s;
    const down = this.#current(s, (client: pg.Client, err: Error | undefined) => {
      // Failures while connecting are handled by connectOnce; afterwards the first of 'error'/'end' wins.
      if (s.client !== client || !s.connected) return;
      const problem = wireOf(client)?.problem;
      this.#lose(problem !== undefined ? notPostgres(problem) : classifyLostConnection(err, which, o.secrets));
    });
    void connectOnce(s, {
      parsed: o.parsed, secrets: o.secrets, tls: o.tls, connectTimeoutMs: o.connectTimeoutMs, clock: o.clock, identity: o.identity,
      stale: () => this.#session !== s,
      wire: (client) => {
        client.on('error', (err: Error) => down(client, err));
        client.on('end', () => down(client, undefined));
        if (which === 'listener') {
          client.on('notification', this.#current(s, (m: pg.Notification) => o.events.notification(m.channel, m.payload ?? '')));
        }
      },
      // Built and issued in one synchronous step with listenIssued, so a new subscription either is in this
      // list or issues its own LISTEN after it (pg runs a client's queries in order).
      listenSql: which === 'listener' ? () => {
        s.listenIssued = true;
        return [...o.channels()].map((ch) => `LISTEN ${quoteIdent(ch)}`).join('; ');
      } : undefined,
    }).then(this.#current(s, (r) => {
      if (r.ok === 'stale') return;
      if (!r.ok) return this.#lose(r.failure);
      const again = this.#everUp;
      this.#everUp = true;
      o.log.debug({ which }, 'connection ready');
      o.events.up(which, again);
    }), this.#current(s, (err: unknown) => {
      // connectOnce handles its own errors; this is a last line of defence against a bug.
      this.#lose({ reason: 'Error', message: `internal error while connecting: ${errorText(err, o.secrets)}` });
    }));
  }
}
