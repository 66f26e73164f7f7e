// PgEndpoint — everything the operator does with one Postgres URL, shared by every PgCluster that uses it
// (DESIGN §4, §5). The only module that talks to Postgres.
//
//   const ep = new PgEndpoint({ url, log });                  // never throws; a bad URL is Failed/InvalidURL
//   ep.id                                                     // 12 hex chars, stable per URL; for logs/labels
//   const sub = ep.subscribe('chat', (payload) => ...);       // raw payloads heard on the channel (untrusted)
//   ep.setAnnouncer('prod/chat', { channel: 'chat', intervalMs: 5000, names: ['chat@10.0.0.7'] });
//   ep.setAnnouncer('prod/chat', null);                       // stop announcing for that key
//   ep.state(); const off = ep.onState((s) => ...);
//   sub.close(); await ep.close();
//
// Connections: one listener (LISTEN "<channel>" per subscribed channel, refcounted, never in a transaction)
// and one sender. Both with TCP keepalive; either one reconnects on its own with capped full-jitter
// exponential backoff, and the listener re-LISTENs everything.
//
// Sending: heartbeats fire at wall-clock multiples of each announcer's interval, so announcers with equal (or
// dividing) intervals fire together. Everything due at once — heartbeats, names new to an announcer (held
// for at most coalesceMs so that a burst of joins shares a statement) and one liveness probe — goes out as ONE
// statement, `SELECT pg_notify(c, p) FROM unnest($1::text[], $2::text[]) AS t(c, p)`: one transaction, one
// commit. Never two statements in flight: what becomes due meanwhile waits for the next one.
//
// Liveness: the listener also LISTENs on a private channel (pgco_probe_<random>; never a PgCluster channel,
// whose libcluster_postgres nodes would try to dial whatever is sent there). Every statement carries one
// probe payload on it, and a statement goes out at least every livenessIntervalMs. The phase is 'Listening'
// only once both connections are up, every LISTEN succeeded, and a probe came back. A probe not heard within
// echoTimeoutMs of its commit → Failed/NoEcho and the listener reconnects. Announcements are sent only while
// Listening; on becoming Listening (again) every current name is announced at once.
//
// State: 'Connecting' until the first Listening; 'Failed' (with the latest reason and an actionable message)
// from the first problem until Listening again — it does not fall back to 'Connecting' while retrying.
// onState fires on every change of phase, reason or message; `since` moves only when phase or reason
// changes. A statement that sends no names still carries the probe, so hooks.onCommit's `payloads` is
// announcements + 1. A NOTIFY stuck for echoTimeoutMs on the sender → Failed/Unreachable, sender reconnects.
// TLS follows libpq's sslmode meanings (see connstring.ts), not pg's.
//
// Secrets: the URL never appears in a log line, state message or error; everything from pg is redacted.
import { randomBytes, scryptSync } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import type { Logger } from 'pino';
import {
  classifyConnectError, classifyListenError, classifyLostConnection, classifySendError, isServerError,
  NO_ECHO_MESSAGE, READ_REPLICA_MESSAGE,
  type Failure, type FailureReason, type Which,
} from './classify.ts';
import { parsePgUrl, tlsOptions, type ParsedPgUrl } from './connstring.ts';
import { errorText, secretsOfUrl, type UrlSecrets } from './redact.ts';
import { backoffDelay } from '../core/backoff.ts';
import { nextBoundary } from './timing.ts';

export type { FailureReason } from './classify.ts';

export type EndpointState =
  | { phase: 'Connecting' | 'Listening'; since: number }
  | { phase: 'Failed'; reason: FailureReason; message: string; since: number };

export interface EndpointHooks {
  /** A statement committed: `payloads` pg_notify calls in it (announcements plus the one probe), `ms` from
   * sending it to its completion. */
  onCommit?(payloads: number, ms: number): void;
  /** A notification arrived on a subscribed channel (not counted: the private probe channel). */
  onPayload?(channel: string): void;
  /** A probe came back; rttMs from sending the statement to hearing the probe. */
  onEcho?(rttMs: number): void;
  /** A connection was re-established after it had been lost (not called for the first connect). */
  onReconnect?(which: 'listener' | 'sender'): void;
}

