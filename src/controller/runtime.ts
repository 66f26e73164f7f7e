// The in-memory side of one PgCluster: its peer table and its attachment to a Postgres endpoint.
import { PeerTable, type Peer } from '../core/peerTable.ts';
import { parseNodeName } from '../core/payload.ts';
import { parseSideMessage, sideChannel } from '../core/sideChannel.ts';
import { ReplayCache, verifySigned, type SideKeys } from '../core/sideAuth.ts';
import type { ParsedPgUrl } from '../postgres/connstring.ts';
import type { PgEndpoint } from '../postgres/endpoint.ts';
import type { EndpointPool } from './endpointPool.ts';
import type { FanOut } from './fanout.ts';

export interface Attachment {
  readonly url: string;
  readonly endpoint: PgEndpoint;
  readonly channel: string;
  /** The side channel derived from it (core/sideChannel.ts). */
  readonly side: string;
  readonly subscription: { close(): void };
}

/** 'refused': a valid name, not published because unsigned names are not accepted (spec.auth). */
export type PayloadOutcome = 'invalid' | 'refused' | 'changed' | 'unchanged';

/** What a side-channel message did: 'left' (remote peers taken out: publish at once), 'changed' (new remote
 * names: publish like any remote change), or nothing; `problem` when it was dropped. */
export type SideOutcome = { outcome: 'left' | 'changed' | 'unchanged' } | { outcome: 'dropped'; problem: string };

/** spec.auth as the runtime uses it: `keys` undefined while the Secret is not usable. */
export interface AuthPolicy {
  keys: SideKeys | undefined;
  acceptUnsigned: boolean;
}

const UNCHANGED = { outcome: 'unchanged' } as const;

/** Remote-only changes (names heard on the channel) are published at most this often per PgCluster: a flood
 * of new names costs a few writes a second, not one per name. Members' changes are published at once. */
export const REMOTE_PUBLISH_INTERVAL_MS = 1000;

/** New remote names (or names refused by maxPeers) per second above which the channel is flooded. Nodes
 * joining, even a whole cluster of them at once, stay far below. */
export const FLOOD_NAMES_PER_SECOND = 100;

/** Counts events per second: the last complete second (one that ended less than a second ago) or the current
 * one, whichever is higher. Monotonic ms. */
export class RateMeter {
  #start = 0;
  #count = 0;
  #previous = 0;

  hit(now: number): void {
    this.#roll(now);
    this.#count++;
  }

  perSecond(now: number): number {
    this.#roll(now);
    return Math.max(this.#previous, this.#count);
  }

  #roll(now: number): void {
    const elapsed = now - this.#start;
    if (elapsed < 1000) return;
    this.#previous = elapsed < 2000 ? (this.#count * 1000) / elapsed : 0;
    this.#start = now;
    this.#count = 0;
  }
}

export class ClusterRuntime {
  readonly key: string;
  readonly table: PeerTable;
  #attachment: Attachment | undefined;
  #seeded = false;
  #everListening = false;
  #pendingChangeSince: number | undefined;
  /**
   * Output names held by objects the cache cannot see (our create got 409), and until when (monotonic ms) we
   * take that for granted instead of trying the create again.
   */
  #taken = new Map<'configMap' | 'service', { name: string; until: number }>();
  /** A member joined or left since the last fresh peers(). */
  #membersChanged = false;
  /** When peers() last answered the table as it is (monotonic ms). */
  #lastPublishAt = -Infinity;
  /** What that answer was: answered again until REMOTE_PUBLISH_INTERVAL_MS has passed. */
  #published: { peers: Peer[]; dropped: number } | undefined;
  /** peers() answered the earlier list: the table may hold remote changes not published yet. */
  #heldBack = false;
  readonly #remoteNames = new RateMeter();
  #flooding = false;
  /** spec.auth; undefined: off (every message accepted unsigned, version 2 messages not verified). */
  #auth: AuthPolicy | undefined;
  readonly #replay = new ReplayCache();
  /** The pods' annotation writes, beside the reconcile (created by the first reconcile that plans one). */
  fanOut: FanOut | undefined;

  constructor(key: string, peerTimeoutMs: number, maxPeers: number) {
    this.key = key;
    this.table = new PeerTable(peerTimeoutMs, maxPeers);
  }

  get attachment(): Attachment | undefined {
    return this.#attachment;
  }

  /** The endpoint has reached Listening at least once since attaching. */
  get everListening(): boolean {
    return this.#everListening;
  }

