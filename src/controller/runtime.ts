// The in-memory side of one PgCluster: its peer table and its attachment to a Postgres endpoint.
import { PeerTable } from '../core/peerTable.ts';
import { parseNodeName } from '../core/payload.ts';
import type { PgEndpoint } from '../postgres/endpoint.ts';
import type { EndpointPool } from './endpointPool.ts';

export interface Attachment {
  url: string;
  endpoint: PgEndpoint;
  channel: string;
  subscription: { close(): void };
}

export type PayloadOutcome = 'invalid' | 'changed' | 'unchanged';

const UNCHANGED = { outcome: 'unchanged' } as const;

export class ClusterRuntime {
  readonly key: string;
  readonly table: PeerTable;
  attachment: Attachment | undefined;
  /** Remote peers were read back from the ConfigMap published before a restart. */
  seeded = false;
  /** The endpoint has reached Listening at least once since attaching. */
  everListening = false;
  /** The Secret reference and when it was last read successfully (see SECRET_TTL_MS). */
  secretRef: string | undefined;
  secretReadAt: number | undefined;
  /** performance.now() of the earliest membership change not yet published. */
  pendingChangeSince: number | undefined;

  constructor(key: string, peerTimeoutMs: number, maxPeers: number) {
    this.key = key;
    this.table = new PeerTable(peerTimeoutMs, maxPeers);
  }

  /** Attaches to the endpoint of `url` on `channel`, replacing a different previous attachment. */
  attach(pool: EndpointPool, url: string, channel: string, onPayload: (payload: string) => void): Attachment {
    const a = this.attachment;
    if (a && a.url === url && a.channel === channel) return a;
    this.detach(pool);
    const endpoint = pool.acquire(url, this.key);
    const subscription = endpoint.subscribe(channel, onPayload);
    this.everListening = false;
    this.attachment = { url, endpoint, channel, subscription };
    return this.attachment;
  }

  /** Stops heartbeats and listening for this PgCluster. */
  detach(pool: EndpointPool): void {
    const a = this.attachment;
    this.secretReadAt = undefined;
    if (!a) return;
    a.endpoint.setAnnouncer(this.key, null);
    a.subscription.close();
    pool.release(a.url, this.key);
    this.attachment = undefined;
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
