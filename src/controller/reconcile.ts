// Level-based reconcile of one PgCluster (docs/architecture.md, "Observe, plan, apply"), as a recipe of named
// steps (src/controller/steps/, one file each): guard → observe → announce → plan (pure) → apply → record →
// next wake. The time is read once, at the start; a step that fails names itself in the error.
import { instant } from '../core/clock.ts';
import { errorMessage } from '../errors.ts';
import type { Context } from './context.ts';
import { announce } from './steps/announce.ts';
import { apply } from './steps/apply.ts';
import { guard } from './steps/guard.ts';
import { observe } from './steps/observe.ts';
import { plan } from './steps/plan.ts';
import { nextWake, record } from './steps/record.ts';

export { WRITE_CONCURRENCY } from './write/apply.ts';
export { RESYNC_MS } from './steps/record.ts';
export { TAKEN_RECHECK_MS } from './steps/apply.ts';

export type ReconcileResult = { requeueAfterMs?: number };

export async function reconcile(ctx: Context, key: string): Promise<ReconcileResult> {
  const t = instant(ctx.env.clock);
  const admission = await step('guard', () => guard(ctx, key, t));
  if (!admission.admitted) return {};
  const { pc, spec } = admission;
  const rt = ctx.runtimes.ensure(key, spec);
  const observed = await step('observe', () => observe(ctx, pc, spec, rt, t));
  await step('announce', () => announce(ctx.env, observed, t));
  const desired = await step('plan', () => plan(observed, t));
  const applied = await step('apply', () => apply(ctx, observed, desired));
  await step('record', () => record(ctx, observed, applied));
  return { requeueAfterMs: nextWake(rt, applied.at) };
}

/** A reconcile that failed in `step`: the error policy logs the step with the cause, the queue retries. */
export class ReconcileStepError extends Error {
  readonly step: string;
  constructor(step: string, cause: unknown) {
    super(`${step}: ${errorMessage(cause)}`, { cause });
    this.name = 'ReconcileStepError';
    this.step = step;
  }
}

async function step<T>(name: string, run: () => T | Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw new ReconcileStepError(name, err);
  }
}
