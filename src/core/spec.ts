// The PgCluster API (docs/architecture.md, "The API"; the user-facing contract) and its effective values once defaults are applied.
import { currentDefaults, DEFAULT_POD_ANNOTATION, pinnedDefaults, type NodeNameMode } from './defaults.ts';
import { parseDuration } from './duration.ts';
import { isNonEmptySelector, selectorProblem, selectorString, type LabelSelector } from './selector.ts';

export const API_GROUP = 'pgcluster.io';
export const API_VERSION = 'v1alpha1';
export const PLURAL = 'pgclusters';
export const FINALIZER = 'pgcluster.io/finalizer';
export const NODE_NAME_ANNOTATION = 'pgcluster.io/node-name';
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'pgcluster-operator';
/**
 * The PgCluster's name under one key: a label on the ConfigMaps it owns. Versions before 0.1.0's ownership
 * markers (core/ownership.ts) also put it on the pods they annotated; such a marker is still honoured.
 */
export const CLUSTER_KEY = 'pgcluster.io/cluster';
/** The pod annotations that say which PgCluster wrote which key (core/ownership.ts). */
export const OWNER_MARKER_PREFIX = 'pgcluster.io/owner-';
/**
 * On every pod the operator has written an annotation on. Its pod cache holds only the pods some PgCluster
 * selects and the pods with this label (kube/watchSet.ts), so it still sees a pod that left every selector,
 * to take its annotation off. Never removed: it only says "look here".
 */
export const ANNOTATED_LABEL = 'pgcluster.io/annotated';
export const ANNOTATED_SELECTOR = `${ANNOTATED_LABEL}=true`;
/**
 * The pod readiness gate (docs/readiness-gate.md, "Rollouts paced by discovery"): a pod whose spec.readinessGates lists this
 * condition type gets it True once its node name is in every output of its PgCluster.
 */
export const READINESS_GATE = 'pgcluster.io/published';

export type { NodeNameMode } from './defaults.ts';
export { DEFAULT_POD_ANNOTATION, DEFAULTS_ANNOTATION, defaultChannel, defaultsToRecord, pinnedDefaults, type PinnedDefaults } from './defaults.ts';

export interface PgClusterSpec {
  selector?: LabelSelector;
  postgres?: {
    urlSecretRef?: { name?: string; key?: string };
    tls?: { sslmode?: string; caSecretRef?: { name?: string; key?: string }; clientCertSecretRef?: { name?: string } };
  };
  channel?: string;
  heartbeatInterval?: string;
  peerTimeout?: string;
  nodeName?: { basename?: string; mode?: string; clusterDomain?: string };
  publishNotReadyPods?: boolean;
  maxPeers?: number;
  minMembers?: number;
  output?: { configMapName?: string; podAnnotation?: string; podAnnotationFormat?: string; annotationMinInterval?: string; service?: { name?: string } };
  auth?: { secretRef?: { name?: string; key?: string; previousKey?: string }; acceptUnsigned?: boolean };
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
  /** Selected pods whose annotation is left alone: another PgCluster owns the key there, or no PgCluster. */
  conflictingPods?: number;
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
    annotations?: Record<string, string>;
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
  /** spec.postgres.tls (docs/postgres.md, "TLS"); undefined = none. */
  tls: EffectiveTls | undefined;
  channel: string;
  heartbeatMs: number;
  peerTimeoutMs: number;
  basename: string;
  mode: NodeNameMode;
  clusterDomain: string;
  publishNotReadyPods: boolean;
  maxPeers: number;
  /** 0 = no minimum: no Degraded condition. */
  minMembers: number;
  configMapName: string;
  podAnnotation: string; // "" = off
  /** What the annotation carries (README, "Outputs"): the names, or the version of the ConfigMap's list. */
  podAnnotationFormat: PodAnnotationFormat;
  /** The quiet time between one annotation fan-out's end and the next one's start (controller/write/fanout.ts). */
  annotationMinIntervalMs: number;
  /** The headless Service of the peers' IPs (DNS output); "" = off. */
  serviceName: string;
  /** Signed side-channel messages (docs/protocol.md, "Authenticated peers"); undefined = off. */
  auth: EffectiveAuth | undefined;
}

export interface EffectiveAuth {
  secretName: string;
  /** The Secret's key holding the key that signs (and verifies). */
  key: string;
  /** The Secret's key that may hold a second key, accepted for verification only (rotation). */
  previousKey: string;
  /** false: names heard only as bare payloads on the channel are not published. */
  acceptUnsigned: boolean;
}

export interface EffectiveTls {
  /** Replaces the URL's sslmode; undefined: the URL's (verify-full if it names none and a CA is given). */
  sslmode: string | undefined;
  /** The Secret key holding the PEM CA bundle. */
  ca: { secretName: string; key: string } | undefined;
  /** A kubernetes.io/tls Secret: the client certificate under tls.crt, its key under tls.key. */
  clientCert: { secretName: string } | undefined;
}

