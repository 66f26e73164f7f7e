// What goes into the next pg_notify statement, and when (docs/architecture.md, "Sending"). Pure: time comes
// in as `now` (wall-clock ms: heartbeats align to wall-clock multiples of their interval, so that every
// endpoint and PgCluster with one interval fires together); no timers, no I/O. The endpoint owns the timer
// and the connection, and asks this when to wake and what to send.
import { nextBoundary } from './timing.ts';

/** Timers may fire a hair early relative to the clock; anything this close is due. */
export const SLACK_MS = 2;
const MAX_CHANNEL_BYTES = 63; // NAMEDATALEN - 1; pg_notify rejects longer channel names
const MAX_PAYLOAD_BYTES = 7999; // pg_notify: "payload string too long" at 8000
const MAX_MESSAGES = 10_000;

export function validChannel(ch: unknown): ch is string {
  return typeof ch === 'string' && ch.length > 0 && !ch.includes('\0') && Buffer.byteLength(ch) <= MAX_CHANNEL_BYTES;
}

export function validPayload(p: unknown): p is string {
  return typeof p === 'string' && p.length > 0 && !p.includes('\0') && Buffer.byteLength(p) <= MAX_PAYLOAD_BYTES;
}

export interface Announcer {
  channel: string;
  intervalMs: number;
  /** Valid payloads (see validPayload). */
  names: ReadonlySet<string>;
  /** Also says the names sent, as messages of its own on another channel (signed "alive", README
   * "Authenticated peers"); sign() answers valid payloads, made at `now` (wall-clock ms). */
  side?: SideAnnouncer | undefined;
}

export interface SideAnnouncer {
  channel: string;
  sign(names: readonly string[], now: number): string[];
}

interface AnnouncerState extends Announcer {
  nextAt: number;
  /** Names new to this announcer, waiting (at most coalesceMs) for the next statement. */
  fresh: Set<string>;
  /** A heartbeat boundary passed: this announcer's names go in the next statement. */
  due: boolean;
}

/** One statement: parallel arrays for unnest($1::text[], $2::text[]); `names` excludes the probe. */
export interface Batch {
  channels: string[];
  payloads: string[];
  names: number;
}

/** The connections' state, as far as scheduling cares. */
export interface Link {
  /** Both connections are up: a statement can be sent. */
  ready: boolean;
  /** Listening (own probes are heard): announcements may be sent. */
  listening: boolean;
}

export class HeartbeatScheduler {
  readonly #coalesceMs: number;
  readonly #livenessIntervalMs: number;
  #announcers = new Map<string, AnnouncerState>();
  /** Something (a fresh name, the first announcement after Listening) is due at this time. */
  #immediateAt = Infinity;
  #nextLivenessAt = 0;
  #probeWanted = false;
  /** One-off notifications (e.g. a side-channel "leave"), sent once, in the next statement. */
  #messages: { channel: string; payload: string }[] = [];

  constructor(o: { coalesceMs: number; livenessIntervalMs: number }) {
    this.#coalesceMs = o.coalesceMs;
    this.#livenessIntervalMs = o.livenessIntervalMs;
  }

