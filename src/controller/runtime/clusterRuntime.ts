// The in-memory side of one PgCluster, in named parts: its peer table, its attachment to a Postgres endpoint,
// the pacing of what it publishes, spec.auth applied to what it hears, output names found taken, the flood
// meter, and the fan-out of its annotation writes. Methods here are the ones that need two parts together.
import { PeerTable } from '../../core/peerTable.ts';
import { parseNodeName } from '../../core/payload.ts';
import type { EndpointPool } from '../endpointPool.ts';
import type { FanOut } from '../write/fanout.ts';
import type { SelectionMemo } from '../plan/members.ts';
import { EndpointAttachment, type Attachment } from './attachment.ts';
import { FloodMeter, type FloodReading } from './floodMeter.ts';
import { PublishPacing, type PeerList } from './publishPacing.ts';
import { PublishedVersions } from './publishedVersions.ts';
import { SideChannelAuth, type PayloadOutcome, type SideOutcome } from './sideChannelAuth.ts';
import { SecretRetry } from './secretRetry.ts';
import { TakenNames } from './takenNames.ts';

export interface RuntimeLimits {
  peerTimeoutMs: number;
  maxPeers: number;
}

export interface RuntimeParts {
  /** Where endpoints come from; without one (unit tests of the pure parts) attaching throws. */
  pool?: Pick<EndpointPool, 'acquire' | 'release'>;
  /** The pods' annotation writes, beside the reconcile. */
  fanOut?: FanOut;
}

const NO_POOL: Pick<EndpointPool, 'acquire' | 'release'> = {
  acquire: () => { throw new Error('this runtime has no endpoint pool'); },
  release: () => {},
};

export class ClusterRuntime {
  readonly key: string;
  readonly table: PeerTable;
  readonly endpoint: EndpointAttachment;
  readonly pacing = new PublishPacing();
  readonly auth: SideChannelAuth;
  readonly taken = new TakenNames();
  readonly secretRetry = new SecretRetry();
  readonly floodMeter = new FloodMeter();
  readonly fanOut: FanOut | undefined;
  /** Gated pods announced and not yet in every output, at the last plan: a fan-out pass end reconciles then. */
  gatesWaiting = 0;
  /** The lists published lately, by version (the `version` annotation format: the gate reads them). */
  readonly versions = new PublishedVersions();
  /**
   * Pods (as observed) found to need no annotation write, with what that was planned against: a reconcile
   * that changes nothing skips them (plan/outputs.ts, planAnnotations).
   */
  readonly settledPods = new WeakMap<object, { sig: string; value: string; selected: boolean }>();
  /** Each pod's part of the selection, per pod object and spec (plan/members.ts). */
  readonly selectionMemo: SelectionMemo = new WeakMap();
  #seeded = false;

  constructor(key: string, limits: RuntimeLimits, parts: RuntimeParts = {}) {
    this.key = key;
    this.table = new PeerTable(limits.peerTimeoutMs, limits.maxPeers);
    this.endpoint = new EndpointAttachment(parts.pool ?? NO_POOL, key);
    this.auth = new SideChannelAuth(this.table);
    this.fanOut = parts.fanOut;
  }

  /** The spec's limits, at each reconcile (they may have changed). */
  setLimits(limits: RuntimeLimits): void {
    this.table.peerTimeoutMs = limits.peerTimeoutMs;
    this.table.maxPeers = limits.maxPeers;
  }

  get attachment(): Attachment | undefined {
    return this.endpoint.current;
  }

  /** Remote peers published before an operator restart stay until they time out (once, at the first reconcile). */
  seedOnce(seeds: () => readonly { node: string; host: string }[], now: number): void {
    if (this.#seeded) return;
    this.table.seedRemote(seeds().filter((p) => parseNodeName(p.node).ok), now);
    this.#seeded = true;
  }

  /**
   * Called with the endpoint's phase at each reconcile: nothing expires while the listener is down, nor while
   * `hold` (remote peers cannot be heard: spec.auth refuses unsigned names and has no key to verify with).
   */
  listenerIs(listening: boolean, now: number, hold = false): void {
    this.endpoint.noteListening(listening);
    if (listening && !hold) this.table.resume(now);
    else this.table.pause(now); // silence proves nothing while the listener is down
  }

  /** A change of members seen at `now` (published at once). */
  changed(now: number): void {
    this.pacing.membersChanged(now);
  }

  /**
   * A remote-only change at `now`, a new name heard or remote peers gone (another operator's "leave"):
   * answers in how many ms the PgCluster should be reconciled (0: now) for it to be published (see peers()).
   */
  remoteChange(now: number, kind: 'name' | 'leave' = 'name'): number {
    if (kind === 'name') this.floodMeter.hit(now);
    return this.pacing.remoteChange(now, kind);
  }

  /** The peers to publish at `now` (monotonic): the table's list as paced (publishPacing.ts). */
  peers(now: number): PeerList {
    return this.pacing.paced(this.table.peers(), now);
  }

  /** The earliest unpublished change, now published: its time, once. */
  takeChange(): number | undefined {
    return this.pacing.takeChange();
  }

  /** When (monotonic) the PgCluster must be reconciled again: the next expiry, or the next publish token. */
  nextWake(): number | undefined {
    return this.pacing.wakeAt(this.table.nextExpiry());
  }

  /** New remote names per second, and whether that is a flood. */
  flood(now: number): FloodReading {
    return this.floodMeter.read(now);
  }

  /** One payload heard on the channel. */
  receive(payload: string, now: number): { outcome: PayloadOutcome; problem?: string } {
    return this.auth.receive(payload, now);
  }

  /** One message heard on the side channel. */
  receiveSide(payload: string, wallNow: number, now: number): SideOutcome {
    return this.auth.receiveSide(payload, this.endpoint.current?.side, wallNow, now);
  }

  /** No more annotation writes, no more heartbeats or listening. Resolves when writes in flight have ended. */
  stop(): Promise<void> {
    this.endpoint.detach();
    return this.stopFanOut();
  }

  /** No more annotation writes; resolves when those in flight have ended. */
  stopFanOut(): Promise<void> {
    return this.fanOut?.stop() ?? Promise.resolve();
  }
}
