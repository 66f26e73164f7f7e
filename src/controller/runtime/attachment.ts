// A PgCluster's attachment to the endpoint of its Postgres URL (one PgEndpoint per URL, shared through the
// EndpointPool): the subscriptions to its channel and to the operators' side channel derived from it
// (core/sideChannel.ts), and whether the endpoint has been Listening since.
import { sideChannel } from '../../core/sideChannel.ts';
import type { PgEndpoint } from '../../postgres/endpoint.ts';
import type { EndpointPool, EndpointTarget } from '../endpointPool.ts';

export interface Attachment {
  /** The endpoint's identity in the pool: the URL, and the fingerprint of its TLS settings if any. */
  readonly key: string;
  readonly endpoint: PgEndpoint;
  readonly channel: string;
  /** The side channel derived from it (core/sideChannel.ts). */
  readonly side: string;
  readonly subscription: { close(): void };
}

export interface Listeners {
  /** A payload heard on the channel (untrusted). */
  onPayload(payload: string): void;
  /** A message heard on the side channel (untrusted). */
  onSide(payload: string): void;
}

export class EndpointAttachment {
  readonly #pool: Pick<EndpointPool, 'acquire' | 'release'>;
  /** The pool's user name: the PgCluster's key. */
  readonly #user: string;
  #current: Attachment | undefined;
  #everListening = false;

  constructor(pool: Pick<EndpointPool, 'acquire' | 'release'>, user: string) {
    this.#pool = pool;
    this.#user = user;
  }

  get current(): Attachment | undefined {
    return this.#current;
  }

  /** The endpoint has reached Listening at least once since attaching. */
  get everListening(): boolean {
    return this.#everListening;
  }

  /** Called with the endpoint's phase at each reconcile. */
  noteListening(listening: boolean): void {
    if (listening) this.#everListening = true;
  }

  /** Attaches to the endpoint of `target` (a URL and its TLS settings) on `channel`, replacing a different
   * previous attachment: a changed URL, or a rotated CA or client certificate, moves to new connections. */
  attach(target: EndpointTarget, channel: string, listeners: Listeners): Attachment {
    const a = this.#current;
    if (a && a.key === target.key && a.channel === channel) return a;
    this.detach();
    const endpoint = this.#pool.acquire(target, this.#user);
    const side = sideChannel(channel);
    const subs = [endpoint.subscribe(channel, listeners.onPayload), endpoint.subscribe(side, listeners.onSide)];
    const subscription = { close: () => { for (const s of subs) s.close(); } };
    this.#everListening = false;
    this.#current = { key: target.key, endpoint, channel, side, subscription };
    return this.#current;
  }

  /** Stops heartbeats and listening for this PgCluster. */
  detach(): void {
    const a = this.#current;
    if (!a) return;
    a.endpoint.setAnnouncer(this.#user, null);
    a.subscription.close();
    this.#pool.release(a.key, this.#user);
    this.#current = undefined;
  }
}
