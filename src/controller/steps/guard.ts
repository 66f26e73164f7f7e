// Step 1, guard: whether this PgCluster is to be reconciled at all. Gone: forget it. Its pod watches not
// filled yet: wait (publishing now would publish too few members). Deleting: run the finalizer. No finalizer
// or no record of its defaults yet: add them. An invalid spec: say so in the status and stop announcing. Otherwise: the PgCluster and its
// effective spec.
import type { ConditionInput } from '../../core/conditions.ts';
import type { Instant } from '../../core/clock.ts';
import { keyLabels, splitKey } from '../../core/key.ts';
import { DEFAULTS_ANNOTATION, FINALIZER, defaultsToRecord, effectiveSpec, podWatchSelectors, type EffectiveSpec } from '../../core/spec.ts';
import type { PgClusterObject } from '../../kube/resources.ts';
import { CONDITION_TYPES } from '../../metrics.ts';
import type { Context } from '../context.ts';
import { planStatus } from '../plan/status.ts';
import { applyStatus, memoKeys } from '../write/apply.ts';
import { applyDeps } from './apply.ts';
import { finalize } from './finalize.ts';

export type Admission = { admitted: false } | { admitted: true; pc: PgClusterObject; spec: EffectiveSpec };

const DONE: Admission = { admitted: false };

export async function guard(ctx: Context, key: string, t: Instant): Promise<Admission> {
  const [ns, name] = splitKey(key);
  // As we last wrote it, until the cache has caught up: a reconcile queued meanwhile (a pod event) must not
  // add the finalizer again against the old resourceVersion (a 409 for every new PgCluster).
  const pc = ctx.writes.memo.observe(memoKeys.pgcluster(ns, name), ctx.caches.pgclusters.get(ns, name));
  if (!pc) {
    forget(ctx, key);
    return DONE;
  }
  // The watch's first sync queues the PgCluster again.
  if (!ctx.caches.pods.synced(ns, podWatchSelectors(pc))) return DONE;
  if (pc.metadata.deletionTimestamp) {
    // The finalizer's removals must not race annotation writes still in flight.
    await ctx.runtimes.get(key)?.stopFanOut();
    await finalize(ctx, pc, () => forget(ctx, key));
    return DONE;
  }
  const finalizers = pc.metadata.finalizers ?? [];
  const recorded = pc.metadata.annotations?.[DEFAULTS_ANNOTATION] !== undefined;
  if (!finalizers.includes(FINALIZER) || !recorded) {
    // One write: our finalizer, and the defaults this PgCluster keeps from now on (docs/upgrading.md, "What is kept").
    const written = await ctx.writes.writer.setFinalizers(pc, finalizers.includes(FINALIZER) ? finalizers : [...finalizers, FINALIZER], recorded ? undefined : { [DEFAULTS_ANNOTATION]: defaultsToRecord(pc) });
    ctx.writes.memo.record(memoKeys.pgcluster(ns, name), pc, written);
    return DONE; // the update event requeues us with the new resourceVersion
  }
  const resolved = effectiveSpec(pc);
  if (!resolved.ok) {
    forget(ctx, key);
    const invalid: ConditionInput = { type: 'Ready', status: 'False', reason: 'InvalidSpec', message: resolved.message };
    await applyStatus(applyDeps(ctx), pc, planStatus(pc, ctx.writes.memo.observe(memoKeys.status(ns, name), pc), {}, [invalid], t.wall));
    ctx.env.metrics.setConditions(ns, name, [invalid]);
    return DONE;
  }
  return { admitted: true, pc, spec: resolved.spec };
}

/** No runtime for `key` any more: heartbeats, listening and annotation writes stop; its metrics go. */
export function forget(ctx: Pick<Context, 'secrets' | 'runtimes' | 'env'>, key: string): void {
  ctx.secrets.forget(key);
  if (!ctx.runtimes.forget(key)) return;
  const m = ctx.env.metrics;
  const labels = keyLabels(key);
  for (const g of [m.members, m.peers, m.droppedPeers, m.notifyFlood]) g.remove(labels);
  m.setConditions(labels.namespace, labels.name, [], CONDITION_TYPES);
}
