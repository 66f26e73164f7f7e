// The PgCluster API (docs/architecture.md, "The API"; the user-facing contract) and its effective values once defaults are applied.
import { parseDuration } from './duration.ts';
import { isNonEmptySelector, type LabelSelector } from './selector.ts';

export const API_GROUP = 'pgcluster.io';
export const API_VERSION = 'v1alpha1';
export const PLURAL = 'pgclusters';
export const FINALIZER = 'pgcluster.io/finalizer';
export const NODE_NAME_ANNOTATION = 'pgcluster.io/node-name';
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'pgcluster-operator';
/**
 * The PgCluster's name under one key: a label on the ConfigMaps it owns, and the marker annotation on every pod
 * it annotated (so that what it wrote is removed when the pod stops matching or the PgCluster goes).
 */
export const CLUSTER_KEY = 'pgcluster.io/cluster';
/** spec.output.podAnnotation when unset. */
export const DEFAULT_POD_ANNOTATION = 'pgcluster.io/peers';

export type NodeNameMode = 'ip' | 'dns' | 'hostname';

export interface PgClusterSpec {
  selector?: LabelSelector;
  postgres?: { urlSecretRef?: { name?: string; key?: string } };
  channel?: string;
  heartbeatInterval?: string;
  peerTimeout?: string;
  nodeName?: { basename?: string; mode?: string; clusterDomain?: string };
  publishNotReadyPods?: boolean;
  maxPeers?: number;
  output?: { configMapName?: string; podAnnotation?: string };
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface PgClusterStatus {
  observedGeneration?: number;
  channel?: string;
  members?: number;
  peers?: number;
  droppedPeers?: number;
  unannouncedPods?: number;
  /** The pod annotation key last written ("" = none): a renamed or disabled key is removed from the pods. */
  podAnnotation?: string;
  conditions?: Condition[];
}

export interface PgCluster {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace: string;
    uid?: string;
    generation?: number;
    resourceVersion?: string;
    deletionTimestamp?: string | Date;
    finalizers?: string[];
    creationTimestamp?: string | Date;
  };
  spec: PgClusterSpec;
  status?: PgClusterStatus;
}

export interface EffectiveSpec {
  selector: LabelSelector;
  secretName: string;
  secretKey: string;
  channel: string;
  heartbeatMs: number;
  peerTimeoutMs: number;
  basename: string;
  mode: NodeNameMode;
  clusterDomain: string;
  publishNotReadyPods: boolean;
  maxPeers: number;
  configMapName: string;
  podAnnotation: string; // "" = off
}

export const CHANNEL_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;
const MIN_HEARTBEAT_MS = 1000;
const MAX_HEARTBEAT_MS = 3_600_000;
const LIBCLUSTER_HEARTBEAT_MS = 5000;

/** metadata.name lower-cased, [^a-z0-9_] -> "_", made a valid unquoted identifier. */
export function defaultChannel(name: string): string {
  let c = name.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  if (!/^[a-z_]/.test(c)) c = `_${c}`;
  return c.slice(0, 63);
}

/** The larger of 3 x heartbeat and 15s: libcluster_postgres nodes heartbeat every 5s. */
export function defaultPeerTimeoutMs(heartbeatMs: number): number {
  return Math.max(3 * heartbeatMs, 3 * LIBCLUSTER_HEARTBEAT_MS);
}

/** The output names with their defaults; needs no valid spec (the finalizer cleans up after any object). */
export function outputNames(pc: Pick<PgCluster, 'metadata' | 'spec'>): { configMapName: string; podAnnotation: string } {
  const o = pc.spec?.output;
  return { configMapName: o?.configMapName || `${pc.metadata.name}-peers`, podAnnotation: o?.podAnnotation ?? DEFAULT_POD_ANNOTATION };
}

export type SpecResult = { ok: true; spec: EffectiveSpec } | { ok: false; message: string };

/**
 * Applies the documented defaults (README, CRD descriptions) and re-checks what the CRD enforces, so that an object stored before a
 * stricter CRD (or with validation bypassed) is reported instead of misbehaving.
 */
export function effectiveSpec(pc: PgCluster): SpecResult {
  const s = pc.spec ?? {};
  const fail = (message: string): SpecResult => ({ ok: false, message });
  if (!isNonEmptySelector(s.selector)) return fail('spec.selector must have matchLabels or matchExpressions');
  const secretName = s.postgres?.urlSecretRef?.name;
  if (!secretName) return fail('spec.postgres.urlSecretRef.name is required');
  const channel = s.channel ?? defaultChannel(pc.metadata.name);
  if (!CHANNEL_PATTERN.test(channel)) return fail(`spec.channel "${channel}" must match ${CHANNEL_PATTERN.source}`);
  const heartbeatMs = parseDuration(s.heartbeatInterval ?? '5s');
  if (heartbeatMs === undefined || heartbeatMs < MIN_HEARTBEAT_MS || heartbeatMs > MAX_HEARTBEAT_MS) {
    return fail(`spec.heartbeatInterval "${s.heartbeatInterval}" must be a duration from 1s to 1h`);
  }
  let peerTimeoutMs = defaultPeerTimeoutMs(heartbeatMs);
  if (s.peerTimeout !== undefined) {
    const t = parseDuration(s.peerTimeout);
    if (t === undefined || t < 2 * heartbeatMs) {
      return fail(`spec.peerTimeout "${s.peerTimeout}" must be a duration of at least 2 x heartbeatInterval`);
    }
    peerTimeoutMs = t;
  }
  const mode = s.nodeName?.mode ?? 'ip';
  if (mode !== 'ip' && mode !== 'dns' && mode !== 'hostname') return fail(`spec.nodeName.mode "${mode}" must be ip, dns or hostname`);
  const podAnnotation = s.output?.podAnnotation ?? DEFAULT_POD_ANNOTATION;
  if (podAnnotation === NODE_NAME_ANNOTATION || podAnnotation === CLUSTER_KEY) {
    return fail(`spec.output.podAnnotation "${podAnnotation}" is a key the operator itself reads or writes on pods: choose another, such as ${DEFAULT_POD_ANNOTATION}`);
  }
  const maxPeers = s.maxPeers ?? 1000;
  if (!Number.isInteger(maxPeers) || maxPeers < 1) return fail('spec.maxPeers must be a positive integer');
  return {
    ok: true,
    spec: {
      selector: s.selector,
      secretName,
      secretKey: s.postgres?.urlSecretRef?.key || 'url',
      channel,
      heartbeatMs,
      peerTimeoutMs,
      basename: s.nodeName?.basename || pc.metadata.name,
      mode,
      clusterDomain: s.nodeName?.clusterDomain || 'cluster.local',
      publishNotReadyPods: s.publishNotReadyPods ?? false,
      maxPeers,
      ...outputNames(pc),
    },
  };
}
