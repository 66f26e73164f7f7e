// The peer table of one PgCluster: its members (from pods), remote names heard on the channel, and
// tombstones for members that left. Pure: time comes in as `now` (ms).
export interface Member {
  node: string;
  host: string;
  pod: string;
}
export interface Peer {
  node: string;
  host: string;
  source: 'member' | 'remote';
  pod?: string;
}
export type HearResult = 'member' | 'tombstoned' | 'new' | 'refreshed' | 'over-limit';

/** Names refused for maxPeers are remembered (for status) up to this many, then only counted. */
const MAX_TRACKED_OVERFLOW = 10_000;

export const byNode = (a: { node: string }, b: { node: string }): number => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0);

export class PeerTable {
  #members = new Map<string, Member>();
  /** `signed`: heard in a verified signed message (or seeded from our own earlier output), not only bare. */
  #remote = new Map<string, { host: string; lastHeard: number; signed: boolean }>();
  #tombstones = new Map<string, number>(); // node -> until
  #overflow = new Map<string, number>(); // node -> lastHeard
  #pausedAt: number | undefined;
  #maxPeers: number;
  /** Bumped by every change of what peers() answers; peers() is computed once per version. */
  #version = 0;
  #answer: { peers: readonly Peer[]; dropped: number } | undefined;
  #answerVersion = -1;
  peerTimeoutMs: number;

  constructor(peerTimeoutMs: number, maxPeers: number) {
    this.peerTimeoutMs = peerTimeoutMs;
    this.#maxPeers = maxPeers;
  }

  get maxPeers(): number {
    return this.#maxPeers;
  }

