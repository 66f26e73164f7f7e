// The error policy (docs/architecture.md, "Errors"): what a user must fix is a condition that reconcile
// writes (it never throws for it); a reconcile that throws failed for a reason that may pass, and is logged
// (with the step that failed) and retried with per-key backoff by the work queue.
import { errorMessage } from '../errors.ts';
import type { Env } from './context.ts';
import { ReconcileStepError } from './reconcile.ts';

/** A transient failure: logged with context; the queue retries after `retryInMs`. */
export function errorPolicy(env: Pick<Env, 'metrics' | 'log'>, key: string, err: unknown, retryInMs: number): void {
  env.metrics.reconcileErrors.inc({ controller: 'pgcluster' });
  const step = err instanceof ReconcileStepError ? err.step : undefined;
  env.log.warn({ pgcluster: key, step, err: errorMessage(err), retryInMs }, 'reconcile failed; retrying with backoff');
}
