// spec.auth applied to what a PgCluster hears (docs/protocol.md, "Authenticated peers"): which names on the channel and
// which side-channel messages may change its peer table. Without spec.auth nothing is verified and everything
// is accepted; with it and acceptUnsigned false ("strict"), only members and signed peers are published.
import type { PeerTable } from '../../core/peerTable.ts';
import { parseNodeName } from '../../core/payload.ts';
import { parseSideMessage } from '../../core/sideChannel.ts';
import { ReplayCache, verifySigned, type SideKeys } from '../../core/sideAuth.ts';

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

export class SideChannelAuth {
  readonly #table: PeerTable;
  /** spec.auth; undefined: off (every message accepted unsigned, version 2 messages not verified). */
  #auth: AuthPolicy | undefined;
  readonly #replay = new ReplayCache();

  constructor(table: PeerTable) {
    this.#table = table;
  }

  /**
   * Applies spec.auth at each reconcile. When unsigned names stop being accepted, the remote peers heard only
   * bare go at once: answers them (a change to publish).
   */
  set(auth: AuthPolicy | undefined): string[] {
    const wasStrict = this.strict;
    this.#auth = auth;
    return this.strict && !wasStrict ? this.#table.dropUnsigned() : [];
  }

  /** Names heard only bare (and unsigned "leave"s) are refused. */
  get strict(): boolean {
    return this.#auth !== undefined && !this.#auth.acceptUnsigned;
  }

  /** Whether signed messages can be made and checked now. */
  get signingKey(): Buffer | undefined {
    return this.#auth?.keys?.current;
  }

  /** One payload heard on the channel; says whether the peer table changed. */
  receive(payload: string, now: number): { outcome: PayloadOutcome; problem?: string } {
    const table = this.#table;
    // Nearly everything heard is the echo of our own heartbeat: a lookup, no parsing, no allocation.
    if (table.isMember(payload)) return UNCHANGED;
    const parsed = parseNodeName(payload);
    if (!parsed.ok) return { outcome: 'invalid', problem: parsed.problem };
    if (this.strict) {
      // Only a signed "alive" adds or refreshes a remote peer: a bare heartbeat of one already known (its
      // signed peers send both) changes nothing, so that no one without the key can keep a departed node alive.
      return table.knows(parsed.node) ? UNCHANGED : { outcome: 'refused', problem: 'unsigned-refused' };
    }
    const r = table.hear(parsed.node, parsed.host, now);
    return { outcome: r === 'new' || r === 'over-limit' ? 'changed' : 'unchanged' };
  }

  /**
   * One side-channel message on `side` (docs/protocol.md, "Authenticated peers"); undefined `side`: not attached.
   * `wallNow` checks signed timestamps, `now` (monotonic) is the peer table's time.
   */
  receiveSide(payload: string, side: string | undefined, wallNow: number, now: number): SideOutcome {
    const p = parseSideMessage(payload);
    if (!p.ok) return { outcome: 'dropped', problem: p.problem };
    const m = p.message;
    if (m.v === 1) return this.strict ? { outcome: 'dropped', problem: 'side-unsigned-refused' } : this.#leave([m.node], now);
    const auth = this.#auth;
    // Without spec.auth nothing is verified (the main channel is not either): a leave acts as version 1's,
    // and "alive" adds nothing the bare heartbeats sent with it do not.
    if (!auth) return m.type === 'leave' ? this.#leave(m.nodes, now) : UNCHANGED;
    // spec.auth without a usable key (the Authenticated condition says why): nothing can be verified.
    if (!auth.keys || side === undefined) return UNCHANGED;
    const v = verifySigned(m, side, auth.keys, wallNow, this.#replay);
    if (!v.ok) return { outcome: 'dropped', problem: v.problem };
    if (m.type === 'leave') return this.#leave(m.nodes, now);
    let changed = false;
    for (const node of m.nodes) {
      if (this.#table.isMember(node)) continue;
      const r = this.#table.hear(node, node.slice(node.indexOf('@') + 1), now, true);
      if (r === 'new' || r === 'over-limit') changed = true;
    }
    return { outcome: changed ? 'changed' : 'unchanged' };
  }

  #leave(nodes: readonly string[], now: number): SideOutcome {
    let left = false;
    for (const node of nodes) if (this.#table.forget(node, now)) left = true;
    return { outcome: left ? 'left' : 'unchanged' };
  }
}
