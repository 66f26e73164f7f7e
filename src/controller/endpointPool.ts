// One PgEndpoint per distinct Postgres URL (and TLS settings: docs/postgres.md, "TLS"), shared by every PgCluster that uses
// it, closed with the last.
import { PgEndpoint, type EndpointHooks } from '../postgres/endpoint.ts';
import type { Logger } from '../log.ts';
import type { ParsedPgUrl } from '../postgres/connstring.ts';
import type { TlsSettings } from '../postgres/tls.ts';

/** What an endpoint connects to (a SecretSource lookup): `key` tells endpoints apart (the URL, and a fingerprint
 * of its TLS settings when there are any). */
export interface EndpointTarget {
  key: string;
  url: string;
  parsed?: ParsedPgUrl | undefined;
  tls?: TlsSettings | undefined;
}

export class EndpointPool {
  #entries = new Map<string, { endpoint: PgEndpoint; users: Set<string> }>();
  #log: Logger;
  #hooks: (endpointId: () => string) => EndpointHooks;
  #onCreate: (ep: PgEndpoint) => void;
  #identity: string | undefined;
  #closed = false;

  constructor(log: Logger, hooks: (endpointId: () => string) => EndpointHooks, onCreate: (ep: PgEndpoint) => void, identity?: string) {
    this.#log = log;
    this.#hooks = hooks;
    this.#onCreate = onCreate;
    this.#identity = identity;
  }

  /** The endpoint of `target`, registering `user` (a PgCluster key) as one of its users. */
  acquire({ key, url, parsed, tls }: EndpointTarget, user: string): PgEndpoint {
    // A reconcile still running when the replica stops must not open new connections (and announce).
    if (this.#closed) throw new Error('the Postgres endpoints are closed: this replica is stopping');
    let entry = this.#entries.get(key);
    if (!entry) {
      let id = '';
      const endpoint = new PgEndpoint({ url, parsed, tls, log: this.#log, hooks: this.#hooks(() => id), ...(this.#identity ? { identity: this.#identity } : {}) });
      id = endpoint.id;
      entry = { endpoint, users: new Set() };
      this.#entries.set(key, entry);
      this.#onCreate(endpoint);
    }
    entry.users.add(user);
    return entry.endpoint;
  }

  /** Drops `user` from the endpoint of `key`; the last user closes it. */
  release(key: string, user: string): void {
    const entry = this.#entries.get(key);
    if (!entry) return;
    entry.users.delete(user);
    if (entry.users.size === 0) {
      this.#entries.delete(key);
      void entry.endpoint.close();
    }
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Closes every endpoint; acquire refuses from now on. */
  async closeAll(): Promise<void> {
    this.#closed = true;
    const all = [...this.#entries.values()];
    this.#entries.clear();
    await Promise.allSettled(all.map((e) => e.endpoint.close()));
  }
}
