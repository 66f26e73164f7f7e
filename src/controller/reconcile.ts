// Level-based reconcile of one PgCluster from the caches: desired outputs and status are computed from
// the pods and the peer table, and written only where they differ from what is observed.
import { setCondition, statusEqual, getCondition, nowRfc3339, type ConditionInput } from '../core/conditions.ts';
import { formatDuration } from '../core/duration.ts';
import { isEligible, podNodeName } from '../core/nodeName.ts';
import { annotationValue, configMapData, remotePeersFromConfigMap } from '../core/outputs.ts';
import { parseNodeName } from '../core/payload.ts';
import type { Member, Peer } from '../core/peerTable.ts';
import { matchesSelector } from '../core/selector.ts';
import {
  CLUSTER_LABEL, FINALIZER, MANAGED_BY, MANAGED_BY_LABEL, OWNER_ANNOTATION, effectiveSpec,
  type Condition, type EffectiveSpec, type PgClusterStatus,
} from '../core/spec.ts';
import { KubeApiError, isConflict } from '../kube/client.ts';
import { podView, type PodObject } from '../kube/pods.ts';
import {
  createConfigMap, createEvent, deleteConfigMap, getSecret, ownerReference, patchConfigMap, patchPodAnnotations,
  patchStatus, setFinalizers, type ConfigMapObject, type PgClusterObject,
} from '../kube/resources.ts';
import type { EndpointState } from '../postgres/endpoint.ts';
import { parsePgUrl } from '../postgres/connstring.ts';
import type { Context } from './context.ts';
import { ClusterRuntime } from './runtime.ts';

export type ReconcileResult = { requeueAfterMs?: number };

// Annotation PATCHes in flight at once: the fan-out to every member is most of the join latency (bench, 2
// cores, HTTP/2: 100 PATCHes ~115 ms 64 at a time, ~100 ms 256 at a time; more would buy little and load the
// API server harder than a polite client should).
export const WRITE_CONCURRENCY = 64;
/** Re-check everything at least this often, even with no event. */
const RESYNC_MS = 60_000;
/** A Secret read successfully is trusted this long (a change to it is seen within this plus RESYNC_MS):
 * without it 1,000 PgClusters GET their Secrets ~17 times a second. */
const SECRET_TTL_MS = 30_000;