export interface Announcement {
  channel: string;
  intervalMs: number;
  /** Node names to NOTIFY on the channel, each as one bare payload. */
  names: readonly string[];
}

export interface Subscription {
  close(): void;
}

export interface EndpointOptions {
  url: string;
  log: Logger;
  hooks?: EndpointHooks;
  /** PEM CA bundle for TLS (used unless the URL names an sslrootcert). */
  ca?: string;
  /** Default 3000. */
  echoTimeoutMs?: number;
  /** Default 5000. */
  livenessIntervalMs?: number;
  /** Default { baseMs: 250, maxMs: 30000 }. */
  backoff?: { baseMs: number; maxMs: number };
  /** How long a newly added name may wait for others to share its statement. Default 10. */
  coalesceMs?: number;
  /** Wall clock (ms since epoch) for alignment and `since`. Default Date.now. */
  now?: () => number;
  /** TCP+TLS+startup timeout when the URL has no connect_timeout. Default 10000. */
  connectTimeoutMs?: number;
}

const NOTIFY_SQL = 'SELECT pg_notify(c, p) FROM unnest($1::text[], $2::text[]) AS t(c, p)';
/** Timers may fire a hair early relative to Date.now(); treat anything this close as due. */
const SLACK_MS = 2;
const MAX_CHANNEL_BYTES = 63; // NAMEDATALEN - 1; pg_notify rejects longer channel names
const MAX_PAYLOAD_BYTES = 7999; // pg_notify: "payload string too long" at 8000

/** Postgres identifier quoting: LISTEN "chan" keeps the exact spelling pg_notify('chan', ...) uses. */
export function quoteIdent(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}

/** A short, stable id for a URL that is safe to show. scrypt (a few ms, not a fast hash), so that the id does
 * not let someone who knows the rest of the URL test password guesses quickly. */
export function endpointId(url: string): string {
  return scryptSync(url, 'pgcluster-operator/endpoint-id/v1', 6, { N: 1 << 12, r: 8, p: 1 }).toString('hex');
}

function validChannel(ch: unknown): ch is string {
  return typeof ch === 'string' && ch.length > 0 && !ch.includes('\0') && Buffer.byteLength(ch) <= MAX_CHANNEL_BYTES;
}

function validPayload(p: unknown): p is string {
  return typeof p === 'string' && p.length > 0 && !p.includes('\0') && Buffer.byteLength(p) <= MAX_PAYLOAD_BYTES;
}

interface Conn {
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
  retryTimer: NodeJS.Timeout | null;
}

interface AnnouncerState {
  channel: string;
  intervalMs: number;
  names: Set<string>;
  nextAt: number;
  /** Names new to this announcer, waiting (at most coalesceMs) for the next statement. */
  fresh: Set<string>;
  /** A heartbeat boundary passed and this announcer's names go in the next statement. */
  due: boolean;
}

/** Probe times are monotonic (performance.now()), so a wall-clock step cannot fake or hide a NoEcho. */
interface Probe {
  token: string;
  sentAt: number;
  /** When its statement completed (0 while in flight). */
  committedAt: number;
}

function newConn(which: Which): Conn {
  return { which, client: null, gen: 0, connected: false, listenIssued: false, ready: false, everReady: false, attempt: 0, retryTimer: null };
}

export class PgEndpoint {
  readonly id: string;

  private readonly log: Logger;
  private readonly hooks: EndpointHooks;
  private readonly now: () => number;
  private readonly echoTimeoutMs: number;
  private readonly livenessIntervalMs: number;
  private readonly backoff: { baseMs: number; maxMs: number };
  private readonly coalesceMs: number;
  private readonly connectTimeoutMs: number;
  private readonly ca: string | undefined;
  private readonly secrets: UrlSecrets;
  private readonly parsed: ParsedPgUrl | null;
  private readonly probeChannel = `pgco_probe_${randomBytes(8).toString('hex')}`;

  private readonly listener = newConn('listener');
  private readonly sender = newConn('sender');
  private readonly subs = new Map<string, Set<{ cb: (payload: string) => void }>>();
  private readonly announcers = new Map<string, AnnouncerState>();
  private readonly stateCbs = new Set<(s: EndpointState) => void>();

