// The error policy (docs/architecture.md, "Errors"): what a user must fix becomes a condition and an Event,
// and is looked at again at the next resync or change; anything else is logged and retried with per-key
// backoff by the work queue.
import type { ConditionInput } from '../core/conditions.ts';
import { errorMessage, type UserError } from '../errors.ts';
import { applyStatus, memoKeys } from './apply.ts';
import type { Context } from './context.ts';
import { planStatus } from './plan.ts';

/** A transient failure: logged with context; the queue retries after `retryInMs`. */
export function errorPolicy(ctx: Context, key: string, err: unknown, retryInMs: number): void {
  ctx.metrics.reconcileErrors.inc({ controller: 'pgcluster' });
  ctx.log.warn({ pgcluster: key, err: errorMessage(err), retryInMs }, 'reconcile failed; retrying with backoff');
}

/**
 * A UserError: Ready=False with its reason and message (the status write records the Event when the
 * condition changes, so it is recorded once, not at every attempt). No backoff retry: the caller requeues at
 * the resync interval.
 */
export async function reportUserError(ctx: Context, key: string, err: UserError): Promise<void> {
  ctx.metrics.reconcileErrors.inc({ controller: 'pgcluster' });
  ctx.log.info({ pgcluster: key, reason: err.reason, err: err.message }, 'reconcile stopped by a problem the user must fix');
  const i = key.indexOf('/');
  const pc = ctx.pgclusters.get(key.slice(0, i), key.slice(i + 1));
  if (!pc) return;
  const observed = ctx.written.observe(memoKeys.status(pc.metadata.namespace, pc.metadata.name), pc);
  const ready: ConditionInput = { type: 'Ready', status: 'False', reason: err.reason, message: err.message };
  await applyStatus(ctx, pc, planStatus(pc, observed, {}, [ready], ctx.clock.now()));
}