export async function reconcile(ctx: Context, key: string): Promise<ReconcileResult> {
  const [ns, name] = splitKey(key);
  const pc = ctx.pgclusters.get(ns, name);
  if (!pc) {
    forgetCluster(ctx, key);
    return {};
  }
  if (pc.metadata.deletionTimestamp) {
    await finalize(ctx, pc, key);
    return {};
  }
  if (!(pc.metadata.finalizers ?? []).includes(FINALIZER)) {
    await setFinalizers(ctx.kube, pc, [...(pc.metadata.finalizers ?? []), FINALIZER]);
    // The update event requeues us with the new resourceVersion.
    return {};
  }

  const resolved = effectiveSpec(pc);
  if (!resolved.ok) {
    forgetCluster(ctx, key);
    await updateStatus(ctx, pc, {}, [
      { type: 'Ready', status: 'False', reason: 'InvalidSpec', message: resolved.message },
    ]);
    return {};
  }
  const spec = resolved.spec;
  const rt = runtimeFor(ctx, key, spec);
  const now = ctx.now();

  if (!rt.seeded) {
    // Remote peers published before an operator restart stay until they time out, so a restart never
    // drops a live peer from the outputs.
    const cm = ctx.configMaps.get(ns, spec.configMapName);
    const seeds = remotePeersFromConfigMap(cm?.data).filter((p) => parseNodeName(p.node).ok);
    rt.table.seedRemote(seeds, now);
    rt.seeded = true;
  }

  // Members: selected, eligible pods with a valid node name.
  const selected: PodObject[] = [];
  const members: Member[] = [];
  const unannounced: string[] = [];
  for (const pod of ctx.pods.inNamespace(ns)) {
    const view = podView(pod);
    if (!matchesSelector(view.labels, spec.selector) || view.deleting || view.terminated) continue;
    selected.push(pod);
    if (!isEligible(view, spec.publishNotReadyPods)) continue;
    const naming = podNodeName(view, spec);
    if (naming.ok) members.push({ node: naming.node, host: naming.host, pod: view.name });
    else if (naming.reason !== 'NoPodIP') unannounced.push(naming.message);
  }
  const dupes = dedupeMembers(members);
  if (dupes.length) unannounced.push(...dupes);
  const change = rt.table.setMembers(members, now);
  if ((change.added.length || change.removed.length) && rt.pendingChangeSince === undefined) rt.pendingChangeSince = performance.now();

  // Postgres: the Secret, the endpoint, heartbeats.
  const connection = await connect(ctx, pc, spec, rt);
  const state: EndpointState | undefined = rt.attachment?.endpoint.state();
  if (rt.attachment) rt.attachment.endpoint.setAnnouncer(key, { channel: spec.channel, intervalMs: spec.heartbeatMs, names: rt.table.memberNames() });
  if (state?.phase === 'Listening') {
    rt.everListening = true;
    rt.table.resume(now);
  } else {
    rt.table.pause(now); // silence proves nothing while the listener is down
  }
  rt.table.expire(now);
  const { peers, dropped } = rt.table.peers();

  // The ConfigMap first, alone: it is one write, and the fast path for readers; the fan-out of annotation
  // PATCHes would otherwise share the API server with it and delay it by the whole fan-out.
  await writeConfigMap(ctx, pc, spec, peers);
  // The key written before, if spec.output.podAnnotation has changed since: it comes off the pods.
  const writtenKey = ctx.written.observe(`status:${key}`, pc)?.status?.podAnnotation;
  await writeAnnotations(ctx, pc, spec, selected, peers, writtenKey !== spec.podAnnotation ? writtenKey : undefined);
  if (rt.pendingChangeSince !== undefined) {
    ctx.metrics.joinToPublished.observe((performance.now() - rt.pendingChangeSince) / 1000);
    rt.pendingChangeSince = undefined;
  }
  ctx.metrics.members.set({ namespace: ns, name }, rt.table.memberCount);
  ctx.metrics.peers.set({ namespace: ns, name }, peers.length);
  ctx.metrics.droppedPeers.set({ namespace: ns, name }, dropped);

  const remote = peers.filter((p) => p.source === 'remote').length;
  const ready = readyCondition(spec, connection, rt.everListening, state, rt.table.memberCount, remote, dropped, unannounced);
  await updateStatus(ctx, pc, { channel: spec.channel, members: rt.table.memberCount, peers: peers.length, droppedPeers: dropped, unannouncedPods: unannounced.length, podAnnotation: spec.podAnnotation }, [connection, ready]);

  const next = rt.table.nextExpiry();
  const requeue = next === undefined ? RESYNC_MS : Math.min(RESYNC_MS, Math.max(10, next - ctx.now() + 5));
  return { requeueAfterMs: requeue };
}

/** The error policy: log with context, back off per key (the queue does), surface as an Event once. */
export function errorPolicy(ctx: Context, key: string, err: unknown, retryInMs: number): void {
  ctx.metrics.reconcileErrors.inc({ controller: 'pgcluster' });
  const msg = err instanceof Error ? err.message : String(err);
  ctx.log.warn({ pgcluster: key, err: msg, retryInMs }, 'reconcile failed; retrying with backoff');
}

function splitKey(key: string): [string, string] {
  const i = key.indexOf('/');
  return [key.slice(0, i), key.slice(i + 1)];
}

function runtimeFor(ctx: Context, key: string, spec: EffectiveSpec): ClusterRuntime {
  let rt = ctx.runtimes.get(key);
  if (!rt) {
    rt = new ClusterRuntime(key, spec.peerTimeoutMs, spec.maxPeers);
    ctx.runtimes.set(key, rt);
  }
  rt.table.peerTimeoutMs = spec.peerTimeoutMs;
  rt.table.maxPeers = spec.maxPeers;
  return rt;
}

function forgetCluster(ctx: Context, key: string): void {
  const rt = ctx.runtimes.get(key);
  if (!rt) return;
  rt.detach(ctx.pool);
  ctx.runtimes.delete(key);
  const [namespace, name] = splitKey(key);
  for (const g of [ctx.metrics.members, ctx.metrics.peers, ctx.metrics.droppedPeers]) g.remove({ namespace, name });
}

/** Two pods with one node name (e.g. the same override): announce it once, and say so. */
function dedupeMembers(members: Member[]): string[] {
  const seen = new Map<string, string>();
  const problems: string[] = [];
  for (let i = members.length - 1; i >= 0; i--) {
    const m = members[i] as Member;
    const other = seen.get(m.node);
    if (other !== undefined) {
      problems.push(`pods ${m.pod} and ${other} have the same node name ${m.node}`);
      members.splice(i, 1);
    } else seen.set(m.node, m.pod);
  }
  return problems;
}