  private current: EndpointState;
  /** The latest problem; cleared by the echo of a probe sent after it, with both connections up. */
  private failure: Failure | null = null;
  /** probeSeq when `failure` was recorded: only a later probe's echo clears it. */
  private failureAtProbe = 0;
  /** A probe was heard since the last (re)connect of either connection. */
  private echoed = false;
  private probes: Probe[] = [];
  private probeSeq = 0;
  private sendSeq = 0;
  private inFlight = false;
  private flushAgain = false;
  private probeWanted = false;
  private immediateAt = Infinity;
  private nextLivenessAt = 0;
  private wakeTimer: NodeJS.Timeout | null = null;
  private wakeAt = Infinity;
  private closed = false;
  private closing: Promise<void> | null = null;

  constructor(opts: EndpointOptions) {
    this.now = opts.now ?? Date.now;
    this.id = endpointId(opts.url);
    this.log = opts.log.child({ component: 'postgres', endpoint: this.id });
    this.hooks = opts.hooks ?? {};
    this.echoTimeoutMs = opts.echoTimeoutMs ?? 3000;
    this.livenessIntervalMs = opts.livenessIntervalMs ?? 5000;
    this.backoff = opts.backoff ?? { baseMs: 250, maxMs: 30_000 };
    this.coalesceMs = opts.coalesceMs ?? 10;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    this.ca = opts.ca;
    this.secrets = secretsOfUrl(opts.url);
    const parsed = parsePgUrl(opts.url);
    const since = this.now();
    if (!parsed.ok) {
      this.parsed = null;
      this.current = { phase: 'Failed', reason: 'InvalidURL', message: parsed.message, since };
      this.log.warn({ reason: 'InvalidURL' }, parsed.message);
      return;
    }
    this.parsed = parsed.value;
    this.current = { phase: 'Connecting', since };
    this.startConnect(this.listener);
    this.startConnect(this.sender);
  }

  state(): EndpointState {
    return { ...this.current };
  }

  /** Calls cb on every change of phase, reason or message. Returns the unsubscribe function. */
  onState(cb: (s: EndpointState) => void): () => void {
    const entry = (s: EndpointState) => cb(s);
    this.stateCbs.add(entry);
    return () => { this.stateCbs.delete(entry); };
  }

  /**
   * Receive every payload NOTIFYed on `channel` (including our own announcements), as sent: untrusted text.
   * Throws TypeError for a channel pg_notify could not use (empty, NUL, over 63 bytes).
   */
  subscribe(channel: string, onPayload: (payload: string) => void): Subscription {
    if (!validChannel(channel) || channel === this.probeChannel) {
      throw new TypeError('PgEndpoint.subscribe: the channel must be 1 to 63 bytes without NUL');
    }
    let set = this.subs.get(channel);
    const first = set === undefined;
    if (!set) {
      set = new Set();
      this.subs.set(channel, set);
    }
    const entry = { cb: onPayload };
    set.add(entry);
    if (first) this.listenerCommand(`LISTEN ${quoteIdent(channel)}`, true);
    const mine = set;
    let open = true;
    return {
      close: () => {
        if (!open) return;
        open = false;
        mine.delete(entry);
        if (mine.size === 0 && this.subs.get(channel) === mine) {
          this.subs.delete(channel);
          this.listenerCommand(`UNLISTEN ${quoteIdent(channel)}`, false);
        }
      },
    };
  }

