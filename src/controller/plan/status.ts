// The status "transaction" (CloudNativePG's pattern): computed in full, written only when it differs from what
// is observed, with one Event per condition that changed (cert-manager's rule: lastTransitionTime moves only
// on a flip, core/conditions.ts). Pure: `now` comes in.
import { getCondition, nowRfc3339, setCondition, statusEqual, type ConditionInput } from '../../core/conditions.ts';
import type { Condition, PgClusterStatus } from '../../core/spec.ts';
import type { EventInput, PgClusterObject } from '../../kube/resources.ts';

export interface StatusWrite {
  status: PgClusterStatus;
  /** What the status was compared against (the cached PgCluster, or our last write). */
  before: PgClusterObject | undefined;
  /** Events for the conditions that changed, recorded once the status is written. */
  events: EventInput[];
}

/** Conditions whose True is the bad news (Kubernetes' "abnormal-true" polarity). */
const ABNORMAL_TRUE = new Set(['Degraded']);

/**
 * A status "transaction": computed in full, written only when it differs from what is observed; an Event
 * for each condition that changed, except a first healthy one (not news) and Unknown ones.
 */
export function planStatus(
  pc: PgClusterObject, observed: PgClusterObject | undefined,
  fields: Omit<PgClusterStatus, 'conditions' | 'observedGeneration'>, conditions: readonly ConditionInput[], now: number,
  /** Condition types that no longer apply (e.g. Degraded once minMembers is unset): removed. */
  drop: readonly string[] = [],
): StatusWrite | undefined {
  const before = observed?.status ?? {};
  const nowIso = nowRfc3339(now);
  let conds: Condition[] = (before.conditions ?? []).filter((c) => !drop.includes(c.type));
  for (const c of conditions) conds = setCondition(conds, { ...c, observedGeneration: pc.metadata.generation }, nowIso);
  const desired: PgClusterStatus = { ...before, ...fields, observedGeneration: pc.metadata.generation, conditions: conds };
  if (statusEqual(before, desired)) return undefined;
  const events: EventInput[] = [];
  for (const c of conditions) {
    const prev = getCondition(before.conditions, c.type);
    if (prev && prev.status === c.status && prev.reason === c.reason) continue;
    if (c.status === 'Unknown') continue;
    const bad = ABNORMAL_TRUE.has(c.type) ? c.status === 'True' : c.status !== 'True';
    if (!prev && !bad) continue;
    events.push({ type: bad ? 'Warning' : 'Normal', reason: c.reason, message: c.message });
  }
  return { status: desired, before: observed, events };
}