/** Resolves the Secret and attaches to the endpoint; returns the Connected condition. */
async function connect(ctx: Context, pc: PgClusterObject, spec: EffectiveSpec, rt: ClusterRuntime): Promise<ConditionInput> {
  const ns = pc.metadata.namespace;
  const key = rt.key;
  const fail = (reason: string, message: string): ConditionInput => {
    // Without a usable URL we stop heartbeats but keep the outputs as they are: nothing is lost.
    rt.detach(ctx.pool);
    return { type: 'Connected', status: 'False', reason, message };
  };
  const ref = `${spec.secretName}/${spec.secretKey}`;
  const a0 = rt.attachment;
  if (a0 && rt.secretReadAt !== undefined && rt.secretRef === ref && ctx.now() - rt.secretReadAt < SECRET_TTL_MS) {
    // The URL read moments ago: re-attach only follows a channel change.
    const a = rt.attach(ctx.pool, a0.url, spec.channel, (payload) => onPayload(ctx, key, payload));
    return connectedCondition(a.endpoint.state(), spec.channel, a.endpoint.id);
  }
  let secret;
  try {
    secret = await getSecret(ctx.kube, ns, spec.secretName);
  } catch (err) {
    if (err instanceof KubeApiError && err.status === 403) {
      return fail('SecretForbidden', `the operator may not read Secret ${ns}/${spec.secretName}: grant it get on secrets in this namespace`);
    }
    throw err;
  }
  if (!secret) return fail('SecretNotFound', `Secret ${ns}/${spec.secretName} not found: create it with the Postgres URI under key "${spec.secretKey}"`);
  const encoded = secret.data?.[spec.secretKey];
  if (encoded === undefined) {
    const keys = Object.keys(secret.data ?? {}).join(', ') || 'none';
    return fail('SecretKeyMissing', `Secret ${ns}/${spec.secretName} has no key "${spec.secretKey}" (keys: ${keys}): add it or set spec.postgres.urlSecretRef.key`);
  }
  const url = Buffer.from(encoded, 'base64').toString('utf8').trim();
  const parsed = parsePgUrl(url);
  if (!parsed.ok) return fail('InvalidURL', `Secret ${ns}/${spec.secretName} key "${spec.secretKey}": ${parsed.message}`);

  const a = rt.attach(ctx.pool, url, spec.channel, (payload) => onPayload(ctx, key, payload));
  rt.secretRef = ref;
  rt.secretReadAt = ctx.now();
  return connectedCondition(a.endpoint.state(), spec.channel, a.endpoint.id);
}

function onPayload(ctx: Context, key: string, payload: string): void {
  const rt = ctx.runtimes.get(key);
  if (!rt) return;
  const r = rt.receive(payload, ctx.now());
  if (r.outcome === 'invalid') {
    const [namespace, name] = splitKey(key);
    ctx.metrics.invalidPayloads.inc({ namespace, name, problem: r.problem ?? 'unknown' });
    ctx.log.debug({ pgcluster: key, problem: r.problem, bytes: Buffer.byteLength(payload) }, 'dropped an invalid payload');
  } else if (r.outcome === 'changed') {
    if (rt.pendingChangeSince === undefined) rt.pendingChangeSince = performance.now();
    ctx.queue.add(key);
  }
}

export function connectedCondition(state: EndpointState, channel: string, endpointId: string): ConditionInput {
  switch (state.phase) {
    case 'Listening':
      return { type: 'Connected', status: 'True', reason: 'Listening', message: `LISTENing on channel ${channel} (endpoint ${endpointId}); own heartbeats are heard` };
    case 'Connecting':
      return { type: 'Connected', status: 'Unknown', reason: 'Connecting', message: `connecting to Postgres (endpoint ${endpointId})` };
    case 'Failed':
      return { type: 'Connected', status: 'False', reason: state.reason, message: state.message };
  }
}

function readyCondition(spec: EffectiveSpec, connection: ConditionInput, everListening: boolean, state: EndpointState | undefined, members: number, remote: number, dropped: number, unannounced: string[]): ConditionInput {
  const unannouncedNote = unannounced.length ? `; ${unannounced.length} selected pod(s) not announced: ${unannounced.slice(0, 3).join('; ')}` : '';
  if (connection.status !== 'True' && (!state || !everListening)) {
    return { type: 'Ready', status: 'False', reason: state ? 'WaitingForListener' : 'NotConnected', message: `peers not yet heard from the channel (${connection.reason}); outputs list members only${unannouncedNote}` };
  }
  if (connection.status !== 'True') {
    return { type: 'Ready', status: 'False', reason: 'Disconnected', message: `Postgres listener is down (${connection.reason}): outputs keep the last known peers and follow the pods; remote peers do not expire until it is back${unannouncedNote}` };
  }
  const published = `${members} member(s) and ${remote} remote peer(s) published to ConfigMap ${spec.configMapName}${spec.podAnnotation ? ` and pod annotation ${spec.podAnnotation}` : ''}`;
  if (dropped > 0) {
    return { type: 'Ready', status: 'True', reason: 'MaxPeersExceeded', message: `${published}; ${dropped} name(s) not published: maxPeers is ${spec.maxPeers}${unannouncedNote}` };
  }
  return { type: 'Ready', status: 'True', reason: 'PeersPublished', message: `${published}; heartbeat every ${formatDuration(spec.heartbeatMs)}${unannouncedNote}` };
}