  /**
   * Set (or with null remove) the announcer `key`: NOTIFY each of `names` on `channel` every `intervalMs`,
   * at wall-clock multiples of it. A name not in the key's previous set (or every name, if the channel
   * changed) is announced within coalesceMs. Names pg_notify cannot carry (empty, NUL, 8000+ bytes) are
   * dropped with a warning so that they cannot fail the statement shared by every PgCluster on this URL.
   * Throws TypeError for an unusable channel or interval.
   */
  setAnnouncer(key: string, a: Announcement | null): void {
    if (this.closed) return;
    if (a === null) {
      this.announcers.delete(key);
      this.reschedule();
      return;
    }
    if (!validChannel(a.channel) || a.channel === this.probeChannel) {
      throw new TypeError('PgEndpoint.setAnnouncer: the channel must be 1 to 63 bytes without NUL');
    }
    if (!Number.isFinite(a.intervalMs) || a.intervalMs < 10) {
      throw new TypeError('PgEndpoint.setAnnouncer: intervalMs must be a finite number >= 10');
    }
    const names = new Set<string>();
    let dropped = 0;
    for (const n of a.names) {
      if (validPayload(n)) names.add(n); else dropped++;
    }
    if (dropped > 0) this.log.warn({ announcer: key, dropped }, 'dropped node names that cannot be sent with pg_notify (empty, NUL, or 8000 bytes and more)');
    const now = this.now();
    const prev = this.announcers.get(key);
    const sameChannel = prev !== undefined && prev.channel === a.channel;
    const fresh = new Set<string>();
    if (sameChannel) {
      for (const n of prev.fresh) if (names.has(n)) fresh.add(n);
    }
    for (const n of names) if (!sameChannel || !prev.names.has(n)) fresh.add(n);
    const listening = this.current.phase === 'Listening';
    const next: AnnouncerState = {
      channel: a.channel,
      intervalMs: a.intervalMs,
      names,
      nextAt: prev && prev.intervalMs === a.intervalMs ? prev.nextAt : nextBoundary(now, a.intervalMs),
      fresh: listening ? fresh : new Set(),
      due: sameChannel && prev.due,
    };
    this.announcers.set(key, next);
    if (listening && next.fresh.size > 0) this.immediateAt = Math.min(this.immediateAt, now + this.coalesceMs);
    this.reschedule();
  }

  /** Stop heartbeats and end both connections. Idempotent; no callbacks afterwards. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeTimer = null;
    this.stateCbs.clear();
    const ends: Promise<void>[] = [];
    for (const c of [this.listener, this.sender]) {
      if (c.retryTimer) clearTimeout(c.retryTimer);
      c.retryTimer = null;
      c.gen++;
      c.ready = false;
      c.connected = false;
      if (c.client) ends.push(endClient(c.client));
      c.client = null;
    }
    this.announcers.clear();
    this.subs.clear();
    this.closing = Promise.all(ends).then(() => { this.log.debug('closed'); });
    return this.closing;
  }

  // ---- connections ---------------------------------------------------------------------------------

  private startConnect(c: Conn): void {
    c.retryTimer = null;
    if (this.closed || !this.parsed) return;
    const gen = ++c.gen;
    this.connect(c, gen).catch((err: unknown) => {
      // connect() handles its own errors; this is a last line of defence against a bug.
      this.lose(c, gen, { reason: 'Error', message: `internal error while connecting: ${errorText(err, this.secrets)}` });
    });
  }

  /** Opens a client (TLS first for sslmode=prefer, plain if the server has no TLS). */
  private async open(c: Conn, gen: number): Promise<pg.Client> {
    const parsed = this.parsed;
    if (!parsed) throw new Error('no URL');
    const attempt = async (plain: boolean): Promise<pg.Client> => {
      let ssl;
      try {
        ssl = tlsOptions(parsed, { ca: this.ca, plain });
      } catch (e) {
        throw new ConfigError(errorText(e, this.secrets));
      }
      let client: pg.Client;
      try {
        client = new pg.Client({
          connectionString: parsed.connectionString,
          ssl,
          keepAlive: true,
          keepAliveInitialDelayMillis: 10_000,
          connectionTimeoutMillis: parsed.connectTimeoutMs ?? this.connectTimeoutMs,
          application_name: `pgcluster-operator/${c.which}`,
        });
      } catch (e) {
        throw new ConfigError(`the Postgres URL cannot be used: ${errorText(e, this.secrets)}`);
      }
      client.on('error', (err: Error) => this.onClientDown(c, gen, client, err));
      client.on('end', () => this.onClientDown(c, gen, client, undefined));
      if (c.which === 'listener') {
        client.on('notification', (m: pg.Notification) => this.onNotification(c, gen, m));
      }
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
      if (parsed.sslmode === 'prefer' && !(e instanceof ConfigError) && /does not support SSL/i.test(errorText(e))
        && !this.closed && c.gen === gen) {
        return attempt(true);
      }
      throw e;
    }
  }