  set maxPeers(n: number) {
    if (n === this.#maxPeers) return;
    this.#maxPeers = n;
    this.#version++;
  }

  /**
   * Changes whenever what peers() answers may have changed (a name in or out, a member's host or pod, the
   * count of names left out); equal versions mean an equal answer, so that a caller can skip comparing lists.
   */
  get version(): number {
    return this.#version;
  }

  #lastMembers: readonly Member[] | undefined;

  /** Replaces the members. A member that leaves is removed at once and tombstoned for peerTimeout. */
  setMembers(members: readonly Member[], now: number): { added: string[]; removed: string[] } {
    // The same member objects as last time (a selection memoized per pod): nothing to do.
    const last = this.#lastMembers;
    this.#lastMembers = members;
    if (last && last.length === members.length && members.every((m, i) => m === last[i])) return { added: [], removed: [] };
    const next = new Map(members.map((m) => [m.node, m]));
    const removed: string[] = [];
    for (const node of this.#members.keys()) {
      if (!next.has(node)) {
        removed.push(node);
        this.#tombstones.set(node, now + this.peerTimeoutMs);
      }
    }
    const added: string[] = [];
    let changed = removed.length > 0;
    for (const [node, m] of next) {
      const was = this.#members.get(node);
      if (!was) added.push(node);
      else if (was.host !== m.host || was.pod !== m.pod) changed = true;
      this.#tombstones.delete(node);
      // A name we announce ourselves is a member, not a remote peer. Both deletes run: a name refused for
      // maxPeers and heard again once there was room is in both maps.
      const wasRemote = this.#remote.delete(node);
      const wasOverflow = this.#overflow.delete(node);
      if (wasRemote || wasOverflow) changed = true;
    }
    this.#members = next;
    if (changed || added.length > 0) this.#version++;
    return { added, removed };
  }

  /** Whether `node` is one of our members (their names are valid by construction). */
  isMember(node: string): boolean {
    return this.#members.has(node);
  }

  /** A valid name heard on the channel (bare), or in a verified signed message (`signed`). */
  hear(node: string, host: string, now: number, signed = false): HearResult {
    if (this.#members.has(node)) return 'member';
    const until = this.#tombstones.get(node);
    if (until !== undefined) {
      if (now < until) return 'tombstoned'; // a late echo of a departed member's last heartbeat
      this.#tombstones.delete(node);
    }
    const entry = this.#remote.get(node);
    if (entry) {
      entry.lastHeard = now;
      if (signed) entry.signed = true;
      return 'refreshed';
    }
    if (this.#members.size + this.#remote.size >= this.#maxPeers) {
      const tracked = this.#overflow.has(node);
      if (tracked || this.#overflow.size < MAX_TRACKED_OVERFLOW) {
        if (!tracked) this.#version++; // one more name left out
        this.#overflow.set(node, now);
      }
      return 'over-limit';
    }
    this.#remote.set(node, { host, lastHeard: now, signed });
    this.#version++;
    return 'new';
  }

  /** Whether `node` is a remote peer, a departed member, or a name refused for maxPeers: known, not news. */
  knows(node: string): boolean {
    return this.#remote.has(node) || this.#tombstones.has(node) || this.#overflow.has(node);
  }

  /** Unsigned names are no longer accepted (spec.auth.acceptUnsigned became false): the remote peers heard
   * only bare go at once. Answers them. */
  dropUnsigned(): string[] {
    const gone: string[] = [];
    for (const [node, e] of this.#remote) {
      if (e.signed) continue;
      this.#remote.delete(node);
      gone.push(node);
    }
    if (gone.length > 0) this.#version++;
    return gone;
  }

  /**
   * Another operator said a remote node left (side channel): it goes at once and is tombstoned for
   * peerTimeout, so that a late heartbeat of it cannot bring it back. Only a remote peer we know (a leave for
   * anything else changes nothing and costs no memory). Answers whether it was removed.
   */
  forget(node: string, now: number): boolean {
    if (!this.#remote.delete(node)) return false;
    this.#overflow.delete(node);
    this.#tombstones.set(node, now + this.peerTimeoutMs);
    this.#version++;
    return true;
  }

  /** Removes remote names not heard within peerTimeout. Nothing expires while paused (disconnected). */
  expire(now: number): string[] {
    if (this.#pausedAt !== undefined) return [];
    const gone: string[] = [];
    for (const [node, e] of this.#remote) {
      if (e.lastHeard + this.peerTimeoutMs <= now) {
        this.#remote.delete(node);
        gone.push(node);
      }
    }
    for (const [node, until] of this.#tombstones) if (until <= now) this.#tombstones.delete(node);
    const overflow = this.#overflow.size;
    for (const [node, last] of this.#overflow) if (last + this.peerTimeoutMs <= now) this.#overflow.delete(node);
    if (gone.length > 0 || this.#overflow.size !== overflow) this.#version++;
    return gone;
  }

  /** The listener is disconnected: notifications are being lost, so silence proves nothing. */
  pause(now: number): void {
    this.#pausedAt ??= now;
  }

  /** Reconnected: every remote peer gets a fresh peerTimeout. */
  resume(now: number): void {
    if (this.#pausedAt === undefined) return;
    this.#pausedAt = undefined;
    for (const e of this.#remote.values()) e.lastHeard = now;
  }

  get paused(): boolean {
    return this.#pausedAt !== undefined;
  }

  /** When the next remote peer (or tombstone) expires, for scheduling; undefined when none. */
  nextExpiry(): number | undefined {
    if (this.#pausedAt !== undefined) return undefined;
    let next: number | undefined;
    const consider = (t: number): void => {
      if (next === undefined || t < next) next = t;
    };
    for (const e of this.#remote.values()) consider(e.lastHeard + this.peerTimeoutMs);
    for (const last of this.#overflow.values()) consider(last + this.peerTimeoutMs);
    return next;
  }

  /** Seeds remote peers published before a restart, so a restart does not drop live peers. Trusted as signed:
   * they are what this PgCluster published itself (under its policy then); they expire like any other. */
  seedRemote(peers: readonly { node: string; host: string }[], now: number): void {
    for (const p of peers) if (!this.#members.has(p.node)) this.hear(p.node, p.host, now, true);
  }

  /** Members, then remote peers, sorted by node, capped at maxPeers (members first). Built once per version
   * (reconciles that change nothing ask again), so the answer is shared: read-only. */
  peers(): { readonly peers: readonly Peer[]; readonly dropped: number } {
    if (this.#answer && this.#answerVersion === this.#version) return this.#answer;
    const members: Peer[] = [...this.#members.values()].map((m) => ({ node: m.node, host: m.host, source: 'member', pod: m.pod }));
    const remote: Peer[] = [...this.#remote].map(([node, e]) => ({ node, host: e.host, source: 'remote' }));
    members.sort(byNode);
    remote.sort(byNode);
    const all = members.concat(remote);
    const kept = all.slice(0, this.#maxPeers).sort(byNode);
    this.#answer = { peers: kept, dropped: all.length - kept.length + this.#overflow.size };
    this.#answerVersion = this.#version;
    return this.#answer;
  }

  get memberCount(): number {
    return this.#members.size;
  }
  memberNames(): string[] {
    return [...this.#members.keys()].sort();
  }
}