async function writeConfigMap(ctx: Context, pc: PgClusterObject, spec: EffectiveSpec, peers: Peer[]): Promise<void> {
  const ns = pc.metadata.namespace;
  const memoKey = `cm:${ns}/${spec.configMapName}`;
  const observed = ctx.written.observe(memoKey, ctx.configMaps.get(ns, spec.configMapName));
  const data = configMapData(spec.channel, peers);
  const labels = { [MANAGED_BY_LABEL]: MANAGED_BY, [CLUSTER_LABEL]: pc.metadata.name };
  if (!observed) {
    try {
      const created = await createConfigMap(ctx.kube, { metadata: { name: spec.configMapName, namespace: ns, labels, ownerReferences: [ownerReference(pc)] }, data });
      ctx.written.record(memoKey, undefined, created);
    } catch (err) {
      if (isConflict(err)) throw new Error(`ConfigMap ${ns}/${spec.configMapName} already exists and is not labelled ${MANAGED_BY_LABEL}=${MANAGED_BY}: delete it or choose another spec.output.configMapName`);
      throw err;
    }
    return;
  }
  await deleteRenamedConfigMaps(ctx, pc, spec.configMapName);
  const current = observed.data ?? {};
  const stale = Object.keys(current).filter((k) => !(k in data));
  const same = stale.length === 0 && Object.entries(data).every(([k, v]) => current[k] === v) && observed.metadata.labels?.[CLUSTER_LABEL] === pc.metadata.name;
  if (same) return;
  const patch: Record<string, string | null> = { ...data };
  for (const k of stale) patch[k] = null;
  const written = await patchConfigMap(ctx.kube, ns, spec.configMapName, { data: patch, labels, resourceVersion: observed.metadata.resourceVersion });
  ctx.written.record(memoKey, observed, written);
}

/** After output.configMapName changes, the ConfigMap under the old name is ours to remove. */
async function deleteRenamedConfigMaps(ctx: Context, pc: PgClusterObject, current: string): Promise<void> {
  for (const cm of ctx.configMaps.inNamespace(pc.metadata.namespace)) {
    const ours = cm.metadata.labels?.[CLUSTER_LABEL] === pc.metadata.name && cm.metadata.ownerReferences?.some((o) => o.uid === pc.metadata.uid);
    if (ours && cm.metadata.name !== current) await deleteConfigMap(ctx.kube, pc.metadata.namespace, cm.metadata.name);
  }
}

async function writeAnnotations(ctx: Context, pc: PgClusterObject, spec: EffectiveSpec, selected: PodObject[], peers: Peer[], staleKey: string | undefined): Promise<void> {
  const ns = pc.metadata.namespace;
  const name = pc.metadata.name;
  const value = annotationValue(peers);
  const selectedNames = new Set(selected.map((p) => p.metadata.name));
  const patches: { pod: PodObject; annotations: Record<string, string | null> }[] = [];
  if (spec.podAnnotation) {
    for (const cached of selected) {
      const pod = ctx.written.observe(`pod:${ns}/${cached.metadata.name}`, cached) as PodObject;
      const a = pod.metadata.annotations ?? {};
      const hasStale = staleKey !== undefined && a[staleKey] !== undefined;
      if (a[spec.podAnnotation] !== value || a[OWNER_ANNOTATION] !== name || hasStale) {
        patches.push({ pod: cached, annotations: { ...(hasStale ? { [staleKey]: null } : {}), [spec.podAnnotation]: value, [OWNER_ANNOTATION]: name } });
      }
    }
  }
  // Pods we annotated that no longer match (or the annotation was turned off): remove what we wrote.
  for (const cached of ctx.pods.inNamespace(ns)) {
    const pod = ctx.written.observe(`pod:${ns}/${cached.metadata.name}`, cached) as PodObject;
    if (pod.metadata.annotations?.[OWNER_ANNOTATION] !== name) continue;
    if (spec.podAnnotation && selectedNames.has(pod.metadata.name)) continue;
    if (pod.metadata.deletionTimestamp) continue;
    patches.push({ pod: cached, annotations: removal(pod, [spec.podAnnotation, staleKey]) });
  }
  await inParallel(patches, WRITE_CONCURRENCY, async ({ pod, annotations }) => {
    try {
      const written = await patchPodAnnotations(ctx.kube, ns, pod.metadata.name, annotations);
      ctx.written.record(`pod:${ns}/${pod.metadata.name}`, pod, written);
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) return; // the pod is gone: nothing to annotate
      throw err;
    }
  });
}

