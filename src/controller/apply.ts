// The thin, effectful end of a reconcile (docs/architecture.md, "Observe, plan, apply"): carries out a plan
// through a Writer, one API call per write, and remembers each write until the cache shows it (WriteMemo).
import { isConflict, isInvalid, isNotFound, isRefused, type KubeClient, type KubeObject } from '../kube/client.ts';
import type { OutputWrite } from './dnsOutput.ts';
import type { PodObject } from '../kube/pods.ts';
import {
  createConfigMap, createEvent, createOutput, deleteConfigMap, deleteOutput, patchConfigMap, patchOutput, patchPodAnnotations, patchStatus, setFinalizers,
  type ConfigMapObject, type EventInput, type Guard, type OutputKind, type PgClusterObject,
} from '../kube/resources.ts';
import type { PgClusterStatus } from '../core/spec.ts';
import type { Clock } from '../core/clock.ts';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { WriteMemo } from './context.ts';
import type { OutputsPlan, PodPatch, StatusWrite } from './plan.ts';
import { forEachLimited } from '../core/limit.ts';

/** Every write the controller makes: one method, one API call. Tests pass a recording fake. */
export interface Writer {
  createConfigMap(cm: ConfigMapObject): Promise<ConfigMapObject>;
  patchConfigMap(ns: string, name: string, patch: { data: Record<string, string | null>; labels: Record<string, string>; resourceVersion?: string }): Promise<ConfigMapObject>;
  deleteConfigMap(ns: string, name: string): Promise<void>;
  /** Sets (string) or removes (null) annotations; with a guard, only while that annotation has that value (422 otherwise). */
  patchPodAnnotations(ns: string, name: string, annotations: Record<string, string | null>, guard?: Guard): Promise<unknown>;
  patchStatus(ns: string, name: string, status: PgClusterStatus): Promise<unknown>;
  setFinalizers(pc: PgClusterObject, finalizers: string[]): Promise<unknown>;
  createEvent(pc: PgClusterObject, ev: EventInput): Promise<unknown>;
  /** The DNS output's Service and EndpointSlices. */
  createOutput(kind: OutputKind, obj: KubeObject): Promise<KubeObject>;
  patchOutput(kind: OutputKind, ns: string, name: string, body: Record<string, unknown>): Promise<KubeObject>;
  deleteOutput(kind: OutputKind, ns: string, name: string): Promise<void>;
}

export function kubeWriter(kube: KubeClient, identity: string, clock: Clock): Writer {
  return {
    createConfigMap: (cm) => createConfigMap(kube, cm),
    patchConfigMap: (ns, name, patch) => patchConfigMap(kube, ns, name, patch),
    deleteConfigMap: (ns, name) => deleteConfigMap(kube, ns, name),
    patchPodAnnotations: (ns, name, a, guard) => patchPodAnnotations(kube, ns, name, a, guard),
    patchStatus: (ns, name, status) => patchStatus(kube, ns, name, status),
    setFinalizers: (pc, f) => setFinalizers(kube, pc, f),
    createEvent: (pc, ev) => createEvent(kube, pc, ev, identity, clock.now()),
    createOutput: (kind, obj) => createOutput(kube, kind, obj),
    patchOutput: (kind, ns, name, body) => patchOutput(kube, kind, ns, name, body),
    deleteOutput: (kind, ns, name) => deleteOutput(kube, kind, ns, name),
  };
}

/** Refused writes of a replica that no longer may write (it lost its Lease, or is stopping). */
export class WritesFenced extends Error {
  constructor(what: string) {
    super(`not writing (${what}): this replica has stopped leading`);
    this.name = 'WritesFenced';
  }
}

