// metav1.Condition bookkeeping with cert-manager's rule: lastTransitionTime moves only when status flips.
import type { Condition, PgClusterStatus } from './spec.ts';

export type ConditionInput = Omit<Condition, 'lastTransitionTime'>;

export function setCondition(existing: readonly Condition[], next: ConditionInput, nowIso: string): Condition[] {
  const prev = existing.find((c) => c.type === next.type);
  const lastTransitionTime = prev && prev.status === next.status ? prev.lastTransitionTime : nowIso;
  const merged: Condition = { ...next, lastTransitionTime };
  return prev ? existing.map((c) => (c.type === next.type ? merged : c)) : [...existing, merged];
}

export function getCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** Status equality for the "skip the write when nothing changed" check. */
export function statusEqual(a: PgClusterStatus | undefined, b: PgClusterStatus): boolean {
  return canonical(a ?? {}) === canonical(b);
}

/** Every field, in one key order; absent counts as 0 (the API server may drop a 0 we never wrote). */
function canonical(s: PgClusterStatus): string {
  const { conditions: conds, ...rest } = s;
  const fields: Record<string, unknown> = { droppedPeers: 0, unannouncedPods: 0, conflictingPods: 0 };
  for (const [k, v] of Object.entries(rest)) if (v !== undefined) fields[k] = v;
  const conditions = [...(conds ?? [])]
    .map((c) => ({ ...c, lastTransitionTime: normalizeTime(c.lastTransitionTime) }))
    .sort((x, y) => (x.type < y.type ? -1 : 1));
  return JSON.stringify({
    fields: Object.keys(fields).sort().map((k) => [k, fields[k]]),
    conditions: conditions.map((c) => [c.type, c.status, c.reason, c.message, c.lastTransitionTime, c.observedGeneration]),
  });
}

// The API server stores RFC 3339 with second precision; compare at that precision.
function normalizeTime(t: string | Date): string {
  const d = t instanceof Date ? t : new Date(t);
  return Number.isNaN(d.getTime()) ? String(t) : d.toISOString().replace(/\.\d+Z$/, 'Z');
}

export function nowRfc3339(now: number): string {
  return new Date(now).toISOString().replace(/\.\d+Z$/, 'Z');
}