  private async connect(c: Conn, gen: number): Promise<void> {
    const stale = () => this.closed || c.gen !== gen;
    let step: 'connect' | 'check' | 'listen' = 'connect';
    try {
      const client = await this.open(c, gen);
      if (stale()) {
        void endClient(client);
        return;
      }
      c.connected = true;
      step = 'check';
      const r = await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
      if (stale()) return;
      if (r.rows[0]?.r === true) {
        this.lose(c, gen, { reason: 'ReadReplica', message: READ_REPLICA_MESSAGE });
        return;
      }
      if (c.which === 'listener') {
        step = 'listen';
        // Built and issued in one synchronous step with listenIssued, so a subscribe() either is in this list
        // or issues its own LISTEN after it (pg runs a client's queries in order).
        const sql = [this.probeChannel, ...this.subs.keys()].map((ch) => `LISTEN ${quoteIdent(ch)}`).join('; ');
        c.listenIssued = true;
        await client.query(sql);
        if (stale()) return;
      }
      c.ready = true;
      if (c.everReady) this.safe(() => this.hooks.onReconnect?.(c.which));
      c.everReady = true;
      this.log.debug({ which: c.which }, 'connection ready');
      // A fresh connection invalidates earlier echoes: prove the loop again.
      this.echoed = false;
      this.probes = [];
      this.probeWanted = true;
      this.flush();
      this.update();
      this.reschedule();
    } catch (err) {
      if (stale()) return;
      let f: Failure;
      if (err instanceof ConfigError) f = { reason: 'Error', message: err.message };
      else if (step === 'connect') f = classifyConnectError(err, this.secrets, { timeoutMs: this.parsed?.connectTimeoutMs ?? this.connectTimeoutMs });
      else if (isServerError(err) && !/^57P/.test(errCode(err))) {
        f = step === 'listen' ? classifyListenError(err, this.secrets)
          : { reason: 'Error', message: `SELECT pg_is_in_recovery() failed: ${errorText(err, this.secrets)}` };
      } else f = classifyLostConnection(err, c.which, this.secrets);
      this.lose(c, gen, f);
    }
  }

  private onClientDown(c: Conn, gen: number, client: pg.Client, err: Error | undefined): void {
    // Failures while connecting are handled by connect(); afterwards the first of 'error'/'end' wins.
    if (this.closed || c.gen !== gen || c.client !== client || !c.connected) return;
    this.lose(c, gen, classifyLostConnection(err, c.which, this.secrets));
  }

  /** Drop connection c (if still generation gen), record why, and schedule a reconnect. */
  private lose(c: Conn, gen: number, f: Failure): void {
    if (this.closed || c.gen !== gen) return;
    c.gen++;
    const client = c.client;
    c.client = null;
    c.connected = false;
    c.listenIssued = false;
    c.ready = false;
    if (client) void endClient(client);
    if (c.which === 'sender') {
      this.sendSeq++; // the in-flight statement's outcome no longer matters
      this.inFlight = false;
      this.flushAgain = false;
    }
    this.echoed = false;
    this.probes = [];
    this.setFailure(f);
    const delay = backoffDelay(c.attempt, this.backoff);
    c.attempt++;
    this.log.debug({ which: c.which, reason: f.reason, retryInMs: delay }, f.message);
    if (c.retryTimer) clearTimeout(c.retryTimer);
    c.retryTimer = setTimeout(() => this.startConnect(c), delay);
    this.update();
    this.reschedule();
  }

  /** LISTEN/UNLISTEN on the live listener, if any; a refused LISTEN fails the listener. */
  private listenerCommand(sql: string, isListen: boolean): void {
    const c = this.listener;
    const client = c.client;
    if (this.closed || !client || !c.listenIssued) return; // the next connect LISTENs every channel
    const gen = c.gen;
    client.query(sql).then(() => undefined, (err: unknown) => {
      if (this.closed || c.gen !== gen) return;
      if (isListen && isServerError(err) && !/^57P/.test(errCode(err))) {
        this.lose(c, gen, classifyListenError(err, this.secrets));
      } else if (!isListen) {
        this.log.debug({ error: errorText(err, this.secrets) }, 'UNLISTEN failed');
      }
      // Connection-level failures arrive through 'error'/'end' as well.
    });
  }

  private onNotification(c: Conn, gen: number, m: pg.Notification): void {
    if (this.closed || c.gen !== gen) return;
    const payload = m.payload ?? '';
    if (m.channel === this.probeChannel) {
      this.onProbe(payload);
      return;
    }
    const set = this.subs.get(m.channel);
    if (!set) return;
    this.safe(() => this.hooks.onPayload?.(m.channel));
    for (const s of [...set]) this.safe(() => s.cb(payload));
  }

