// The one place that talks to the Kubernetes API: plain JSON over client-node's auth and TLS, so list,
// watch and write all see objects in the same wire shape. Connections: transport.ts. A request is retried
// where the API server says it may be (429 with Retry-After: API Priority and Fairness) and where a rotated
// token file holds a new token (401); every other failure goes to the caller.
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import { HttpMethod, RequestContext } from '@kubernetes/client-node/dist/gen/http/http.js';
import { fetch, type Response } from 'undici';
import { apiError, isNotFound, KubeTimeoutError, resourceOf, type ObjectList } from './api.ts';
import { TokenFile, Transport, type Lane } from './transport.ts';

export * from './api.ts';

export type WriteVerb = 'create' | 'patch' | 'update' | 'delete';

export interface KubeClientHooks {
  /** Every write, so that writes are visible as a metric. */
  onWrite?(verb: WriteVerb, resource: string): void;
  /** Every request but watches, when its answer has been read (or it failed): how long it took. */
  onRequest?(method: string, resource: string, seconds: number): void;
  /** A request retried: throttled (429, after `waitMs`), or with a re-read token (401). */
  onRetry?(reason: 'throttled' | 'token', resource: string, waitMs: number): void;
  /** A request timed out: its connection was retired. */
  onTimeout?(resource: string): void;
}

export interface KubeClientOptions {
  /** A file holding the bearer token, rotated by someone else (in a pod: the projected ServiceAccount token). */
  tokenFile?: string;
  /** Between HTTP/2 PINGs on every connection (transport.ts). */
  pingIntervalMs?: number;
}

/** Per request unless the caller says otherwise: a request unanswered this long is abandoned (and retried by
 * its caller on a fresh connection). */
export const REQUEST_TIMEOUT_MS = 30_000;
/** 429s retried per request, as client-go's 10; each wait is the server's Retry-After, at most MAX_RETRY_AFTER_MS. */
export const MAX_THROTTLED_RETRIES = 10;
export const MAX_RETRY_AFTER_MS = 30_000;
/**
 * A watch that asked for bookmarks hears something from a healthy API server at least every minute (the
 * watch cache sends a bookmark per minute); one silent this long is ended and started again.
 */
export const WATCH_SILENCE_MS = 90_000;

/** The wait a 429 asks for: Retry-After in seconds (or an HTTP date), 1 s if it says nothing usable. */
export function retryAfterMs(header: string | null, now = Date.now()): number {
  const seconds = Number(header);
  let ms = header !== null && header.trim() !== '' && Number.isFinite(seconds) ? seconds * 1000 : header ? Date.parse(header) - now : NaN;
  if (!Number.isFinite(ms) || ms < 0) ms = 1000;
  return Math.min(Math.max(ms, 100), MAX_RETRY_AFTER_MS);
}

function isTimeout(err: unknown): boolean {
  return err instanceof Error && (err.name === 'TimeoutError' || (err.cause instanceof Error && err.cause.name === 'TimeoutError'));
}

export type PatchType = 'merge' | 'json' | 'strategic';
const PATCH_CONTENT_TYPE: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  json: 'application/json-patch+json',
  strategic: 'application/strategic-merge-patch+json',
};

export class KubeClient {
  readonly kc: KubeConfig;
  readonly server: string;
  #hooks: KubeClientHooks;
  readonly #transport: Transport;
  readonly #tokenFile: TokenFile | undefined;

