// When a PgCluster's peer list may be published (docs/architecture.md, "A NOTIFY flood"): a change of members
// at once; a remote-only change (a name heard on the channel, an expiry, another operator's "leave") at once
// while such changes are few, then paced by token buckets, so that a flood of names costs a few writes a
// second. Keeps the earliest unpublished change's time for the join-to-published latency. Monotonic ms.
import { TokenBucket } from '../../core/tokenBucket.ts';
import type { Peer } from '../../core/peerTable.ts';

/**
 * Remote-only changes are published at once while they are few: up to REMOTE_PUBLISH_BURST in a row, then one
 * per REMOTE_PUBLISH_INTERVAL_MS (a token bucket). Members' changes are published at once and take no token.
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

/** A peer list as published: the peers and the count of names left out (maxPeers). */
export interface PeerList {
  readonly peers: readonly Peer[];
  readonly dropped: number;
}

/** The same peers (node, host, source, pod) and the same count of names left out. */
function samePeers(a: PeerList, b: PeerList): boolean {
  if (a.dropped !== b.dropped || a.peers.length !== b.peers.length) return false;
  for (let i = 0; i < a.peers.length; i++) {
    const x = a.peers[i]!;
    const y = b.peers[i]!;
    if (x.node !== y.node || x.host !== y.host || x.source !== y.source || x.pod !== y.pod) return false;
  }
  return true;
}

export class PublishPacing {
  /** The earliest change not yet published. */
  #pendingSince: number | undefined;
  /** A member joined or left since the last fresh list was published. */
  #membersChanged = false;
  /** Remote-only publications: a token each, from the leave bucket when a leave waits, else the other. */
  readonly #remoteBucket = new TokenBucket(REMOTE_PUBLISH_BURST, REMOTE_PUBLISH_INTERVAL_MS);
  readonly #leaveBucket = new TokenBucket(LEAVE_PUBLISH_BURST, LEAVE_PUBLISH_INTERVAL_MS);
  /** A leave heard since the last fresh list was published. */
  #leavePending = false;
  /** What paced() last answered: answered again while a remote-only change waits for a token. */
  #published: PeerList | undefined;
  /** paced() answered the earlier list: remote changes are held back until #heldUntil (a token). */
  #heldBack = false;
  #heldUntil = 0;

  /** A change of members at `now` (published at once): the earliest one not yet published is kept. */
  membersChanged(now: number): void {
    this.#pendingSince ??= now;
    this.#membersChanged = true;
  }

  /** A remote-only change at `now`: answers in how many ms it may be published (0: now). */
  remoteChange(now: number, kind: 'name' | 'leave'): number {
    this.#pendingSince ??= now;
    if (kind === 'leave') this.#leavePending = true;
    return this.#tokenAt(now, kind === 'leave') - now;
  }

  /**
   * The list to publish at `now`: `fresh` (the table as it is), unless that is a remote-only change of the
   * last answer and no token is left for it; then the last answer again. Remote-only changes are thereby paced
   * whatever triggers the reconcile (the watch events of our own writes included). A change of members is
   * published at once, with any remote change waiting.
   */
  paced(fresh: PeerList, now: number): PeerList {
    const prev = this.#published;
    // `prev !== fresh`: the table answers the same object while it has not changed, so no list to compare.
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

  /** The earliest unpublished change, now published: its time, once (none while remote changes are held back). */
  takeChange(): number | undefined {
    if (this.#heldBack) return undefined;
    const t = this.#pendingSince;
    this.#pendingSince = undefined;
    return t;
  }

  /** When to look again: `expiry` (the table's next), or the next token if paced() held changes back. */
  wakeAt(expiry: number | undefined): number | undefined {
    if (!this.#heldBack) return expiry;
    return expiry === undefined ? this.#heldUntil : Math.min(expiry, this.#heldUntil);
  }

  /** When a remote-only change gets a token (`now` at the earliest): a leave from either bucket. */
  #tokenAt(now: number, leave: boolean): number {
    const remote = this.#remoteBucket.readyAt(now);
    return leave ? Math.min(this.#leaveBucket.readyAt(now), remote) : remote;
  }
}
