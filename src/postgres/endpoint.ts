// PgEndpoint — everything the operator does with one Postgres URL, shared by every PgCluster that uses it
// (docs/architecture.md, "Postgres"). The only module that talks to Postgres: a thin shell that feeds what its
// connections (connection.ts) and its timer report into the phase machine (phase.ts, pure) and carries out the
// effects; scheduler.ts (pure) decides what to send when.
//
//   const ep = new PgEndpoint({ url, log });                  // never throws; a bad URL is Failed/InvalidURL
//   ep.id                                                     // 12 hex chars, stable per URL; for logs/labels
//   const sub = ep.subscribe('chat', (payload) => ...);       // raw payloads heard on the channel (untrusted)
//   ep.setAnnouncer('prod/chat', { channel: 'chat', intervalMs: 5000, names: ['chat@10.0.0.7'] });
//   ep.setAnnouncer('prod/chat', null);                       // stop announcing for that key
//   ep.state(); const off = ep.onState((s) => ...);
//   sub.close(); await ep.close();
//
// The listener LISTENs on every subscribed channel (refcounted, never in a transaction) and on a private probe
// channel (pgco_probe_<random>; never a PgCluster channel, whose libcluster_postgres nodes would try to dial
// whatever is sent there). Everything due at once goes out as ONE statement with one probe, `SELECT pg_notify(c,
// p) FROM unnest(...)`; never two statements in flight; one at least every livenessIntervalMs.
//
// State (the rules are phase.ts's): 'Connecting' until the first 'Listening' (both connections up, every LISTEN
// done, a probe heard back); 'Failed' (the latest reason, an actionable message) from the first problem until
// Listening again: a probe unheard echoTimeoutMs after its commit is NoEcho (the listener reconnects), a NOTIFY
// stuck that long is Unreachable (the sender reconnects). onState fires on every change of phase, reason or
// message; `since` moves only when phase or reason changes. Announcements only while Listening; on becoming
// Listening (again) every current name is announced at once. hooks.onCommit counts the node names a statement
// carried (not the probe). TLS follows libpq's sslmode meanings (see connstring.ts), not pg's.
// Secrets: the URL never appears in a log line, state message or error; everything from pg is redacted.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { systemClock, type Clock, type Timer } from '../core/clock.ts';
import { classifySendError, isStatementRefused } from './classify.ts';
import { ConnectionPair } from './connection.ts';
import { prepareUrl, tlsFingerprint } from './tls.ts';
import { echoDeadline, initialState, linkOf, step, type Effect, type PhaseEvent, type PhaseState } from './phase.ts';
import { endpointId, errorText, secretsOfUrl, type UrlSecrets } from '../core/redact.ts';
import { HeartbeatScheduler, validChannel, validPayload } from './scheduler.ts';

import type { Announcement, EndpointHooks, EndpointOptions, EndpointState, Subscription } from './types.ts';

export type { FailureReason } from './classify.ts';
export type { Announcement, EndpointHooks, EndpointOptions, EndpointState, Subscription } from './types.ts';

// One statement, one transaction: every due name, and the fill of the server's notification queue read on the
// way (shared memory, no extra round trip) — a listener stuck in a transaction anywhere on the server holds
// the queue, and when it is full every NOTIFY on the server fails at commit.
export const NOTIFY_SQL = 'SELECT count(pg_notify(c, p)) AS n, pg_notification_queue_usage() AS usage FROM unnest($1::text[], $2::text[]) AS t(c, p)';

export { quoteIdent } from './connection.ts';
export { endpointId } from '../core/redact.ts';

export class PgEndpoint {
  readonly id: string;

  private readonly log: Logger;
  private readonly hooks: EndpointHooks;
  private readonly clock: Clock;
  private readonly secrets: UrlSecrets;
  private readonly probeChannel = `pgco_probe_${randomBytes(8).toString('hex')}`;
  private readonly scheduler: HeartbeatScheduler;
  /** Undefined for a URL that does not parse. */
  private readonly conns: ConnectionPair | undefined;
  private readonly subs = new Map<string, Set<{ cb: (payload: string) => void }>>();
  private readonly stateCbs = new Set<(s: EndpointState) => void>();
  /** Everything the phase machine decides from (phase.ts); replaced by each step. */
  private st: PhaseState;
  /** When the listener last received a notification (monotonic). Kept here rather than fed to step(): every
   * notification of a flood passes by. */
  private lastHeardAt = -Infinity;
  private wake: { timer: Timer; at: number } | null = null;
  private closing: Promise<void> | null = null;

