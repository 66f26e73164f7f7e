// PgEndpoint — everything the operator does with one Postgres URL, shared by every PgCluster that uses it
// (docs/architecture.md, "Postgres"). The only module that talks to Postgres; a facade over connection.ts
// (one connection's life) and scheduler.ts (what to send when, pure).
//
//   const ep = new PgEndpoint({ url, log });                  // never throws; a bad URL is Failed/InvalidURL
//   ep.id                                                     // 12 hex chars, stable per URL; for logs/labels
//   const sub = ep.subscribe('chat', (payload) => ...);       // raw payloads heard on the channel (untrusted)
//   ep.setAnnouncer('prod/chat', { channel: 'chat', intervalMs: 5000, names: ['chat@10.0.0.7'] });
//   ep.setAnnouncer('prod/chat', null);                       // stop announcing for that key
//   ep.state(); const off = ep.onState((s) => ...);
//   sub.close(); await ep.close();
//
// Connections (connection.ts): one listener (LISTEN "<channel>" per subscribed channel, refcounted, never in
// a transaction) and one sender, each reconnecting on its own. Sending (scheduler.ts): everything due at once
// goes out as ONE statement, `SELECT pg_notify(c, p) FROM unnest(...)`; never two statements in flight.
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
// changes. hooks.onCommit counts the node names a statement carried (the probe is not one of them). A NOTIFY
// stuck for echoTimeoutMs on the sender → Failed/Unreachable, sender reconnects.
// TLS follows libpq's sslmode meanings (see connstring.ts), not pg's.
//
// Secrets: the URL never appears in a log line, state message or error; everything from pg is redacted.
import { createHash, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { systemClock, type Clock, type Timer } from '../core/clock.ts';
import { classifySendError, isStatementRefused, listenerBehindMessage, NO_ECHO_MESSAGE, type Failure } from './classify.ts';
import { ConnectionPair, type Conn } from './connection.ts';
import { parsePgUrl, type ParsedPgUrl } from './connstring.ts';
import { errorText, secretsOfUrl, type UrlSecrets } from './redact.ts';
import { ProbeTracker } from './liveness.ts';
import { HeartbeatScheduler, validChannel, validPayload, type Link } from './scheduler.ts';

export type { FailureReason } from './classify.ts';

import type { Announcement, EndpointHooks, EndpointOptions, EndpointState, Subscription } from './types.ts';

export type { Announcement, EndpointHooks, EndpointOptions, EndpointState, Subscription } from './types.ts';

// One statement, one transaction: every due name, and the fill of the server's notification queue read on the
// way (shared memory, no extra round trip) — a listener stuck in a transaction anywhere on the server holds
// the queue, and when it is full every NOTIFY on the server fails at commit.
export const NOTIFY_SQL = 'SELECT count(pg_notify(c, p)) AS n, pg_notification_queue_usage() AS usage FROM unnest($1::text[], $2::text[]) AS t(c, p)';

export { quoteIdent } from './connection.ts';

/** A short, stable id for a URL that is safe to show. scrypt (a few ms, not a fast hash), so that the id does
 * not let someone who knows the rest of the URL test password guesses quickly. */
export function endpointId(url: string): string {
  // Derived without the password, so that an id seen in status or metrics cannot be used to test password
  // guesses offline. URLs that differ only in their password (a rotation) share an id: same server, user, db.
  let withoutPassword = url;
  try {
    const u = new URL(url);
    u.password = '';
    u.searchParams.delete('password');
    withoutPassword = u.toString();
  } catch { /* not a URL: endpoints are only made for parsed URLs */ }
  return createHash('sha256').update('pgcluster-operator/endpoint-id/v2\0').update(withoutPassword).digest('hex').slice(0, 12);
}

export class PgEndpoint {
  readonly id: string;

  private readonly log: Logger;
  private readonly hooks: EndpointHooks;
  private readonly clock: Clock;
  private readonly echoTimeoutMs: number;
  private readonly secrets: UrlSecrets;
  private readonly parsed: ParsedPgUrl | null;
  private readonly probeChannel = `pgco_probe_${randomBytes(8).toString('hex')}`;
  private readonly scheduler: HeartbeatScheduler;
  /** Undefined for a URL that does not parse. */
  private readonly conns: ConnectionPair | undefined;
  private readonly subs = new Map<string, Set<{ cb: (payload: string) => void }>>();
  private readonly stateCbs = new Set<(s: EndpointState) => void>();

  private current: EndpointState;
  /** The latest problem; cleared by the echo of a probe sent after it, with both connections up. */
  private failure: Failure | null = null;
  /** probes.seq when `failure` was recorded: only a later probe's echo clears it. */
  private failureAtProbe = 0;
  /** A probe was heard since the last (re)connect of either connection. */
  private echoed = false;
  /** Monotonic times, so a wall-clock step cannot fake or hide a NoEcho. */
  private readonly probes = new ProbeTracker();
  /** Bumped per statement and on a sender loss: a completion of an older one is ignored. */
  private sendSeq = 0;
  private inFlight = false;
  private flushAgain = false;
  /** When the listener last received a notification (monotonic): a probe overdue behind others is a backlog. */
  private lastHeardAt = -Infinity;
  private wakeTimer: Timer | null = null;
  private wakeAt = Infinity;
  private closed = false;
  private closing: Promise<void> | null = null;

  constructor(opts: EndpointOptions) {
    this.clock = opts.clock ?? systemClock;
    this.id = endpointId(opts.url);
    this.log = opts.log.child({ component: 'postgres', endpoint: this.id });
    this.hooks = opts.hooks ?? {};
    this.echoTimeoutMs = opts.echoTimeoutMs ?? 3000;
    this.scheduler = new HeartbeatScheduler({ coalesceMs: opts.coalesceMs ?? 10, livenessIntervalMs: opts.livenessIntervalMs ?? 5000 });
    this.secrets = secretsOfUrl(opts.url);
    const parsed = opts.parsed ? { ok: true as const, value: opts.parsed } : parsePgUrl(opts.url);
    const since = this.clock.now();
    if (!parsed.ok) {
      this.parsed = null;
      this.current = { phase: 'Failed', reason: 'InvalidURL', message: parsed.message, since };
      this.log.warn({ reason: 'InvalidURL' }, parsed.message);
      return;
    }
    this.parsed = parsed.value;
    this.current = { phase: 'Connecting', since };
    this.conns = new ConnectionPair({
      parsed: parsed.value, secrets: this.secrets, ca: opts.ca, clock: this.clock, log: this.log,
      connectTimeoutMs: opts.connectTimeoutMs ?? 10_000,
      backoff: opts.backoff ?? { baseMs: 250, maxMs: 30_000 },
      channels: () => [this.probeChannel, ...this.subs.keys()],
      identity: opts.identity,
      events: { ready: (c, again) => this.onReady(c, again), lost: (c, f) => this.onLost(c, f), notification: (ch, p) => this.onNotification(ch, p) },
    });
    this.conns.start();
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
    if (first) this.conns?.listenCommand(channel, true);
    const mine = set;
    let open = true;
    return {
      close: () => {
        if (!open) return;
        open = false;
        mine.delete(entry);
        if (mine.size === 0 && this.subs.get(channel) === mine) {
          this.subs.delete(channel);
          this.conns?.listenCommand(channel, false);
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
    if (a !== null) {
      if (!validChannel(a.channel) || a.channel === this.probeChannel) {
        throw new TypeError('PgEndpoint.setAnnouncer: the channel must be 1 to 63 bytes without NUL');
      }
      if (a.side && (!validChannel(a.side.channel) || a.side.channel === this.probeChannel)) {
        throw new TypeError('PgEndpoint.setAnnouncer: the side channel must be 1 to 63 bytes without NUL');
      }
      if (!Number.isFinite(a.intervalMs) || a.intervalMs < 10) {
        throw new TypeError('PgEndpoint.setAnnouncer: intervalMs must be a finite number >= 10');
      }
    }
    const names = new Set<string>();
    let dropped = 0;
    for (const n of a?.names ?? []) {
      if (validPayload(n)) names.add(n); else dropped++;
    }
    if (dropped > 0) this.log.warn({ announcer: key, dropped }, 'dropped node names that cannot be sent with pg_notify (empty, NUL, or 8000 bytes and more)');
    this.scheduler.set(key, a && { channel: a.channel, intervalMs: a.intervalMs, names, side: a.side }, this.clock.now(), this.current.phase === 'Listening');
    this.reschedule();
  }

  /**
   * NOTIFYs `payload` on `channel` once, in the next statement (within the coalescing delay), while Listening;
   * dropped otherwise. For messages, not heartbeats: e.g. a "leave" on a side channel.
   */
  notifyOnce(channel: string, payload: string): void {
    if (this.closed || this.current.phase !== 'Listening') return;
    if (!validChannel(channel) || channel === this.probeChannel || !validPayload(payload)) {
      throw new TypeError('PgEndpoint.notifyOnce: the channel must be 1 to 63 bytes and the payload 1 to 7999 bytes, without NUL');
    }
    this.scheduler.message(channel, payload, this.clock.now());
    this.reschedule();
  }

  /** Stop heartbeats and end both connections. Idempotent; no callbacks afterwards. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    this.wakeTimer?.cancel();
    this.wakeTimer = null;
    this.stateCbs.clear();
    this.scheduler.clear();
    this.subs.clear();
    this.closing = (this.conns?.close() ?? Promise.resolve()).then(() => { this.log.debug('closed'); });
    return this.closing;
  }

  // ---- connections ---------------------------------------------------------------------------------

  private get link(): Link {
    return { ready: this.conns?.ready ?? false, listening: this.current.phase === 'Listening' };
  }

  private onReady(c: Conn, again: boolean): void {
    if (again) this.safe(() => this.hooks.onReconnect?.(c.which));
    // A fresh connection invalidates earlier echoes: prove the loop again.
    this.echoed = false;
    this.probes.reset();
    this.scheduler.wantProbe();
    this.flush();
    this.update();
    this.reschedule();
  }

  private onLost(c: Conn, f: Failure): void {
    if (c.which === 'sender') {
      this.sendSeq++; // the in-flight statement's outcome no longer matters
      this.inFlight = false;
      this.flushAgain = false;
    }
    this.echoed = false;
    this.probes.reset();
    this.setFailure(f);
    this.update();
    this.reschedule();
  }

  private onNotification(channel: string, payload: string): void {
    if (this.closed) return;
    this.lastHeardAt = this.clock.monotonic();
    if (channel === this.probeChannel) {
      this.onProbe(payload);
      return;
    }
    const set = this.subs.get(channel);
    if (!set) return;
    this.safe(() => this.hooks.onPayload?.(channel));
    for (const s of [...set]) this.safe(() => s.cb(payload));
  }

  private onProbe(token: string): void {
    const p = this.probes.heard(token);
    if (!p) return; // from before a reconnect
    this.safe(() => this.hooks.onEcho?.(this.clock.monotonic() - p.sentAt));
    if (this.conns?.ready) {
      this.echoed = true;
      if (Number(token) > this.failureAtProbe) this.failure = null;
      this.update();
    }
    this.reschedule();
  }

  // ---- state ----------------------------------------------------------------------------------------

  private setFailure(f: Failure): void {
    this.failure = f;
    this.failureAtProbe = this.probes.seq;
  }

  private update(): void {
    if (this.closed || !this.parsed) return;
    const prev = this.current;
    let next: EndpointState;
    if (this.conns?.ready && this.echoed && this.failure === null) {
      next = { phase: 'Listening', since: 0 };
    } else if (this.failure) {
      next = { phase: 'Failed', reason: this.failure.reason, message: this.failure.message, since: 0 };
    } else {
      next = { phase: 'Connecting', since: 0 };
    }
    if (stateKey(prev, true) === stateKey(next, true)) return;
    next.since = stateKey(prev, false) === stateKey(next, false) ? prev.since : this.clock.now();
    this.current = next;
    if (next.phase === 'Listening') {
      this.conns?.resetBackoff();
      this.log.info('listening: LISTEN is up and our own NOTIFY came back');
      // (Re)gained Listening: announce every current name now, and realign heartbeats.
      this.scheduler.listening(this.clock.now());
      this.flush();
      this.reschedule();
    } else if (next.phase === 'Failed') {
      this.log.warn({ reason: next.reason }, next.message);
    }
    for (const cb of [...this.stateCbs]) this.safe(() => cb({ ...next }));
  }

  // ---- sending --------------------------------------------------------------------------------------

  private wake(): void {
    this.wakeTimer = null;
    this.wakeAt = Infinity;
    if (this.closed) return;
    if (this.checkEcho(this.clock.monotonic())) return;
    if (this.scheduler.due(this.clock.now(), this.link)) this.flush();
    this.reschedule();
  }

  /** Handles an overdue probe (now: monotonic); true when it dropped a connection. */
  private checkEcho(now: number): boolean {
    const which = this.probes.overdue(now, this.echoTimeoutMs);
    // The probe's commit (its deadline less the timeout): notifications heard since then mean a backlog, not a deaf listener.
    const behind = which === 'listener' && this.lastHeardAt > (this.probes.deadline(this.echoTimeoutMs) ?? Infinity) - this.echoTimeoutMs;
    const conns = this.conns;
    if (!conns) return false;
    if (which === 'sender') {
      conns.lose(conns.sender, conns.sender.gen, {
        reason: 'Unreachable',
        message: `the server did not complete a NOTIFY within ${this.echoTimeoutMs / 1000}s on the sending connection (a broken connection or an overloaded server); reconnecting`,
      });
    } else if (which === 'listener') {
      conns.lose(conns.listener, conns.listener.gen, { reason: 'NoEcho', message: behind ? listenerBehindMessage(this.echoTimeoutMs / 1000) : NO_ECHO_MESSAGE });
    }
    return which !== undefined;
  }

  /** Send everything pending plus a probe as one statement, unless one is in flight (then: right after). */
  private flush(): void {
    if (this.closed) return;
    const client = this.conns?.sender.client;
    if (!this.conns?.ready || !client) return;
    if (this.inFlight) {
      this.flushAgain = true;
      return;
    }
    const probe = this.probes.send(this.clock.monotonic());
    const batch = this.scheduler.take(this.clock.now(), this.current.phase === 'Listening', { channel: this.probeChannel, token: probe.token });
    this.flushAgain = false;
    const seq = ++this.sendSeq;
    this.inFlight = true;
    this.log.trace({ names: batch.names }, 'notify');
    client.query<{ usage: number | string | null }>(NOTIFY_SQL, [batch.channels, batch.payloads]).then((res) => {
      if (this.closed || seq !== this.sendSeq) return;
      this.inFlight = false;
      probe.committedAt = this.clock.monotonic();
      this.safe(() => this.hooks.onCommit?.(batch.names, probe.committedAt - probe.sentAt));
      const usage = Number(res.rows[0]?.usage);
      if (Number.isFinite(usage)) this.safe(() => this.hooks.onQueueUsage?.(usage));
      this.afterSend();
    }, (err: unknown) => {
      if (this.closed || seq !== this.sendSeq) return;
      this.inFlight = false;
      this.probes.drop(probe);
      if (isStatementRefused(err)) {
        this.setFailure(classifySendError(err, this.secrets));
        this.log.debug({ reason: this.failure?.reason }, this.failure?.message ?? '');
        this.update();
      }
      // Otherwise the connection broke; 'error'/'end' reconnects it.
      this.afterSend();
    });
  }

  private afterSend(): void {
    if (this.flushAgain || this.scheduler.dueNow(this.clock.now())) this.flush();
    this.reschedule();
  }

  private reschedule(): void {
    if (this.closed) return;
    const now = this.clock.now();
    let at = this.scheduler.wakeAt(now, this.link);
    const deadline = this.probes.deadline(this.echoTimeoutMs);
    if (deadline !== undefined) at = Math.min(at, now + deadline - this.clock.monotonic());
    if (this.wakeTimer && at === this.wakeAt) return;
    this.wakeTimer?.cancel();
    this.wakeTimer = null;
    this.wakeAt = at;
    if (at === Infinity) return;
    this.wakeTimer = this.clock.setTimer(() => this.wake(), Math.max(0, at - now));
  }

  private safe(f: () => void): void {
    try {
      f();
    } catch (e) {
      this.log.error({ error: errorText(e, this.secrets) }, 'a PgEndpoint callback threw');
    }
  }
}

/** Identity of a state for change detection: phase and reason (and, withMessage, the message). */
function stateKey(s: EndpointState, withMessage: boolean): string {
  if (s.phase !== 'Failed') return s.phase;
  return withMessage ? `Failed\0${s.reason}\0${s.message}` : `Failed\0${s.reason}`;
}
