// The one place that talks to the Kubernetes API: plain JSON over client-node's auth and TLS, so list,
// watch and write all see objects in the same wire shape.
import { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import { HttpMethod, RequestContext } from '@kubernetes/client-node/dist/gen/http/http.js';
import type { RequestOptions } from 'node:https';
import { Agent, fetch, type Dispatcher, type Response } from 'undici';

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean; blockOwnerDeletion?: boolean }[];
  finalizers?: string[];
  deletionTimestamp?: string;
  creationTimestamp?: string;
}
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
}
export interface ObjectList<T> {
  items: T[];
  metadata: { resourceVersion: string; continue?: string };
}

/** An API error with the HTTP status and the API server's own message. */
export class KubeApiError extends Error {
  readonly status: number;
  readonly reason: string;
  constructor(method: string, path: string, status: number, reason: string, message: string) {
    super(`${method} ${path}: ${status} ${reason}: ${message}`);
    this.name = 'KubeApiError';
    this.status = status;
    this.reason = reason;
  }
}

export type WriteVerb = 'create' | 'patch' | 'update' | 'delete';

export interface KubeClientHooks {
  /** Every write, so that writes are visible as a metric. */
  onWrite?(verb: WriteVerb, resource: string): void;
  /** Every request but watches, when its answer has been read (or it failed): how long it took. */
  onRequest?(method: string, resource: string, seconds: number): void;
}

/**
 * The resource an API path names, for metrics: `pods`, `configmaps`, `pgclusters/status`, `leases`; the
 * namespace and object names left out.
 */