/** The patch that takes our marker and each of `keys` (those present; "" or undefined: none) off a pod. */
function removal(pod: PodObject, keys: (string | undefined)[]): Record<string, string | null> {
  const out: Record<string, string | null> = { [OWNER_ANNOTATION]: null };
  for (const k of keys) if (k && pod.metadata.annotations?.[k] !== undefined) out[k] = null;
  return out;
}

/** The finalizer: stop announcing, remove our annotations and ConfigMap, then let the object go. */
async function finalize(ctx: Context, pc: PgClusterObject, key: string): Promise<void> {
  forgetCluster(ctx, key);
  if (!(pc.metadata.finalizers ?? []).includes(FINALIZER)) return;
  const ns = pc.metadata.namespace;
  const spec = effectiveSpec(pc);
  const annotation = spec.ok ? spec.spec.podAnnotation : 'pgcluster.io/peers';
  const owned = [...ctx.pods.inNamespace(ns)].filter((p) => p.metadata.annotations?.[OWNER_ANNOTATION] === pc.metadata.name);
  await inParallel(owned, WRITE_CONCURRENCY, async (pod) => {
    try {
      await patchPodAnnotations(ctx.kube, ns, pod.metadata.name, removal(pod, [annotation, pc.status?.podAnnotation]));
    } catch (err) {
      if (!(err instanceof KubeApiError && err.status === 404)) throw err;
    }
  });
  const cmName = spec.ok ? spec.spec.configMapName : `${pc.metadata.name}-peers`;
  const cm = ctx.configMaps.get(ns, cmName);
  if (cm && cm.metadata.labels?.[CLUSTER_LABEL] === pc.metadata.name) await deleteConfigMap(ctx.kube, ns, cmName);
  ctx.written.forget(`cm:${ns}/${cmName}`);
  await setFinalizers(ctx.kube, pc, (pc.metadata.finalizers ?? []).filter((f) => f !== FINALIZER));
  ctx.log.info({ pgcluster: key }, 'finalized: annotations and ConfigMap removed');
}

/** A status "transaction": computed in full, written only when it differs; Events on condition flips. */
async function updateStatus(ctx: Context, pc: PgClusterObject, fields: Omit<PgClusterStatus, 'conditions' | 'observedGeneration'>, conditions: ConditionInput[]): Promise<void> {
  const key = `${pc.metadata.namespace}/${pc.metadata.name}`;
  const observed = ctx.written.observe(`status:${key}`, pc as PgClusterObject);
  const before = observed?.status ?? {};
  const nowIso = nowRfc3339(ctx.now());
  let conds: Condition[] = before.conditions ?? [];
  for (const c of conditions) conds = setCondition(conds, { ...c, observedGeneration: pc.metadata.generation }, nowIso);
  const desired: PgClusterStatus = { ...before, ...fields, observedGeneration: pc.metadata.generation, conditions: conds };
  if (statusEqual(before, desired)) return;
  const written = await patchStatus(ctx.kube, pc.metadata.namespace, pc.metadata.name, desired);
  ctx.written.record(`status:${key}`, observed, written);
  for (const c of conditions) {
    const prev = getCondition(before.conditions, c.type);
    if (prev && prev.status === c.status && prev.reason === c.reason) continue;
    if (!prev && c.status === 'True') continue; // a first healthy condition is not news
    if (c.status === 'Unknown') continue;
    const ev = { type: c.status === 'True' ? 'Normal' as const : 'Warning' as const, reason: c.reason, message: c.message };
    createEvent(ctx.kube, pc, ev, ctx.identity).catch((err: unknown) => ctx.log.warn({ pgcluster: key, err: (err as Error).message }, 'could not record an Event'));
  }
}

async function inParallel<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const errors: unknown[] = [];
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (err) {
        errors.push(err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (errors.length) throw errors[0];
}
