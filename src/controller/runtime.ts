// The in-memory side of one PgCluster: its peer table and its attachment to a Postgres endpoint.
import { PeerTable } from '../core/peerTable.ts';
import { parseNodeName } from '../core/payload.ts';
import type { ParsedPgUrl } from '../postgres/connstring.ts';
import type { PgEndpoint } from '../postgres/endpoint.ts';
import type { EndpointPool } from './endpointPool.ts';

export interface Attachment {
  readonly url: string;
  readonly endpoint: PgEndpoint;
  readonly channel: string;
  readonly subscription: { close(): void };
}

export type PayloadOutcome = 'invalid' | 'changed' | 'unchanged';

const UNCHANGED = { outcome: 'unchanged' } as const;

export class ClusterRuntime {
  readonly key: string;
  readonly table: PeerTable;
  #attachment: Attachment | undefined;
  #seeded = false;
  #everListening = false;
  #pendingChangeSince: number | undefined;

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

  /** Called with the endpoint's phase at each reconcile: nothing expires while the listener is down. */
  listenerIs(listening: boolean, now: number): void {
    if (listening) {
      this.#everListening = true;
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

  /** A membership change seen at `monotonicMs`: the earliest one not yet published is kept. */
  changed(monotonicMs: number): void {
    this.#pendingChangeSince ??= monotonicMs;
  }

  /** The earliest unpublished change, now published: its time, once. */
  takeChange(): number | undefined {
    const t = this.#pendingChangeSince;
    this.#pendingChangeSince = undefined;
    return t;
  }

  /** Attaches to the endpoint of `url` on `channel`, replacing a different previous attachment. */
  attach(pool: EndpointPool, { url, parsed }: { url: string; parsed: ParsedPgUrl }, channel: string, onPayload: (payload: string) => void): Attachment {
    const a = this.#attachment;
    if (a && a.url === url && a.channel === channel) return a;
    this.detach(pool);
    const endpoint = pool.acquire(url, this.key, parsed);
    const subscription = endpoint.subscribe(channel, onPayload);
    this.#everListening = false;
    this.#attachment = { url, endpoint, channel, subscription };
    return this.#attachment;
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
    const r = this.table.hear(parsed.node, parsed.host, now);
    return { outcome: r === 'new' || r === 'over-limit' ? 'changed' : 'unchanged' };
  }
}