  /**
   * Sets (or with null removes) the announcer `key`. A name not in the key's previous set (or every name, if
   * the channel changed) is due within coalesceMs, when listening; otherwise it waits for Listening.
   */
  set(key: string, a: Announcer | null, now: number, listening: boolean): void {
    if (a === null) {
      this.#announcers.delete(key);
      return;
    }
    const prev = this.#announcers.get(key);
    const sameChannel = prev !== undefined && prev.channel === a.channel;
    const fresh = new Set<string>();
    if (listening) {
      if (sameChannel) for (const n of prev.fresh) if (a.names.has(n)) fresh.add(n);
      for (const n of a.names) if (!sameChannel || !prev.names.has(n)) fresh.add(n);
    }
    this.#announcers.set(key, {
      channel: a.channel,
      intervalMs: a.intervalMs,
      names: new Set(a.names),
      side: a.side,
      nextAt: prev && prev.intervalMs === a.intervalMs ? prev.nextAt : nextBoundary(now, a.intervalMs),
      fresh,
      due: sameChannel && prev.due,
    });
    if (fresh.size > 0) this.#immediateAt = Math.min(this.#immediateAt, now + this.#coalesceMs);
  }

  clear(): void {
    this.#announcers.clear();
    this.#messages = [];
  }

  /**
   * A one-off notification, due within coalesceMs and sent once (only while listening: one queued while
   * not is dropped, as stale news). Bounded: beyond MAX_MESSAGES pending, the oldest go.
   */
  message(channel: string, payload: string, now: number): void {
    this.#messages.push({ channel, payload });
    if (this.#messages.length > MAX_MESSAGES) this.#messages.splice(0, this.#messages.length - MAX_MESSAGES);
    this.#immediateAt = Math.min(this.#immediateAt, now + this.#coalesceMs);
  }

  /** (Re)gained Listening: every current name is due now; heartbeats realign. */
  listening(now: number): void {
    for (const a of this.#announcers.values()) {
      a.due = a.names.size > 0;
      a.fresh.clear();
      a.nextAt = nextBoundary(now, a.intervalMs);
    }
    this.#immediateAt = now;
  }

  /** A connection came up: the next statement (with a probe) should go out at once, to prove the loop. */
  wantProbe(): void {
    this.#probeWanted = true;
  }

  /** At a wake-up: marks the announcers whose boundary passed; says whether a statement should go out now. */
  due(now: number, link: Link): boolean {
    let send = false;
    for (const a of this.#announcers.values()) {
      if (a.nextAt - now > SLACK_MS) continue;
      if (link.listening && a.names.size > 0) {
        a.due = true;
        send = true;
      }
      a.nextAt = nextBoundary(Math.max(now, a.nextAt), a.intervalMs);
    }
    if (link.ready && this.#nextLivenessAt - now <= SLACK_MS) this.#probeWanted = true;
    if (this.#immediateAt - now <= SLACK_MS) send = true;
    return link.ready && (send || this.#probeWanted);
  }

  /**
   * Takes the next statement: the names of due announcers and fresh names (only while listening; otherwise
   * they are dropped: becoming Listening announces everything), one payload per distinct (channel, name),
   * and the probe last. An announcer's side messages for the names it sends come first, so that a receiver
   * hears a name signed before it hears it bare. The liveness deadline restarts.
   */
  take(now: number, listening: boolean, probe: { channel: string; token: string }): Batch {
    const channels: string[] = [];
    const payloads: string[] = [];
    const bareChannels: string[] = [];
    const bare: string[] = [];
    const seen = new Set<string>();
    for (const a of this.#announcers.values()) {
      if (listening) {
        const sending = a.due ? a.names : a.fresh;
        if (a.side && sending.size > 0) {
          for (const p of a.side.sign([...sending], now)) {
            channels.push(a.side.channel);
            payloads.push(p);
          }
        }
        for (const n of sending) {
          const k = `${a.channel}\0${n}`;
          if (seen.has(k)) continue;
          seen.add(k);
          bareChannels.push(a.channel);
          bare.push(n);
        }
      }
      a.due = false;
      a.fresh.clear();
    }
    const names = bare.length;
    channels.push(...bareChannels);
    payloads.push(...bare);
    if (listening) {
      for (const m of this.#messages) {
        channels.push(m.channel);
        payloads.push(m.payload);
      }
    }
    this.#messages = [];
    channels.push(probe.channel);
    payloads.push(probe.token);
    this.#immediateAt = Infinity;
    this.#probeWanted = false;
    this.#nextLivenessAt = nextBoundary(now, this.#livenessIntervalMs);
    return { channels, payloads, names };
  }

  /** Something is due already (checked when a statement completes: the next one goes right away). */
  dueNow(now: number): boolean {
    return this.#immediateAt - now <= SLACK_MS;
  }

  /** When to wake next (Infinity: never), realigning first if the wall clock went back (an NTP step). */
  wakeAt(now: number, link: Link): number {
    for (const a of this.#announcers.values()) {
      if (a.nextAt - now > a.intervalMs + SLACK_MS) a.nextAt = nextBoundary(now, a.intervalMs);
    }
    if (this.#nextLivenessAt - now > this.#livenessIntervalMs + SLACK_MS) this.#nextLivenessAt = nextBoundary(now, this.#livenessIntervalMs);
    if (!link.ready) return Infinity;
    let at = Math.min(this.#nextLivenessAt, this.#immediateAt);
    if (link.listening) for (const a of this.#announcers.values()) if (a.names.size > 0) at = Math.min(at, a.nextAt);
    return at;
  }
}
