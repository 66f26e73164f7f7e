// How requests reach the API server (docs/operator.md, "Connections to the API server"). Two undici Agents for the life
// of the client, both speaking HTTP/2 as client-go does: one for requests (a fan-out of a hundred PATCHes after
// an idle spell costs one TLS handshake, not a hundred) and one for watches (long-lived streams; the pool opens
// another connection when one carries as many streams as the server allows). client-node alone would build a
// new Agent, a new TCP+TLS connection, for every request.
//
// Dead connections: a NAT, conntrack or load-balancer drop leaves a connection that neither answers nor
// closes. Every connection sends an HTTP/2 PING every PING_INTERVAL_MS, and one whose PING is unanswered when
// the next is due is closed (undici's h2 health check): its streams fail, watches are started again and
// requests retried, on a fresh connection. A request that times out also retires its Agent at once, so the
// retry never waits for the PING to tell. Nothing here depends on the server talking.
import { readFile } from 'node:fs/promises';
import type { RequestOptions } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import type { RequestContext } from '@kubernetes/client-node/dist/gen/http/http.js';
import { Agent, type Dispatcher } from 'undici';

/** Between PINGs on every connection; a dead one is found within twice this. */
export const PING_INTERVAL_MS = 10_000;

export type Lane = 'requests' | 'watches';

export class Transport {
  readonly #kc: KubeConfig;
  readonly #pingIntervalMs: number;
  readonly #lanes: Record<Lane, Promise<Dispatcher | undefined> | undefined> = { requests: undefined, watches: undefined };
  /** Agents retired or replaced, not yet closed. */
  readonly #retiring = new Set<Dispatcher>();

  constructor(kc: KubeConfig, opts: { pingIntervalMs?: number } = {}) {
    this.#kc = kc;
    this.#pingIntervalMs = opts.pingIntervalMs ?? PING_INTERVAL_MS;
  }

  /** The dispatcher of `lane`, made on first use (a failure to make it is not kept). */
  dispatcher(lane: Lane, ctx: RequestContext): Promise<Dispatcher | undefined> {
    const current = this.#lanes[lane];
    if (current) return current;
    const made = this.#newDispatcher(ctx, lane).catch((err: unknown) => {
      if (this.#lanes[lane] === made) this.#lanes[lane] = undefined;
      throw err;
    });
    this.#lanes[lane] = made;
    return made;
  }

  /**
   * A request on `lane` timed out: its connection may be dead. New requests go to a fresh Agent at once; the
   * old one finishes what it carries (each request has its own timeout) and is then closed.
   */
  retire(lane: Lane): void {
    const old = this.#lanes[lane];
    this.#lanes[lane] = undefined;
    void old?.then((d) => {
      if (!(d instanceof Agent)) return;
      this.#retiring.add(d);
      void d.close().catch(() => {}).finally(() => this.#retiring.delete(d));
    }, () => {});
  }

  /** Closes every connection, now. */
  async destroy(): Promise<void> {
    const all = await Promise.allSettled([this.#lanes.requests, this.#lanes.watches]);
    this.#lanes.requests = this.#lanes.watches = undefined;
    const agents = [...all.flatMap((r) => (r.status === 'fulfilled' && r.value instanceof Agent ? [r.value] : [])), ...this.#retiring];
    await Promise.allSettled(agents.map((a) => a.destroy()));
  }

  /** An Agent with the kubeconfig's TLS settings; behind a proxy, client-node's own dispatcher. */
  async #newDispatcher(ctx: RequestContext, lane: Lane): Promise<Dispatcher | undefined> {
    const tls: RequestOptions = {};
    await this.#kc.applyToHTTPSOptions(tls);
    const opts = this.#kc.createDispatcherOptions(this.#kc.getCurrentCluster(), {
      ca: tls.ca, cert: tls.cert, key: tls.key, pfx: tls.pfx, passphrase: tls.passphrase, rejectUnauthorized: tls.rejectUnauthorized, servername: tls.servername,
    });
    if (opts.type !== 'agent') return ctx.getDispatcher();
    return new Agent({
      connect: opts.connect,
      allowH2: true,
      h2Options: { pingInterval: this.#pingIntervalMs },
      // A watch may be quiet for minutes: its liveness is the PING's and the watch's own silence limit.
      ...(lane === 'watches' ? { bodyTimeout: 0 } : {}),
    });
  }
}

/**
 * A bearer token read from a file that someone else rotates (a projected ServiceAccount token, which the
 * kubelet rewrites; a kubeconfig's tokenFile): read again every TOKEN_REREAD_MS, as client-go does, and at
 * once after the API server refused it (401).
 */
export const TOKEN_REREAD_MS = 60_000;

export class TokenFile {
  readonly path: string;
  #token: string | undefined;
  #readAt = -Infinity;

  constructor(path: string) {
    this.path = path;
  }

  async token(): Promise<string> {
    if (this.#token === undefined || performance.now() - this.#readAt > TOKEN_REREAD_MS) {
      this.#token = (await readFile(this.path, 'utf8')).trim();
      this.#readAt = performance.now();
    }
    return this.#token;
  }

  /** The API server refused the token: read the file again; whether it now holds another token. */
  async refused(): Promise<boolean> {
    const before = this.#token;
    this.#readAt = -Infinity;
    return (await this.token()) !== before;
  }
}