  /**
   * Called with the endpoint's phase at each reconcile: nothing expires while the listener is down, nor while
   * `hold` (remote peers cannot be heard: spec.auth refuses unsigned names and has no key to verify with).
   */
  listenerIs(listening: boolean, now: number, hold = false): void {
    if (listening) this.#everListening = true;
    if (listening && !hold) {
      this.table.resume(now);
    } else {
      this.table.pause(now); // silence proves nothing while the listener is down
    }
  }

  /** Remote peers published before an operator restart stay until they time out (once, at the first reconcile). */
  seedOnce(seeds: () => readonly { node: string; host: string }[], now: number): void {
    if (this.#seeded) return;
    this.table.seedRemote(seeds().filter((p) => parseNodeName(p.node).ok), now);
    this.#seeded = true;
  }

  /** A change of members seen at `monotonicMs` (published at once): the earliest one not yet published is kept. */
  changed(monotonicMs: number): void {
    this.#pendingChangeSince ??= monotonicMs;
    this.#membersChanged = true;
  }

  /** The create of output `name` got 409: believe it taken until `until` (monotonic ms). */
  markTaken(output: 'configMap' | 'service', name: string, until: number): void {
    this.#taken.set(output, { name, until });
  }

  /** Whether output `name` is believed taken at `now` (monotonic ms). */
  isTaken(output: 'configMap' | 'service', name: string, now: number): boolean {
    const t = this.#taken.get(output);
    return t !== undefined && t.name === name && now < t.until;
  }

  /**
   * The earliest time a taken name is to be tried again, if any is still ahead of `now`. Past ones are
   * forgotten: the reconcile at that time has tried again (and remarked the name if it is still taken).
   */
  takenRecheckAt(now: number): number | undefined {
    let next: number | undefined;
    for (const [output, t] of this.#taken) {
      if (t.until <= now) this.#taken.delete(output);
      else next = Math.min(next ?? Infinity, t.until);
    }
    return next;
  }

  /** The earliest unpublished change, now published: its time, once (none while remote changes are held back). */
  takeChange(): number | undefined {
    if (this.#heldBack) return undefined;
    const t = this.#pendingChangeSince;
    this.#pendingChangeSince = undefined;
    return t;
  }

  /**
   * A remote-only change heard at `now`: answers in how many ms the PgCluster should be reconciled (0: now)
   * for it to be published (see peers()).
   */
  remoteChange(now: number): number {
    this.#pendingChangeSince ??= now;
    this.#remoteNames.hit(now);
    return Math.max(0, this.#lastPublishAt + REMOTE_PUBLISH_INTERVAL_MS - now);
  }

  /**
   * The peers to publish at `now` (monotonic): the table as it is after a change of members, or when
   * REMOTE_PUBLISH_INTERVAL_MS has passed since the last such answer; otherwise that answer again. Remote-only
   * changes are thereby published at most once per interval, whatever triggers the reconcile (the watch
   * events of our own writes included).
   */
  peers(now: number): { peers: Peer[]; dropped: number } {
    if (this.#published && !this.#membersChanged && now - this.#lastPublishAt < REMOTE_PUBLISH_INTERVAL_MS) {
      this.#heldBack = true;
      return this.#published;
    }
    this.#published = this.table.peers();
    this.#lastPublishAt = now;
    this.#membersChanged = false;
    this.#heldBack = false;
    return this.#published;
  }

  /** When (monotonic) the PgCluster must be reconciled again: the next expiry, or the end of the interval if
   * peers() held remote changes back. */
  nextWake(): number | undefined {
    const expiry = this.table.nextExpiry();
    if (!this.#heldBack) return expiry;
    const slot = this.#lastPublishAt + REMOTE_PUBLISH_INTERVAL_MS;
    return expiry === undefined ? slot : Math.min(expiry, slot);
  }

  /** New remote names per second, and whether that is a flood; `changed` when it just started or ended. */
  flood(now: number): { perSecond: number; flooding: boolean; changed: boolean } {
    const perSecond = this.#remoteNames.perSecond(now);
    const flooding = perSecond > FLOOD_NAMES_PER_SECOND;
    const changed = flooding !== this.#flooding;
    this.#flooding = flooding;
    return { perSecond, flooding, changed };
  }

  /**
   * Applies spec.auth at each reconcile. When unsigned names stop being accepted, the remote peers heard only
   * bare go at once: answers them (a change to publish).
   */
  setAuth(auth: AuthPolicy | undefined): string[] {
    const wasStrict = this.strict;
    this.#auth = auth;
    return this.strict && !wasStrict ? this.table.dropUnsigned() : [];
  }

  /** Names heard only bare (and unsigned "leave"s) are refused. */
  get strict(): boolean {
    return this.#auth !== undefined && !this.#auth.acceptUnsigned;
  }

  /** Whether signed messages can be made and checked now. */
  get signingKey(): Buffer | undefined {
    return this.#auth?.keys?.current;
  }

  /** Attaches to the endpoint of `url` on `channel`, replacing a different previous attachment. */
  attach(pool: EndpointPool, { url, parsed }: { url: string; parsed: ParsedPgUrl }, channel: string, onPayload: (payload: string) => void, onSide: (payload: string) => void): Attachment {
    const a = this.#attachment;
    if (a && a.url === url && a.channel === channel) return a;
    this.detach(pool);
    const endpoint = pool.acquire(url, this.key, parsed);
    // The channel, and the operators' side channel derived from it (core/sideChannel.ts).
    const subs = [endpoint.subscribe(channel, onPayload), endpoint.subscribe(sideChannel(channel), onSide)];
    const subscription = { close: () => { for (const s of subs) s.close(); } };
    this.#everListening = false;
    this.#attachment = { url, endpoint, channel, side: sideChannel(channel), subscription };
    return this.#attachment;
  }

  /** No more annotation writes; resolves when those in flight have ended. */
  stopFanOut(): Promise<void> {
    return this.fanOut?.stop() ?? Promise.resolve();
  }

  /** Stops heartbeats and listening for this PgCluster. */
  detach(pool: EndpointPool): void {
    const a = this.#attachment;
    if (!a) return;
    a.endpoint.setAnnouncer(this.key, null);
    a.subscription.close();
    pool.release(a.url, this.key);
    this.#attachment = undefined;
  }

  /** Handles one received payload; says whether the peer list changed. */
  receive(payload: string, now: number): { outcome: PayloadOutcome; problem?: string } {
    // Nearly everything heard is the echo of our own heartbeat: a lookup, no parsing, no allocation.
    if (this.table.isMember(payload)) return UNCHANGED;
    const parsed = parseNodeName(payload);
    if (!parsed.ok) return { outcome: 'invalid', problem: parsed.problem };
    if (this.strict) {
      // Only a signed "alive" adds or refreshes a remote peer: a bare heartbeat of one already known (its
      // signed peers send both) changes nothing, so that no one without the key can keep a departed node alive.
      return this.table.knows(parsed.node) ? UNCHANGED : { outcome: 'refused', problem: 'unsigned-refused' };
    }
    const r = this.table.hear(parsed.node, parsed.host, now);
    return { outcome: r === 'new' || r === 'over-limit' ? 'changed' : 'unchanged' };
  }

  /**
   * Handles one side-channel message (README, "Authenticated peers"). `wallNow` checks signed timestamps,
   * `now` (monotonic) is the peer table's time.
   */
  receiveSide(payload: string, wallNow: number, now: number): SideOutcome {
    const p = parseSideMessage(payload);
    if (!p.ok) return { outcome: 'dropped', problem: p.problem };
    const m = p.message;
    if (m.v === 1) return this.strict ? { outcome: 'dropped', problem: 'side-unsigned-refused' } : this.#leave([m.node], now);
    const auth = this.#auth;
    // Without spec.auth nothing is verified (the main channel is not either): a leave acts as version 1's,
    // and "alive" adds nothing the bare heartbeats sent with it do not.
    if (!auth) return m.type === 'leave' ? this.#leave(m.nodes, now) : UNCHANGED;
    // spec.auth without a usable key (the Authenticated condition says why): nothing can be verified.
    if (!auth.keys || !this.#attachment) return UNCHANGED;
    const v = verifySigned(m, this.#attachment.side, auth.keys, wallNow, this.#replay);
    if (!v.ok) return { outcome: 'dropped', problem: v.problem };
    if (m.type === 'leave') return this.#leave(m.nodes, now);
    let changed = false;
    for (const node of m.nodes) {
      if (this.table.isMember(node)) continue;
      const r = this.table.hear(node, node.slice(node.indexOf('@') + 1), now, true);
      if (r === 'new' || r === 'over-limit') changed = true;
    }
    return { outcome: changed ? 'changed' : 'unchanged' };
  }

  #leave(nodes: readonly string[], now: number): SideOutcome {
    let left = false;
    for (const node of nodes) if (this.table.forget(node, now)) left = true;
    return { outcome: left ? 'left' : 'unchanged' };
  }
}