  constructor(kc: KubeConfig, hooks: KubeClientHooks = {}, opts: KubeClientOptions = {}) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster: set KUBECONFIG or run in a pod');
    this.kc = kc;
    this.server = cluster.server.replace(/\/$/, '');
    this.#hooks = hooks;
    this.#transport = new Transport(kc, { pingIntervalMs: opts.pingIntervalMs });
    this.#tokenFile = opts.tokenFile ? new TokenFile(opts.tokenFile) : undefined;
  }

  /** Sends one request with the kubeconfig's credentials; answers the response, whatever its status. */
  async #send(method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE', path: string, opts: { body?: unknown; contentType?: string; query?: Record<string, string | undefined>; lane: Lane; signal: AbortSignal }): Promise<{ url: URL; res: Response }> {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
    const ctx = new RequestContext(url.toString(), HttpMethod[method]);
    await this.kc.applySecurityAuthentication(ctx);
    const headers: Record<string, string> = { ...ctx.getHeaders(), Accept: 'application/json' };
    if (this.#tokenFile) headers.Authorization = `Bearer ${await this.#tokenFile.token()}`;
    if (opts.body !== undefined) headers['Content-Type'] = opts.contentType ?? 'application/json';
    const res = await fetch(url, {
      method,
      headers,
      dispatcher: await this.#transport.dispatcher(opts.lane, ctx),
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: opts.signal,
    });
    return { url, res };
  }

  async request<T>(method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE', path: string, opts: { body?: unknown; contentType?: string; query?: Record<string, string | undefined>; timeoutMs?: number } = {}): Promise<T> {
    const resource = resourceOf(path);
    let throttled = 0;
    let tokenRetried = false;
    for (;;) {
      const started = performance.now();
      let text: string;
      let answer: { url: URL; res: Response };
      try {
        answer = await this.#send(method, path, { ...opts, lane: 'requests', signal: AbortSignal.timeout(opts.timeoutMs ?? REQUEST_TIMEOUT_MS) });
        text = await answer.res.text();
      } catch (err) {
        if (isTimeout(err)) {
          this.#transport.retire('requests');
          this.#hooks.onTimeout?.(resource);
          throw new KubeTimeoutError(method, path, opts.timeoutMs ?? REQUEST_TIMEOUT_MS, err);
        }
        throw err;
      } finally {
        this.#hooks.onRequest?.(method, resource, (performance.now() - started) / 1000);
      }
      const { res } = answer;
      if (res.ok) return (text ? JSON.parse(text) : undefined) as T;
      if (res.status === 429 && throttled < MAX_THROTTLED_RETRIES) {
        throttled++;
        const wait = retryAfterMs(res.headers.get('retry-after'));
        this.#hooks.onRetry?.('throttled', resource, wait);
        await sleep(wait, undefined, { ref: false });
        continue;
      }
      if (res.status === 401 && this.#tokenFile && !tokenRetried && await this.#tokenFile.refused()) {
        tokenRetried = true;
        this.#hooks.onRetry?.('token', resource, 0);
        continue;
      }
      throw apiError(method, answer.url, res, text);
    }
  }

  /** Closes every connection (the process is ending, or a test is done with this client). */
  close(): Promise<void> {
    return this.#transport.destroy();
  }

  get<T>(path: string, opts: { timeoutMs?: number } = {}): Promise<T> {
    return this.request<T>('GET', path, opts);
  }

  /** GET that answers undefined for 404. */
  async getOptional<T>(path: string): Promise<T | undefined> {
    try {
      return await this.get<T>(path);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async list<T>(path: string, query: Record<string, string | undefined> = {}): Promise<ObjectList<T>> {
    const items: T[] = [];
    let cont: string | undefined;
    let resourceVersion = '';
    do {
      const page = await this.request<ObjectList<T>>('GET', path, { query: { ...query, limit: '500', continue: cont } });
      items.push(...page.items);
      resourceVersion = page.metadata.resourceVersion;
      cont = page.metadata.continue || undefined;
    } while (cont);
    return { items, metadata: { resourceVersion } };
  }

  async create<T>(path: string, body: unknown, resource: string, opts: { timeoutMs?: number } = {}): Promise<T> {
    this.#hooks.onWrite?.('create', resource);
    return this.request<T>('POST', path, { body, query: { fieldManager: 'pgcluster-operator' }, ...opts });
  }

  async patch<T>(path: string, body: unknown, resource: string, type: PatchType = 'merge'): Promise<T> {
    this.#hooks.onWrite?.('patch', resource);
    return this.request<T>('PATCH', path, { body, contentType: PATCH_CONTENT_TYPE[type], query: { fieldManager: 'pgcluster-operator' } });
  }

  async update<T>(path: string, body: unknown, resource: string, opts: { timeoutMs?: number } = {}): Promise<T> {
    this.#hooks.onWrite?.('update', resource);
    return this.request<T>('PUT', path, { body, query: { fieldManager: 'pgcluster-operator' }, ...opts });
  }

  /** DELETE that treats 404 as done. */
  async delete(path: string, resource: string): Promise<void> {
    this.#hooks.onWrite?.('delete', resource);
    try {
      await this.request('DELETE', path);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /**
   * Starts a watch; `done` is called once when it ends for any reason (null: the server closed it). The
   * server ends it after `timeoutSeconds` (default 300). A stream silent too long is ended here: with
   * bookmarks, WATCH_SILENCE_MS; without, a minute past its timeout. A dead connection is found sooner, by
   * its PINGs (transport.ts). (client-node's Watch ends any watch silent for 30 s: every quiet namespace,
   * every 30 s.)
   */
  async watch(path: string, query: Record<string, string | undefined>, onEvent: (type: string, obj: unknown) => void, done: (err: unknown) => void): Promise<AbortController> {
    const controller = new AbortController();
    const timeoutSeconds = query.timeoutSeconds ?? '300';
    const silenceLimitMs = query.allowWatchBookmarks === 'true' ? WATCH_SILENCE_MS : Number(timeoutSeconds) * 1000 + 60_000;
    let finished = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (err: unknown) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      controller.abort();
      done(err);
    };
    const heardFromServer = () => {
      clearTimeout(timer);
      timer = setTimeout(() => finish(new Error(`watch ${path}: nothing from the API server in ${silenceLimitMs / 1000} s`)), silenceLimitMs);
      timer.unref();
    };
    try {
      heardFromServer();
      const { url, res } = await this.#send('GET', path, { query: { ...query, timeoutSeconds, watch: 'true' }, lane: 'watches', signal: controller.signal });
      if (!res.ok) {
        // A refused token: the next try reads the file again.
        if (res.status === 401) await this.#tokenFile?.refused().catch(() => false);
        throw apiError('GET', url, res, await res.text());
      }
      void (async () => {
        const decoder = new TextDecoder();
        let buffered = '';
        try {
          for await (const chunk of res.body ?? []) {
            heardFromServer();
            buffered += decoder.decode(chunk as Uint8Array, { stream: true });
            // One event per line; a chunk often holds many (a fan-out's events come back together): scan it
            // once from a moving start rather than cutting the buffer after every line.
            let start = 0;
            for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n', start)) {
              const line = buffered.slice(start, nl);
              start = nl + 1;
              if (!/\S/.test(line)) continue;
              const event = JSON.parse(line) as { type: string; object: unknown };
              onEvent(event.type, event.object);
            }
            if (start > 0) buffered = buffered.slice(start);
          }
          finish(null);
        } catch (err) {
          finish(err);
        }
      })();
    } catch (err) {
      finish(err);
    }
    return controller;
  }
}

