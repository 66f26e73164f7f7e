// The error policy (docs/architecture.md, "Errors"): what a user must fix is a condition that reconcile
// writes (it never throws for it); a reconcile that throws failed for a reason that may pass, and is logged
// and retried with per-key backoff by the work queue.
import { errorMessage } from '../errors.ts';
import type { Context } from './context.ts';

/** A transient failure: logged with context; the queue retries after `retryInMs`. */
export function errorPolicy(ctx: Context, key: string, err: unknown, retryInMs: number): void {
  ctx.metrics.reconcileErrors.inc({ controller: 'pgcluster' });
  ctx.log.warn({ pgcluster: key, err: errorMessage(err), retryInMs }, 'reconcile failed; retrying with backoff');
}