  private onProbe(token: string): void {
    const i = this.probes.findIndex((p) => p.token === token);
    if (i < 0) return; // from before a reconnect
    const p = this.probes[i]!;
    // Notifications arrive in commit order: hearing this one settles every earlier probe too.
    this.probes = this.probes.slice(i + 1);
    this.safe(() => this.hooks.onEcho?.(performance.now() - p.sentAt));
    if (this.listener.ready && this.sender.ready) {
      this.echoed = true;
      if (Number(token) > this.failureAtProbe) this.failure = null;
      this.update();
    }
    this.reschedule();
  }

  // ---- state ----------------------------------------------------------------------------------------

  private setFailure(f: Failure): void {
    this.failure = f;
    this.failureAtProbe = this.probeSeq;
  }

  private update(): void {
    if (this.closed || !this.parsed) return;
    const prev = this.current;
    let next: EndpointState;
    if (this.listener.ready && this.sender.ready && this.echoed && this.failure === null) {
      next = { phase: 'Listening', since: 0 };
    } else if (this.failure) {
      next = { phase: 'Failed', reason: this.failure.reason, message: this.failure.message, since: 0 };
    } else {
      next = { phase: 'Connecting', since: 0 };
    }
    if (stateKey(prev, true) === stateKey(next, true)) return;
    next.since = stateKey(prev, false) === stateKey(next, false) ? prev.since : this.now();
    this.current = next;
    if (next.phase === 'Listening') {
      this.listener.attempt = 0;
      this.sender.attempt = 0;
      this.log.info('listening: LISTEN is up and our own NOTIFY came back');
      this.onListening();
    } else if (next.phase === 'Failed') {
      this.log.warn({ reason: next.reason }, next.message);
    }
    for (const cb of [...this.stateCbs]) this.safe(() => cb({ ...next }));
  }

  /** (Re)gained Listening: announce every current name now, and realign heartbeats. */
  private onListening(): void {
    const now = this.now();
    for (const a of this.announcers.values()) {
      a.due = a.names.size > 0;
      a.fresh.clear();
      a.nextAt = nextBoundary(now, a.intervalMs);
    }
    this.immediateAt = now;
    this.flush();
    this.reschedule();
  }

  // ---- sending --------------------------------------------------------------------------------------

  private wake(): void {
    this.wakeTimer = null;
    this.wakeAt = Infinity;
    if (this.closed) return;
    const now = this.now();
    if (this.checkEcho(performance.now())) return;
    const ready = this.listener.ready && this.sender.ready;
    const listening = this.current.phase === 'Listening';
    let send = false;
    for (const a of this.announcers.values()) {
      if (a.nextAt - now <= SLACK_MS) {
        if (listening && a.names.size > 0) {
          a.due = true;
          send = true;
        }
        a.nextAt = nextBoundary(Math.max(now, a.nextAt), a.intervalMs);
      }
    }
    if (ready && this.nextLivenessAt - now <= SLACK_MS) this.probeWanted = true;
    if (this.immediateAt - now <= SLACK_MS) send = true;
    if (ready && (send || this.probeWanted)) this.flush();
    this.reschedule();
  }

  /** Handles an overdue probe (now: performance.now()); true when it dropped a connection. */
  private checkEcho(now: number): boolean {
    const p = this.probes[0];
    if (!p) return false;
    if (p.committedAt === 0 && now - p.sentAt >= this.echoTimeoutMs) {
      this.lose(this.sender, this.sender.gen, {
        reason: 'Unreachable',
        message: `the server did not complete a NOTIFY within ${this.echoTimeoutMs / 1000}s on the sending connection (a broken connection or an overloaded server); reconnecting`,
      });
      return true;
    }
    if (p.committedAt > 0 && now - p.committedAt >= this.echoTimeoutMs) {
      this.lose(this.listener, this.listener.gen, { reason: 'NoEcho', message: NO_ECHO_MESSAGE });
      return true;
    }
    return false;
  }