  constructor(opts: EndpointOptions) {
    this.clock = opts.clock ?? systemClock;
    this.id = endpointId(opts.url, tlsFingerprint(opts.tls));
    this.log = opts.log.child({ component: 'postgres', endpoint: this.id });
    this.hooks = opts.hooks ?? {};
    this.scheduler = new HeartbeatScheduler({ coalesceMs: opts.coalesceMs ?? 10, livenessIntervalMs: opts.livenessIntervalMs ?? 5000 });
    this.secrets = secretsOfUrl(opts.url);
    const parsed = opts.parsed ? { ok: true as const, value: opts.parsed } : prepareUrl(opts.url, opts.tls);
    const init = { now: this.clock.now(), echoTimeoutMs: opts.echoTimeoutMs ?? 3000 };
    if (!parsed.ok) {
      this.st = initialState({ ...init, failure: parsed.failure });
      this.log.warn({ reason: parsed.failure.reason }, parsed.failure.message);
      return;
    }
    this.st = initialState(init);
    this.conns = new ConnectionPair({
      parsed: parsed.value, secrets: this.secrets, tls: opts.tls, clock: this.clock, log: this.log,
      connectTimeoutMs: opts.connectTimeoutMs ?? 10_000,
      backoff: opts.backoff ?? { baseMs: 250, maxMs: 30_000 },
      channels: () => [this.probeChannel, ...this.subs.keys()],
      identity: opts.identity,
      events: {
        up: (which, again) => this.handle({ type: 'up', which, again, ...this.time() }),
        down: (which, failure) => this.handle({ type: 'down', which, failure, ...this.time() }),
        notification: (ch, p) => this.onNotification(ch, p),
      },
    });
    this.conns.start();
  }

