// Who owns what on a pod (docs/outputs.md, "Who owns what"). The operator writes or removes an annotation key on a pod
// only where it wrote that key itself, for the same PgCluster: each key it writes comes with a marker
// annotation of its own, `pgcluster.io/owner-<hash of the key>: "<pgcluster> <key>"`. Markers of distinct
// keys are distinct annotations, so PgClusters writing distinct keys on one pod never touch each other's
// marker (a merge patch of disjoint keys commutes), and one key has exactly one owner: the oldest PgCluster
// that claims it.
import { createHash } from 'node:crypto';
import { matchesSelector, type LabelSelector } from './selector.ts';
import { CLUSTER_KEY, OWNER_MARKER_PREFIX } from './spec.ts';


/** The marker annotation that says who wrote `annotationKey` (a valid annotation key: 63-char name part). */
export function markerKey(annotationKey: string): string {
  let m = markerKeys.get(annotationKey);
  if (m === undefined) {
    m = OWNER_MARKER_PREFIX + createHash('sha256').update(annotationKey).digest('hex').slice(0, 16);
    if (markerKeys.size >= 1024) markerKeys.clear(); // keys are few (one per PgCluster); a bound all the same
    markerKeys.set(annotationKey, m);
  }
  return m;
}
const markerKeys = new Map<string, string>();

export function markerValue(pgcluster: string, annotationKey: string): string {
  return `${pgcluster} ${annotationKey}`;
}

export interface OwnedKey {
  /** The annotation written. */
  key: string;
  /** Its marker annotation, and the marker's value (what a guarded removal tests for). */
  marker: string;
  markerValue: string;
}

/**
 * The annotation keys on a pod that `pgcluster` wrote, by their markers. A pod annotated by an earlier version
 * (one marker, `pgcluster.io/cluster: <name>`, for the key in status.podAnnotation) counts too: `legacyKey`.
 */
export function ownedKeys(annotations: Readonly<Record<string, string>>, pgcluster: string, legacyKey: string | undefined): OwnedKey[] {
  const owned: OwnedKey[] = [];
  for (const [marker, value] of Object.entries(annotations)) {
    if (!marker.startsWith(OWNER_MARKER_PREFIX)) continue;
    const space = value.indexOf(' ');
    if (space <= 0 || value.slice(0, space) !== pgcluster) continue;
    const key = value.slice(space + 1);
    if (markerKey(key) === marker) owned.push({ key, marker, markerValue: value });
  }
  if (annotations[CLUSTER_KEY] === pgcluster && legacyKey) owned.push({ key: legacyKey, marker: CLUSTER_KEY, markerValue: pgcluster });
  return owned;
}

/** The PgCluster named by the marker of `annotationKey` on a pod, if any. */
export function markedOwner(annotations: Readonly<Record<string, string>>, annotationKey: string): string | undefined {
  const value = annotations[markerKey(annotationKey)];
  if (value === undefined) return undefined;
  const space = value.indexOf(' ');
  return space > 0 && value.slice(space + 1) === annotationKey ? value.slice(0, space) : undefined;
}

/** A PgCluster that writes an annotation key on the pods it selects. */
export interface Claim {
  name: string;
  /** metadata.creationTimestamp (RFC 3339, as the API server writes it). */
  created: string;
  selector: LabelSelector;
  podAnnotation: string;
}

/** Older first: creationTimestamp, then name; a total order, so every reconcile agrees on one owner. */
export function olderThan(a: Pick<Claim, 'name' | 'created'>, b: Pick<Claim, 'name' | 'created'>): boolean {
  const ta = createdAt(a.created);
  const tb = createdAt(b.created);
  if (ta !== tb) return ta < tb;
  return a.name < b.name;
}

/** An object without a creationTimestamp (only in tests) is the youngest. */
function createdAt(created: string): number {
  const t = Date.parse(created);
  return Number.isNaN(t) ? Infinity : t;
}

/** Of the other PgClusters, the oldest one that claims `key` on a pod with `labels` and is older than `me`. */
export function olderClaimant(me: Pick<Claim, 'name' | 'created'>, rivals: readonly Claim[], key: string, labels: Readonly<Record<string, string>>): Claim | undefined {
  let owner: Claim | undefined;
  for (const r of rivals) {
    if (r.podAnnotation !== key || !olderThan(r, me) || !matchesSelector(labels, r.selector)) continue;
    if (!owner || olderThan(r, owner)) owner = r;
  }
  return owner;
}

/**
 * True when every annotation that differs between `before` and `after` is one `pgcluster` owns (a key it wrote
 * or its marker, on either side): the change is that PgCluster's own write coming back through the watch,
 * which it need not reconcile again. A fan-out to 1,000 pods is otherwise 1,000 reconciles of 1,000 pods.
 */
export function onlyOwnAnnotationsChanged(before: Readonly<Record<string, string>>, after: Readonly<Record<string, string>>, pgcluster: string): boolean {
  const own = new Set<string>();
  for (const side of [before, after]) for (const k of ownedKeys(side, pgcluster, undefined)) own.add(k.key).add(k.marker);
  for (const k of new Set([...Object.keys(before), ...Object.keys(after)])) {
    if (before[k] !== after[k] && !own.has(k)) return false;
  }
  return true;
}
