// The defaults that decide who meets whom and where apps read — the channel, the node names, the output names —
// and their record on each PgCluster (docs/upgrading.md, "What is kept"): written once, at its first reconcile, so that a
// release that changes a default never moves a live PgCluster. Pure.
import { createHash } from 'node:crypto';

export type NodeNameMode = 'ip' | 'dns' | 'hostname';

/** spec.output.podAnnotation when unset. */
export const DEFAULT_POD_ANNOTATION = 'pgcluster.io/peers';

/**
 * On the PgCluster: the defaults in force when the operator first reconciled it, for every defaulted value
 * that decides who meets whom or where apps read (docs/upgrading.md, "What is kept"). Written once; a later release that
 * changes a default never moves a live PgCluster.
 */
export const DEFAULTS_ANNOTATION = 'pgcluster.io/defaults';

/** The defaults a PgCluster keeps (DEFAULTS_ANNOTATION). */
export interface PinnedDefaults {
  channel: string;
  basename: string;
  mode: NodeNameMode;
  configMapName: string;
  podAnnotation: string;
}

/** What the defaults are computed from: the PgCluster's name, its record, and what its status says it used. */
export interface Recorded {
  metadata: { namespace: string; name: string; annotations?: Record<string, string> };
  status?: { channel?: string; podAnnotation?: string };
}

/**
 * `<namespace>_<name>`, lower-cased, [^a-z0-9_] -> "_", made a valid unquoted identifier: PgClusters of one
 * name in two namespaces on one database do not merge. Longer than 63 bytes (Postgres's identifier limit),
 * it is cut to 54 and ends in "_" and 8 hex digits of a hash of namespace/name, so it stays distinct.
 */
export function defaultChannel(namespace: string, name: string): string {
  let c = `${namespace}_${name}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  if (!/^[a-z_]/.test(c)) c = `_${c}`;
  if (c.length <= 63) return c;
  return `${c.slice(0, 54)}_${createHash('sha256').update(`${namespace}/${name}`).digest('hex').slice(0, 8)}`;
}

/**
 * This release's defaults for `pc`. A PgCluster reconciled by an earlier release that recorded nothing keeps
 * what its status says it used (status.channel, status.podAnnotation): that is what its nodes listen on and
 * its apps read.
 */
export function currentDefaults(pc: Recorded): PinnedDefaults {
  const { namespace, name } = pc.metadata;
  return {
    channel: pc.status?.channel || defaultChannel(namespace, name),
    basename: name,
    mode: 'ip',
    configMapName: `${name}-peers`,
    podAnnotation: pc.status?.podAnnotation ?? DEFAULT_POD_ANNOTATION,
  };
}

/** The defaults recorded on the PgCluster (undefined: none yet), or why the annotation cannot be read. */
export function pinnedDefaults(pc: Recorded): { ok: true; value: PinnedDefaults | undefined } | { ok: false; message: string } {
  const raw = pc.metadata.annotations?.[DEFAULTS_ANNOTATION];
  if (raw === undefined) return { ok: true, value: undefined };
  const bad = { ok: false as const, message: `annotation ${DEFAULTS_ANNOTATION} must be the JSON object the operator wrote ({"channel", "basename", "mode", "configMapName", "podAnnotation"}): restore it, or delete it to record this release's defaults (which may move the PgCluster to another channel)` };
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return bad;
  }
  const o = v as Partial<Record<keyof PinnedDefaults, unknown>>;
  const str = (x: unknown): x is string => typeof x === 'string';
  if (!o || typeof o !== 'object' || !str(o.channel) || !str(o.basename) || !str(o.configMapName) || !str(o.podAnnotation) || !(o.mode === 'ip' || o.mode === 'dns' || o.mode === 'hostname')) return bad;
  return { ok: true, value: { channel: o.channel, basename: o.basename, mode: o.mode, configMapName: o.configMapName, podAnnotation: o.podAnnotation } };
}

/** The annotation to record on a PgCluster that has none yet. */
export function defaultsToRecord(pc: Recorded): string {
  return JSON.stringify(currentDefaults(pc));
}