/** spec.output.podAnnotationFormat's values (README, "Outputs"). */
export const POD_ANNOTATION_FORMATS = ['list', 'version'] as const;
export type PodAnnotationFormat = (typeof POD_ANNOTATION_FORMATS)[number];

/** spec.postgres.tls.sslmode's values: libpq's. */
export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'];
/** Where a kubernetes.io/tls Secret holds the certificate and the key. */
export const TLS_CERT_KEY = 'tls.crt';
export const TLS_KEY_KEY = 'tls.key';

/** spec.postgres.tls with its defaults, or what is wrong with it. */
export function effectiveTls(t: NonNullable<PgClusterSpec['postgres']>['tls']): EffectiveTls | string | undefined {
  if (t === undefined) return undefined;
  if (t.sslmode !== undefined && !SSL_MODES.includes(t.sslmode)) return `spec.postgres.tls.sslmode "${t.sslmode}" must be one of ${SSL_MODES.join(', ')}`;
  if (t.caSecretRef && !t.caSecretRef.name) return 'spec.postgres.tls.caSecretRef.name is required: the Secret holding the CA certificate';
  if (t.clientCertSecretRef && !t.clientCertSecretRef.name) return 'spec.postgres.tls.clientCertSecretRef.name is required: the kubernetes.io/tls Secret holding the client certificate';
  const ca = t.caSecretRef?.name ? { secretName: t.caSecretRef.name, key: t.caSecretRef.key || 'ca.crt' } : undefined;
  const weak = t.sslmode === 'disable' || t.sslmode === 'allow' || t.sslmode === 'prefer';
  if (weak && (ca || t.clientCertSecretRef)) return `spec.postgres.tls.sslmode "${t.sslmode}" would not use the CA or client certificate of spec.postgres.tls: use require, verify-ca or verify-full`;
  return { sslmode: t.sslmode, ca, clientCert: t.clientCertSecretRef?.name ? { secretName: t.clientCertSecretRef.name } : undefined };
}

export const CHANNEL_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;
const MIN_HEARTBEAT_MS = 1000;
const MAX_HEARTBEAT_MS = 3_600_000;
const LIBCLUSTER_HEARTBEAT_MS = 5000;

/** The larger of 3 x heartbeat and 15s: libcluster_postgres nodes heartbeat every 5s. */
export function defaultPeerTimeoutMs(heartbeatMs: number): number {
  return Math.max(3 * heartbeatMs, 3 * LIBCLUSTER_HEARTBEAT_MS);
}

/** The output names with their defaults; needs no valid spec (the finalizer cleans up after any object). */
export function outputNames(pc: Pick<PgCluster, 'metadata' | 'spec'> & { status?: PgClusterStatus }): { configMapName: string; podAnnotation: string; serviceName: string } {
  const o = pc.spec?.output;
  const pinned = pinnedDefaults(pc);
  const d = (pinned.ok && pinned.value) || currentDefaults(pc);
  return {
    configMapName: o?.configMapName || d.configMapName,
    podAnnotation: o?.podAnnotation ?? d.podAnnotation,
    serviceName: o?.service ? o.service.name || `${pc.metadata.name}-peers` : '',
  };
}

/** A Service name: a DNS-1035 label. */
export const SERVICE_NAME_PATTERN = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;

export type SpecResult = { ok: true; spec: EffectiveSpec } | { ok: false; message: string };

/**
 * Applies the documented defaults (README, CRD descriptions) and re-checks what the CRD enforces, so that an object stored before a
 * stricter CRD (or with validation bypassed) is reported instead of misbehaving.
 */