  state(): EndpointState {
    return { ...this.st.view };
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
    if (first) this.conns?.listen(channel, true);
    const mine = set;
    let open = true;
    return {
      close: () => {
        if (!open) return;
        open = false;
        mine.delete(entry);
        if (mine.size === 0 && this.subs.get(channel) === mine) {
          this.subs.delete(channel);
          this.conns?.listen(channel, false);
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
    if (this.st.closed) return;
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
    this.scheduler.set(key, a && { channel: a.channel, intervalMs: a.intervalMs, names, side: a.side }, this.clock.now(), this.st.view.phase === 'Listening');
    this.reschedule();
  }

  /**
   * NOTIFYs `payload` on `channel` once, in the next statement (within the coalescing delay), while Listening;
   * dropped otherwise. For messages, not heartbeats: e.g. a "leave" on a side channel.
   */
  notifyOnce(channel: string, payload: string): void {
    if (this.st.closed || this.st.view.phase !== 'Listening') return;
    if (!validChannel(channel) || channel === this.probeChannel || !validPayload(payload)) {
      throw new TypeError('PgEndpoint.notifyOnce: the channel must be 1 to 63 bytes and the payload 1 to 7999 bytes, without NUL');
    }
    this.scheduler.message(channel, payload, this.clock.now());
    this.reschedule();
  }

  /** Stop heartbeats and end both connections. Idempotent; no callbacks afterwards. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.st = step(this.st, { type: 'close' }).state;
    this.wake?.timer.cancel();
    this.wake = null;
    this.stateCbs.clear();
    this.scheduler.clear();
    this.subs.clear();
    this.closing = (this.conns?.close() ?? Promise.resolve()).then(() => { this.log.debug('closed'); });
    return this.closing;
  }

  // ---- the shell: events in, effects out ----------------------------------------------------------------

  private time(): { now: number; mono: number } {
    return { now: this.clock.now(), mono: this.clock.monotonic() };
  }

  /** One step of the phase machine, then its effects in order (the rest skipped if a callback closed the
   * endpoint). The caller reschedules the wake-up once it is done. */
  private feed(e: PhaseEvent): void {
    const r = step(this.st, e);
    this.st = r.state;
    for (const fx of r.effects) {
      if (this.st.closed) return;
      this.apply(fx);
    }
  }

  private handle(e: PhaseEvent): void {
    this.feed(e);
    this.reschedule();
  }

  private apply(fx: Effect): void {
    switch (fx.kind) {
      case 'reconnected': return this.safe(() => this.hooks.onReconnect?.(fx.which));
      case 'wantProbe': return this.scheduler.wantProbe();
      case 'send': return this.send(fx.token, fx.sentAt, fx.listening);
      case 'echoed': return this.safe(() => this.hooks.onEcho?.(fx.rttMs));
      case 'reconnect': return this.conns?.drop(fx.which, fx.failure);
      case 'resetBackoff': return this.conns?.resetBackoff();
      case 'announceAll':
        this.log.info('listening: LISTEN is up and our own NOTIFY came back');
        return this.scheduler.listening(this.clock.now());
      case 'emit':
        if (fx.state.phase === 'Failed') this.log.warn({ reason: fx.state.reason }, fx.state.message);
        for (const cb of [...this.stateCbs]) this.safe(() => cb({ ...fx.state }));
    }
  }

  private onNotification(channel: string, payload: string): void {
    this.lastHeardAt = this.clock.monotonic();
    if (channel === this.probeChannel) return this.handle({ type: 'echo', token: payload, ...this.time() });
    const set = this.subs.get(channel);
    if (!set) return;
    this.safe(() => this.hooks.onPayload?.(channel));
    for (const s of [...set]) this.safe(() => s.cb(payload));
  }

  /** Everything the scheduler has (announcements only if listening) and the probe, as one statement. */
  private send(token: string, sentAt: number, listening: boolean): void {
    const batch = this.scheduler.take(this.clock.now(), listening, { channel: this.probeChannel, token });
    this.log.trace({ names: batch.names }, 'notify');
    this.conns?.send<{ usage: number | string | null }>(NOTIFY_SQL, [batch.channels, batch.payloads], (res) => {
      const mono = this.clock.monotonic();
      this.safe(() => this.hooks.onCommit?.(batch.names, mono - sentAt));
      const usage = Number(res.rows[0]?.usage);
      if (Number.isFinite(usage)) this.safe(() => this.hooks.onQueueUsage?.(usage));
      this.afterSend({ type: 'committed', token, now: this.clock.now(), mono });
    }, (err: unknown) => {
      const refused = isStatementRefused(err) ? classifySendError(err, this.secrets) : null;
      if (refused) this.log.debug({ reason: refused.reason }, refused.message);
      this.afterSend({ type: 'sendFailed', token, refused, ...this.time() });
    });
  }

  /** A statement's outcome; then what became due while it was in flight goes at once. */
  private afterSend(e: PhaseEvent): void {
    this.feed(e);
    if (this.scheduler.dueNow(this.clock.now())) this.feed({ type: 'due', ...this.time() });
    this.reschedule();
  }

  private wakeUp(): void {
    this.wake = null;
    const before = this.st;
    this.feed({ type: 'tick', lastHeardAt: this.lastHeardAt, ...this.time() });
    // No probe was overdue (the tick changed nothing): send if the scheduler has something due.
    if (this.st === before && this.scheduler.due(this.clock.now(), linkOf(this.st))) this.feed({ type: 'due', ...this.time() });
    this.reschedule();
  }

  private reschedule(): void {
    if (this.st.closed) return;
    const now = this.clock.now();
    let at = this.scheduler.wakeAt(now, linkOf(this.st));
    const deadline = echoDeadline(this.st);
    if (deadline !== undefined) at = Math.min(at, now + deadline - this.clock.monotonic());
    if (this.wake?.at === at) return;
    this.wake?.timer.cancel();
    this.wake = at === Infinity ? null : { at, timer: this.clock.setTimer(() => this.wakeUp(), Math.max(0, at - now)) };
  }

  private safe(f: () => void): void {
    try {
      f();
    } catch (e) {
      this.log.error({ error: errorText(e, this.secrets) }, 'a PgEndpoint callback threw');
    }
  }
}
