// The Kubernetes API's shapes as the operator reads them: object metadata, lists, the API's errors (with the
// HTTP status and the API server's own message) and the questions asked of them.
import type { Response } from 'undici';

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

/** No answer within the request's timeout: its connection was replaced, and trying again goes to a fresh one. */
export class KubeTimeoutError extends Error {
  constructor(method: string, path: string, timeoutMs: number, cause: unknown) {
    super(`${method} ${path}: no answer from the API server within ${timeoutMs / 1000} s; the connection is replaced`, { cause });
    this.name = 'KubeTimeoutError';
  }
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

export function apiError(method: string, url: URL, res: Response, text: string): KubeApiError {
  let reason = res.statusText;
  let message = text.slice(0, 500);
  try {
    const status = JSON.parse(text) as { reason?: string; message?: string };
    reason = status.reason ?? reason;
    message = status.message ?? message;
  } catch { /* not a Status object */ }
  return new KubeApiError(method, url.pathname, res.status, reason, message);
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