/** `inner`, refusing every write (WritesFenced) once `allowed()` answers false. */
export function fencedWriter(inner: Writer, allowed: () => boolean): Writer {
  const guard = <R>(what: string, write: () => Promise<R>): Promise<R> => (allowed() ? write() : Promise.reject(new WritesFenced(what)));
  return {
    createConfigMap: (cm) => guard('create ConfigMap', () => inner.createConfigMap(cm)),
    patchConfigMap: (ns, name, patch) => guard('patch ConfigMap', () => inner.patchConfigMap(ns, name, patch)),
    deleteConfigMap: (ns, name) => guard('delete ConfigMap', () => inner.deleteConfigMap(ns, name)),
    patchPodAnnotations: (ns, name, a, marker) => guard('patch pod annotations', () => inner.patchPodAnnotations(ns, name, a, marker)),
    patchStatus: (ns, name, status) => guard('patch PgCluster status', () => inner.patchStatus(ns, name, status)),
    setFinalizers: (pc, f) => guard('set PgCluster finalizers', () => inner.setFinalizers(pc, f)),
    createEvent: (pc, ev) => guard('create Event', () => inner.createEvent(pc, ev)),
    createOutput: (kind, obj) => guard(`create ${kind}`, () => inner.createOutput(kind, obj)),
    patchOutput: (kind, ns, name, body) => guard(`patch ${kind}`, () => inner.patchOutput(kind, ns, name, body)),
    deleteOutput: (kind, ns, name) => guard(`delete ${kind}`, () => inner.deleteOutput(kind, ns, name)),
  };
}

export interface ApplyDeps {
  writer: Writer;
  written: WriteMemo;
  log: Logger;
}

// Annotation PATCHes in flight at once: the fan-out to every member is most of the join latency. More in
// flight buys little and loads the API server harder than a polite client should (figures: bench/results).
export const WRITE_CONCURRENCY = 64;

export const memoKeys = {
  output: (kind: OutputKind, ns: string, name: string) => `${kind}:${ns}/${name}`,
  configMap: (ns: string, name: string) => `cm:${ns}/${name}`,
  pod: (ns: string, name: string) => `pod:${ns}/${name}`,
  status: (ns: string, name: string) => `status:${ns}/${name}`,
};

/** What applying the outputs found that the next reconcile and the status need to know. */
export interface ApplyReport {
  /** The ConfigMap's create was refused with 409: an object we cannot see (not labelled as ours) has its name. */
  configMapTaken: boolean;
  /** Writes refused as invalid or too large (422, 413), in the API server's words: reported, not retried. */
  rejected: string[];
}

/**
 * The ConfigMap first, alone: it is one write, and the fast path for readers; the fan-out of annotation
 * PATCHes would otherwise share the API server with it and delay it by the whole fan-out. A write the API
 * server refuses (422, 413) is reported and does not stop the others; anything else throws (retried).
 * The reconcile hands the pods' patches to its FanOut (fanout.ts) instead; this form writes them at once.
 */
export async function applyOutputs(d: ApplyDeps, pc: PgClusterObject, plan: OutputsPlan): Promise<ApplyReport> {
  const ns = pc.metadata.namespace;
  const report = await applyConfigMap(d, pc, plan);
  await forEachLimited(plan.podPatches, WRITE_CONCURRENCY, async (p) => {
    const refusal = await applyPodPatch(d, ns, p);
    if (refusal !== undefined) report.rejected.push(refusal);
  });
  return report;
}

/** The ConfigMap part of the outputs plan: renamed ConfigMaps deleted, then the create or the patch. */
export async function applyConfigMap(d: ApplyDeps, pc: PgClusterObject, plan: Pick<OutputsPlan, 'configMap' | 'deleteConfigMaps'>): Promise<ApplyReport> {
  const ns = pc.metadata.namespace;
  const cm = plan.configMap;
  const report: ApplyReport = { configMapTaken: false, rejected: [] };
  const refused = (what: string, err: unknown): boolean => noteRefusal(report.rejected, what, err);
  if (cm?.kind === 'create') {
    const key = memoKeys.configMap(ns, cm.object.metadata.name);
    try {
      d.written.record(key, undefined, await d.writer.createConfigMap(cm.object));
    } catch (err) {
      if (isConflict(err)) report.configMapTaken = true;
      else if (!refused(`ConfigMap ${ns}/${cm.object.metadata.name}`, err)) throw err;
    }
  } else {
    for (const name of plan.deleteConfigMaps) await d.writer.deleteConfigMap(ns, name);
    if (cm) {
      try {
        const written = await d.writer.patchConfigMap(ns, cm.name, { data: cm.data, labels: cm.labels, resourceVersion: cm.before.metadata.resourceVersion });
        d.written.record(memoKeys.configMap(ns, cm.name), cm.before, written);
      } catch (err) {
        if (!refused(`ConfigMap ${ns}/${cm.name}`, err)) throw err;
      }
    }
  }
  return report;
}

