// The one place that talks to the Kubernetes API: plain JSON over client-node's auth and TLS, so list,
// watch and write all see objects in the same wire shape.
import { KubeConfig, Watch } from '@kubernetes/client-node';
import { HttpMethod, RequestContext } from '@kubernetes/client-node/dist/gen/http/http.js';
import type { RequestOptions } from 'node:https';
import { Agent, fetch, type Dispatcher } from 'undici';

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
  #watch: Watch;
  // client-node builds a new undici Agent for every request, i.e. a new TCP+TLS connection each time. One
  // Agent for the life of the client, speaking HTTP/2 as client-go does: every request in flight shares one
  // connection, so a fan-out of a hundred PATCHes after an idle spell costs one TLS handshake, not a hundred.
  #dispatcher: Promise<Dispatcher | undefined> | undefined;

  constructor(kc: KubeConfig, hooks: KubeClientHooks = {}) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster: set KUBECONFIG or run in a pod');
    this.kc = kc;
    this.server = cluster.server.replace(/\/$/, '');
    this.#hooks = hooks;
    this.#watch = new Watch(kc);
  }

  async request<T>(method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE', path: string, opts: { body?: unknown; contentType?: string; query?: Record<string, string | undefined> } = {}): Promise<T> {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
    const ctx = new RequestContext(url.toString(), HttpMethod[method]);
    await this.kc.applySecurityAuthentication(ctx);
    const headers: Record<string, string> = { ...ctx.getHeaders(), Accept: 'application/json' };
    if (opts.body !== undefined) headers['Content-Type'] = opts.contentType ?? 'application/json';
    this.#dispatcher ??= this.#newDispatcher(ctx).catch((err: unknown) => { this.#dispatcher = undefined; throw err; });
    const res = await fetch(url, {
      method,
      headers,
      dispatcher: await this.#dispatcher,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    if (!res.ok) {
      let reason = res.statusText;
      let message = text.slice(0, 500);
      try {
        const status = JSON.parse(text) as { reason?: string; message?: string };
        reason = status.reason ?? reason;
        message = status.message ?? message;
      } catch { /* not a Status object */ }
      throw new KubeApiError(method, url.pathname, res.status, reason, message);
    }
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** An HTTP/2-capable Agent with the kubeconfig's TLS settings; behind a proxy, client-node's own dispatcher. */
  async #newDispatcher(ctx: RequestContext): Promise<Dispatcher | undefined> {
    const tls: RequestOptions = {};
    await this.kc.applyToHTTPSOptions(tls);
    const opts = this.kc.createDispatcherOptions(this.kc.getCurrentCluster(), {
      ca: tls.ca, cert: tls.cert, key: tls.key, pfx: tls.pfx, passphrase: tls.passphrase, rejectUnauthorized: tls.rejectUnauthorized, servername: tls.servername,
    });
    if (opts.type === 'agent') return new Agent({ connect: opts.connect, allowH2: true });
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
      if (err instanceof KubeApiError && err.status === 404) return undefined;
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
      if (!(err instanceof KubeApiError && err.status === 404)) throw err;
    }
  }

  /** Starts a watch; `done` is called once when it ends for any reason. */
  watch(path: string, query: Record<string, string | undefined>, onEvent: (type: string, obj: unknown) => void, done: (err: unknown) => void): Promise<AbortController> {
    return this.#watch.watch(path, query, (type: string, obj: unknown) => onEvent(type, obj), done);
  }
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
export function isNotFound(err: unknown): boolean {
  return err instanceof KubeApiError && err.status === 404;
}
