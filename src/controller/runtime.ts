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

/** What a side-channel message did: 'left' (remote peers taken out), 'changed' (new remote
 * names: publish like any remote change), or nothing; `problem` when it was dropped. */
export type SideOutcome = { outcome: 'left' | 'changed' | 'unchanged' } | { outcome: 'dropped'; problem: string };

/** spec.auth as the runtime uses it: `keys` undefined while the Secret is not usable. */
export interface AuthPolicy {
  keys: SideKeys | undefined;
  acceptUnsigned: boolean;
}

const UNCHANGED = { outcome: 'unchanged' } as const;

/**
 * Remote-only changes (names heard on the channel, expiries, another operator's "leave"s) are published at
 * once while they are few: up to REMOTE_PUBLISH_BURST in a row, then one per REMOTE_PUBLISH_INTERVAL_MS (a
 * token bucket). A flood of new names, or of names and their leaves, costs a few writes a second, not one
 * per name. Members' changes are published at once and take no token.
 */
export const REMOTE_PUBLISH_INTERVAL_MS = 1000;
export const REMOTE_PUBLISH_BURST = 3;
/**
 * Another operator's "leave"s have a bucket of their own, larger and faster (5 at once, then 4 a second), so
 * that the leaves of another cluster's rolling update are each published at once, while a flood of names
 * and leaves still costs only a few writes a second.
 */
export const LEAVE_PUBLISH_INTERVAL_MS = 250;
export const LEAVE_PUBLISH_BURST = 5;

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

/** The same peers (node, host, source) and the same count of names left out. */
function samePeers(a: { peers: readonly Peer[]; dropped: number }, b: { peers: readonly Peer[]; dropped: number }): boolean {
  if (a.dropped !== b.dropped || a.peers.length !== b.peers.length) return false;
  for (let i = 0; i < a.peers.length; i++) {
    const x = a.peers[i]!;
    const y = b.peers[i]!;
    if (x.node !== y.node || x.host !== y.host || x.source !== y.source || x.pod !== y.pod) return false;
  }
  return true;
}

/**
 * A token bucket: `capacity` tokens, one more every `intervalMs`, starting full. Kept as the generic cell rate
 * algorithm's theoretical arrival time, so that it is exact in integer milliseconds. Monotonic ms.
 */
export class TokenBucket {
  readonly #capacity: number;
  readonly #intervalMs: number;
  /** When the bucket would be empty again, had every token taken so far come at the refill rate. */
  #tat = -Infinity;

  constructor(capacity: number, intervalMs: number) {
    this.#capacity = capacity;
    this.#intervalMs = intervalMs;
  }

  /** Takes a token if there is one at `now`. */
  take(now: number): boolean {
    if (this.readyAt(now) > now) return false;
    this.#tat = Math.max(this.#tat, now) + this.#intervalMs;
    return true;
  }

  /** When (monotonic ms) a token is there: `now` when one is. */
  readyAt(now: number): number {
    return Math.max(now, this.#tat - (this.#capacity - 1) * this.#intervalMs);
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
  /** Remote-only publications: a token each, from the leave bucket when a leave waits, else the other. */
  readonly #remoteBucket = new TokenBucket(REMOTE_PUBLISH_BURST, REMOTE_PUBLISH_INTERVAL_MS);
  readonly #leaveBucket = new TokenBucket(LEAVE_PUBLISH_BURST, LEAVE_PUBLISH_INTERVAL_MS);
  /** A leave heard since the last fresh peers(). */
  #leavePending = false;
  /** What peers() last answered: answered again while a remote-only change waits for a token. */
  #published: { readonly peers: readonly Peer[]; readonly dropped: number } | undefined;
  /** peers() answered the earlier list: the table holds remote changes not published yet. */
  #heldBack = false;
  /** When the next token is there, while #heldBack. */
  #heldUntil = 0;
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
   * A remote-only change at `now`, a new name heard or remote peers gone (another operator's "leave"):
   * answers in how many ms the PgCluster should be reconciled (0: now) for it to be published (see peers()).
   */
  remoteChange(now: number, kind: 'name' | 'leave' = 'name'): number {
    this.#pendingChangeSince ??= now;
    if (kind === 'leave') this.#leavePending = true;
    else this.#remoteNames.hit(now);
    return this.#tokenAt(now, kind === 'leave') - now;
  }

  /** When (monotonic ms, `now` at the earliest) a remote-only change gets a token: a leave from either bucket. */
  #tokenAt(now: number, leave: boolean): number {
    const remote = this.#remoteBucket.readyAt(now);
    return leave ? Math.min(this.#leaveBucket.readyAt(now), remote) : remote;
  }

  /**
   * The peers to publish at `now` (monotonic): the table as it is, unless that is a remote-only change of the
   * last answer and no token is left for it (REMOTE_PUBLISH_BURST, or LEAVE_PUBLISH_BURST while a leave
   * waits); then the last answer again. Remote-only changes are thereby paced whatever triggers the reconcile
   * (the watch events of our own writes included). A change of members is published at once, with any remote
   * change waiting.
   */
  peers(now: number): { readonly peers: readonly Peer[]; readonly dropped: number } {
    const fresh = this.table.peers(); // the same object while the table has not changed: no list to compare
    const prev = this.#published;
    if (prev && !this.#membersChanged && prev !== fresh && !samePeers(prev, fresh)
      && !(this.#leavePending && this.#leaveBucket.take(now)) && !this.#remoteBucket.take(now)) {
      this.#heldBack = true;
      this.#heldUntil = this.#tokenAt(now, this.#leavePending);
      return prev;
    }
    this.#published = fresh;
    this.#membersChanged = false;
    this.#leavePending = false;
    this.#heldBack = false;
    return fresh;
  }

  /** When (monotonic) the PgCluster must be reconciled again: the next expiry, or the next token if peers()
   * held remote changes back. */
  nextWake(): number | undefined {
    const expiry = this.table.nextExpiry();
    if (!this.#heldBack) return expiry;
    return expiry === undefined ? this.#heldUntil : Math.min(expiry, this.#heldUntil);
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