export function resourceOf(path: string): string {
  const parts = (path.split('?')[0] ?? '').split('/').filter(Boolean);
  let i = parts[0] === 'api' ? 2 : 3; // api/v1/... or apis/<group>/<version>/...
  if (parts[i] === 'namespaces' && parts.length > i + 2) i += 2;
  const resource = parts[i] ?? 'unknown';
  const sub = parts[i + 2];
  return sub ? `${resource}/${sub}` : resource;
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
  // client-node builds a new undici Agent for every request, i.e. a new TCP+TLS connection each time. One
  // Agent for the life of the client instead, speaking HTTP/2 as client-go does: every request in flight
  // shares one connection, so a fan-out of a hundred PATCHes after an idle spell costs one TLS handshake, not
  // a hundred. Watches hold their stream for minutes: they get HTTP/1.1 connections of their own, so they
  // never use up the streams a connection may carry.
  #requests: Promise<Dispatcher | undefined> | undefined;
  #watches: Promise<Dispatcher | undefined> | undefined;

  constructor(kc: KubeConfig, hooks: KubeClientHooks = {}) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster: set KUBECONFIG or run in a pod');
    this.kc = kc;
    this.server = cluster.server.replace(/\/$/, '');
    this.#hooks = hooks;
  }

  /** Sends one request with the kubeconfig's credentials; answers the response, whatever its status. */
  async #send(method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE', path: string, opts: { body?: unknown; contentType?: string; query?: Record<string, string | undefined>; watch?: boolean; signal: AbortSignal }): Promise<{ url: URL; res: Response }> {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
    const ctx = new RequestContext(url.toString(), HttpMethod[method]);
    await this.kc.applySecurityAuthentication(ctx);
    const headers: Record<string, string> = { ...ctx.getHeaders(), Accept: 'application/json' };
    if (opts.body !== undefined) headers['Content-Type'] = opts.contentType ?? 'application/json';
    const dispatcher = opts.watch
      ? (this.#watches ??= this.#newDispatcher(ctx, false).catch((err: unknown) => { this.#watches = undefined; throw err; }))
      : (this.#requests ??= this.#newDispatcher(ctx, true).catch((err: unknown) => { this.#requests = undefined; throw err; }));
    const res = await fetch(url, {
      method,
      headers,
      dispatcher: await dispatcher,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: opts.signal,
    });
    return { url, res };
  }

  async request<T>(method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE', path: string, opts: { body?: unknown; contentType?: string; query?: Record<string, string | undefined> } = {}): Promise<T> {
    const started = performance.now();
    let text: string;
    let answer: { url: URL; res: Response };
    try {
      answer = await this.#send(method, path, { ...opts, signal: AbortSignal.timeout(30_000) });
      text = await answer.res.text();
    } finally {
      this.#hooks.onRequest?.(method, resourceOf(path), (performance.now() - started) / 1000);
    }
    if (!answer.res.ok) throw apiError(method, answer.url, answer.res, text);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** An Agent with the kubeconfig's TLS settings (HTTP/2 when asked); behind a proxy, client-node's own. */
  async #newDispatcher(ctx: RequestContext, h2: boolean): Promise<Dispatcher | undefined> {
    const tls: RequestOptions = {};
    await this.kc.applyToHTTPSOptions(tls);
    const opts = this.kc.createDispatcherOptions(this.kc.getCurrentCluster(), {
      ca: tls.ca, cert: tls.cert, key: tls.key, pfx: tls.pfx, passphrase: tls.passphrase, rejectUnauthorized: tls.rejectUnauthorized, servername: tls.servername,
    });
    if (opts.type === 'agent') return new Agent({ connect: opts.connect, allowH2: h2 });
    return ctx.getDispatcher();
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
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

  async create<T>(path: string, body: unknown, resource: string): Promise<T> {
    this.#hooks.onWrite?.('create', resource);
    return this.request<T>('POST', path, { body, query: { fieldManager: 'pgcluster-operator' } });
  }

  async patch<T>(path: string, body: unknown, resource: string, type: PatchType = 'merge'): Promise<T> {
    this.#hooks.onWrite?.('patch', resource);
    return this.request<T>('PATCH', path, { body, contentType: PATCH_CONTENT_TYPE[type], query: { fieldManager: 'pgcluster-operator' } });
  }

  async update<T>(path: string, body: unknown, resource: string): Promise<T> {
    this.#hooks.onWrite?.('update', resource);
    return this.request<T>('PUT', path, { body, query: { fieldManager: 'pgcluster-operator' } });
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
   * server ends it after `timeoutSeconds` (default 300); a stream silent for a minute longer than that is
   * dead, and is ended here. (client-node's Watch ends any watch silent for 30 s: every quiet namespace, every
   * 30 s.)
   */
  async watch(path: string, query: Record<string, string | undefined>, onEvent: (type: string, obj: unknown) => void, done: (err: unknown) => void): Promise<AbortController> {
    const controller = new AbortController();
    const timeoutSeconds = query.timeoutSeconds ?? '300';
    const silenceLimitMs = Number(timeoutSeconds) * 1000 + 60_000;
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
      const { url, res } = await this.#send('GET', path, { query: { ...query, timeoutSeconds, watch: 'true' }, watch: true, signal: controller.signal });
      if (!res.ok) throw apiError('GET', url, res, await res.text());
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

function apiError(method: string, url: URL, res: Response, text: string): KubeApiError {
  let reason = res.statusText;
  let message = text.slice(0, 500);
  try {
    const status = JSON.parse(text) as { reason?: string; message?: string };
    reason = status.reason ?? reason;
    message = status.message ?? message;
  } catch { /* not a Status object */ }
  return new KubeApiError(method, url.pathname, res.status, reason, message);
}

/** In-cluster config inside a pod, else KUBECONFIG / ~/.kube/config. */
export function loadKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  if (process.env.KUBERNETES_SERVICE_HOST && !process.env.KUBECONFIG) kc.loadFromCluster();
  else kc.loadFromDefault();
  return kc;
}

export function isConflict(err: unknown): boolean {
  return err instanceof KubeApiError && err.status === 409;
}
/** 422: the object (or a JSON Patch test) failed validation. */
export function isInvalid(err: unknown): boolean {
  return err instanceof KubeApiError && err.status === 422;
}
/** Refused for what was sent, not for when: invalid (422) or too large (413); sending it again cannot help. */
export function isRefused(err: unknown): boolean {
  return err instanceof KubeApiError && (err.status === 422 || err.status === 413);
}
export function isNotFound(err: unknown): boolean {
  return err instanceof KubeApiError && err.status === 404;
}
export function isForbidden(err: unknown): boolean {
  return err instanceof KubeApiError && err.status === 403;
}