/**
 * One pod's patch, remembered until the cache shows it. Resolves with "pod <name>: <the API server's words>"
 * if it refused the write (422, 413); a pod deleted meanwhile is skipped; anything else throws.
 */
export async function applyPodPatch(d: ApplyDeps, ns: string, { pod, annotations, guard }: PodPatch): Promise<string | undefined> {
  try {
    const written = await patchIfPresent(d.writer, ns, pod, annotations, guard);
    if (written !== undefined) d.written.record(memoKeys.pod(ns, pod.metadata.name), pod, written);
    return undefined;
  } catch (err) {
    const rejected: string[] = [];
    if (!noteRefusal(rejected, `pod ${pod.metadata.name}`, err)) throw err;
    return rejected[0];
  }
}

/** A write the API server refused as invalid or too large (422, 413): noted as "<what>: <its words>" (true). */
function noteRefusal(rejected: string[], what: string, err: unknown): boolean {
  if (!isRefused(err)) return false;
  rejected.push(`${what}: ${errorMessage(err).slice(0, 300)}`);
  return true;
}

/**
 * The DNS output's writes, in order (Service, slices, deletions). Refused writes (422, 413) are reported like
 * the other outputs'; a Service name taken by an object we cannot see (409) comes back as `taken`.
 */
export async function applyDns(d: ApplyDeps, pc: PgClusterObject, writes: readonly OutputWrite[]): Promise<{ taken: boolean; rejected: string[] }> {
  const ns = pc.metadata.namespace;
  const out = { taken: false, rejected: [] as string[] };
  for (const w of writes) {
    // The Service is someone else's: no slice may claim to belong to it.
    if (out.taken && w.verb !== 'delete') continue;
    const name = w.verb === 'create' ? w.object.metadata.name : w.name;
    try {
      if (w.verb === 'create') d.written.record(memoKeys.output(w.kind, ns, name), undefined, await d.writer.createOutput(w.kind, w.object));
      else if (w.verb === 'patch') d.written.record(memoKeys.output(w.kind, ns, name), w.before, await d.writer.patchOutput(w.kind, ns, name, w.body));
      else {
        await d.writer.deleteOutput(w.kind, ns, name);
        d.written.forget(memoKeys.output(w.kind, ns, name));
      }
    } catch (err) {
      if (w.verb === 'create' && w.kind === 'services' && isConflict(err)) out.taken = true;
      else if (!noteRefusal(out.rejected, `${w.kind === 'services' ? 'Service' : 'EndpointSlice'} ${ns}/${name}`, err)) throw err;
    }
  }
  return out;
}

/**
 * Patches a pod's annotations; a pod deleted meanwhile has nothing left to annotate, and a guarded removal
 * whose marker changed meanwhile (someone else's now) has nothing of ours to remove: undefined.
 */
export async function patchIfPresent(writer: Writer, ns: string, pod: PodObject, annotations: Record<string, string | null>, guard?: Guard): Promise<unknown> {
  try {
    return await writer.patchPodAnnotations(ns, pod.metadata.name, annotations, guard);
  } catch (err) {
    if (isNotFound(err) || (guard && isInvalid(err))) return undefined;
    throw err;
  }
}

/** Writes the status if the plan has one, then records its Events (best effort: a lost Event is logged). */
export async function applyStatus(d: ApplyDeps, pc: PgClusterObject, write: StatusWrite | undefined): Promise<void> {
  if (!write) return;
  const { namespace: ns, name } = pc.metadata;
  const written = await d.writer.patchStatus(ns, name, write.status);
  d.written.record(memoKeys.status(ns, name), write.before, written);
  for (const ev of write.events) recordEvent(d, pc, ev);
}

/** Records an Event on the PgCluster, best effort: not awaited, a lost Event is logged. */
export function recordEvent(d: Pick<ApplyDeps, 'writer' | 'log'>, pc: PgClusterObject, ev: EventInput): void {
  d.writer.createEvent(pc, ev).catch((err: unknown) => {
    d.log.warn({ pgcluster: `${pc.metadata.namespace}/${pc.metadata.name}`, reason: ev.reason, err: errorMessage(err) }, 'could not record an Event');
  });
}
