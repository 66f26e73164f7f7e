// One PgEndpoint per distinct Postgres URL, shared by every PgCluster that uses it, closed with the last.
import { PgEndpoint, type EndpointHooks } from '../postgres/endpoint.ts';
import type { Logger } from '../log.ts';
import type { ParsedPgUrl } from '../postgres/connstring.ts';

export class EndpointPool {
  #entries = new Map<string, { endpoint: PgEndpoint; users: Set<string> }>();
  #log: Logger;
  #hooks: (endpointId: () => string) => EndpointHooks;
  #onCreate: (ep: PgEndpoint) => void;

  constructor(log: Logger, hooks: (endpointId: () => string) => EndpointHooks, onCreate: (ep: PgEndpoint) => void) {
    this.#log = log;
    this.#hooks = hooks;
    this.#onCreate = onCreate;
  }

  /** The endpoint for `url`, registering `user` (a PgCluster key) as one of its users. */
  acquire(url: string, user: string, parsed?: ParsedPgUrl): PgEndpoint {
    let entry = this.#entries.get(url);
    if (!entry) {
      let id = '';
      const endpoint = new PgEndpoint({ url, parsed, log: this.#log, hooks: this.#hooks(() => id) });
      id = endpoint.id;
      entry = { endpoint, users: new Set() };
      this.#entries.set(url, entry);
      this.#onCreate(endpoint);
    }
    entry.users.add(user);
    return entry.endpoint;
  }

  /** Drops `user` from the endpoint of `url`; the last user closes it. */
  release(url: string, user: string): void {
    const entry = this.#entries.get(url);
    if (!entry) return;
    entry.users.delete(user);
    if (entry.users.size === 0) {
      this.#entries.delete(url);
      void entry.endpoint.close();
    }
  }

  get size(): number {
    return this.#entries.size;
  }

  async closeAll(): Promise<void> {
    const all = [...this.#entries.values()];
    this.#entries.clear();
    await Promise.allSettled(all.map((e) => e.endpoint.close()));
  }
}