export function effectiveSpec(pc: PgCluster): SpecResult {
  const s = pc.spec ?? {};
  const fail = (message: string): SpecResult => ({ ok: false, message });
  if (!isNonEmptySelector(s.selector)) return fail('spec.selector must have matchLabels or matchExpressions');
  const badSelector = selectorProblem(s.selector);
  if (badSelector) return fail(`spec.selector: ${badSelector}`);
  const secretName = s.postgres?.urlSecretRef?.name;
  if (!secretName) return fail('spec.postgres.urlSecretRef.name is required');
  const tls = effectiveTls(s.postgres?.tls);
  if (typeof tls === 'string') return fail(tls);
  const pinned = pinnedDefaults(pc);
  if (!pinned.ok) return fail(pinned.message);
  const d = pinned.value ?? currentDefaults(pc);
  const channel = s.channel ?? d.channel;
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
  const mode = s.nodeName?.mode ?? d.mode;
  if (mode !== 'ip' && mode !== 'dns' && mode !== 'hostname') return fail(`spec.nodeName.mode "${mode}" must be ip, dns or hostname`);
  const names = outputNames(pc);
  const podAnnotation = names.podAnnotation;
  if (podAnnotation === NODE_NAME_ANNOTATION || podAnnotation === CLUSTER_KEY || podAnnotation.startsWith(OWNER_MARKER_PREFIX)) {
    return fail(`spec.output.podAnnotation "${podAnnotation}" is a key the operator itself reads or writes on pods: choose another, such as ${DEFAULT_POD_ANNOTATION}`);
  }
  if (names.serviceName && !SERVICE_NAME_PATTERN.test(names.serviceName)) {
    return fail(`spec.output.service.name "${names.serviceName}" must be a Service name (a DNS-1035 label: lower-case letters, digits and '-', starting with a letter, at most 63); set spec.output.service.name when the PgCluster's own name is not one`);
  }
  const annotationMinIntervalMs = parseDuration(s.output?.annotationMinInterval ?? '0s');
  if (annotationMinIntervalMs === undefined || annotationMinIntervalMs > MAX_HEARTBEAT_MS) {
    return fail(`spec.output.annotationMinInterval "${s.output?.annotationMinInterval}" must be a duration from 0s to 1h`);
  }
  const podAnnotationFormat = s.output?.podAnnotationFormat ?? 'list';
  if (!(POD_ANNOTATION_FORMATS as readonly string[]).includes(podAnnotationFormat)) return fail(`spec.output.podAnnotationFormat "${podAnnotationFormat}" must be one of ${POD_ANNOTATION_FORMATS.join(', ')}`);
  const maxPeers = s.maxPeers ?? 1000;
  if (!Number.isInteger(maxPeers) || maxPeers < 1) return fail('spec.maxPeers must be a positive integer');
  const minMembers = s.minMembers ?? 0;
  if (!Number.isInteger(minMembers) || minMembers < 0) return fail('spec.minMembers must be an integer of at least 0');
  let auth: EffectiveAuth | undefined;
  if (s.auth !== undefined) {
    const ref = s.auth.secretRef;
    if (!ref?.name) return fail('spec.auth.secretRef.name is required: the Secret holding the key that signs side-channel messages');
    auth = { secretName: ref.name, key: ref.key || 'key', previousKey: ref.previousKey || 'previousKey', acceptUnsigned: s.auth.acceptUnsigned ?? true };
    if (auth.key === auth.previousKey) return fail(`spec.auth.secretRef.key and previousKey must differ (both are "${auth.key}")`);
  }
  return {
    ok: true,
    spec: {
      selector: s.selector,
      secretName,
      secretKey: s.postgres?.urlSecretRef?.key || 'url',
      tls,
      channel,
      heartbeatMs,
      peerTimeoutMs,
      basename: s.nodeName?.basename || d.basename,
      mode,
      clusterDomain: s.nodeName?.clusterDomain || 'cluster.local',
      publishNotReadyPods: s.publishNotReadyPods ?? false,
      maxPeers,
      minMembers,
      annotationMinIntervalMs,
      podAnnotationFormat: podAnnotationFormat as PodAnnotationFormat,
      ...names,
      auth,
    },
  };
}

/** The pod watches a PgCluster needs in its namespace, as label selectors: the pods it selects, the pods written on. */
export function podWatchSelectors(pc: Pick<PgCluster, 'spec'>): string[] {
  const sel = pc.spec?.selector;
  return isNonEmptySelector(sel) && !selectorProblem(sel) ? [ANNOTATED_SELECTOR, selectorString(sel)] : [ANNOTATED_SELECTOR];
}

/**
 * Past this many distinct selectors in one namespace, its pods are watched whole (one watch, label selector
 * ""): each watch holds a connection of its own to the API server, and a namespace of many PgClusters is
 * mostly clustered pods anyway.
 */
export const MAX_SELECTOR_WATCHES_PER_NAMESPACE = 16;
/** The label selector of a whole-namespace watch: every pod. */
export const ALL_PODS = '';

/** Every pod watch the PgClusters need: namespace -> label selectors. */
export function podWatches(pgclusters: Iterable<Pick<PgCluster, 'metadata' | 'spec'>>): Map<string, Set<string>> {
  const want = new Map<string, Set<string>>();
  for (const pc of pgclusters) {
    const ns = pc.metadata.namespace;
    let set = want.get(ns);
    if (!set) want.set(ns, (set = new Set()));
    for (const s of podWatchSelectors(pc)) set.add(s);
  }
  for (const [ns, set] of want) if (set.size - 1 > MAX_SELECTOR_WATCHES_PER_NAMESPACE) want.set(ns, new Set([ALL_PODS]));
  return want;
}