  /** Send everything pending plus a probe as one statement, unless one is in flight (then: right after). */
  private flush(): void {
    if (this.closed) return;
    const client = this.sender.client;
    if (!this.listener.ready || !this.sender.ready || !client) return;
    if (this.inFlight) {
      this.flushAgain = true;
      return;
    }
    const listening = this.current.phase === 'Listening';
    const channels: string[] = [];
    const payloads: string[] = [];
    const seen = new Set<string>();
    const add = (ch: string, p: string) => {
      const k = `${ch}\0${p}`;
      if (seen.has(k)) return;
      seen.add(k);
      channels.push(ch);
      payloads.push(p);
    };
    for (const a of this.announcers.values()) {
      if (listening) {
        for (const n of a.due ? a.names : a.fresh) add(a.channel, n);
      }
      a.due = false;
      a.fresh.clear();
    }
    const now = this.now();
    const probe: Probe = { token: String(++this.probeSeq), sentAt: performance.now(), committedAt: 0 };
    add(this.probeChannel, probe.token);
    this.probes.push(probe);
    this.immediateAt = Infinity;
    this.probeWanted = false;
    this.flushAgain = false;
    this.nextLivenessAt = nextBoundary(now, this.livenessIntervalMs);
    const seq = ++this.sendSeq;
    this.inFlight = true;
    const t0 = probe.sentAt;
    this.log.trace({ payloads: payloads.length }, 'notify');
    client.query(NOTIFY_SQL, [channels, payloads]).then(() => {
      if (this.closed || seq !== this.sendSeq) return;
      this.inFlight = false;
      probe.committedAt = performance.now();
      this.safe(() => this.hooks.onCommit?.(payloads.length, performance.now() - t0));
      this.afterSend();
    }, (err: unknown) => {
      if (this.closed || seq !== this.sendSeq) return;
      this.inFlight = false;
      this.probes = this.probes.filter((p) => p !== probe);
      if (isServerError(err) && !/^57P/.test(errCode(err))) {
        this.setFailure(classifySendError(err, this.secrets));
        this.log.debug({ reason: this.failure?.reason }, this.failure?.message ?? '');
        this.update();
      }
      // Otherwise the connection broke; 'error'/'end' reconnects it.
      this.afterSend();
    });
  }

  private afterSend(): void {
    if (this.flushAgain || this.immediateAt - this.now() <= SLACK_MS) this.flush();
    this.reschedule();
  }

  private reschedule(): void {
    if (this.closed) return;
    const now = this.now();
    // The wall clock went back (NTP step): realign rather than wait out the jump.
    for (const a of this.announcers.values()) {
      if (a.nextAt - now > a.intervalMs + SLACK_MS) a.nextAt = nextBoundary(now, a.intervalMs);
    }
    if (this.nextLivenessAt - now > this.livenessIntervalMs + SLACK_MS) this.nextLivenessAt = nextBoundary(now, this.livenessIntervalMs);
    let at = Infinity;
    if (this.listener.ready && this.sender.ready) {
      at = Math.min(at, this.nextLivenessAt, this.immediateAt);
      if (this.current.phase === 'Listening') {
        for (const a of this.announcers.values()) if (a.names.size > 0) at = Math.min(at, a.nextAt);
      }
    }
    const p = this.probes[0];
    if (p) at = Math.min(at, now + (p.committedAt || p.sentAt) + this.echoTimeoutMs - performance.now());
    if (this.wakeTimer && at === this.wakeAt) return;
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeTimer = null;
    this.wakeAt = at;
    if (at === Infinity) return;
    this.wakeTimer = setTimeout(() => this.wake(), Math.max(0, at - now));
  }

  private safe(f: () => void): void {
    try {
      f();
    } catch (e) {
      this.log.error({ error: errorText(e, this.secrets) }, 'a PgEndpoint callback threw');
    }
  }
}

class ConfigError extends Error {}

/** Identity of a state for change detection: phase and reason (and, withMessage, the message). */
function stateKey(s: EndpointState, withMessage: boolean): string {
  if (s.phase !== 'Failed') return s.phase;
  return withMessage ? `Failed\0${s.reason}\0${s.message}` : `Failed\0${s.reason}`;
}

function errCode(err: unknown): string {
  const c = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return typeof c === 'string' ? c : '';
}

/** End a client without ever rejecting or hanging: after 2 s the socket is destroyed. */
function endClient(client: pg.Client): Promise<void> {
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
