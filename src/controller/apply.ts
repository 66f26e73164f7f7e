// The thin, effectful end of a reconcile (docs/architecture.md, "Observe, plan, apply"): carries out a plan
// through a Writer, one API call per write, and remembers each write until the cache shows it (WriteMemo).
import { isConflict, isNotFound, type KubeClient } from '../kube/client.ts';
import type { PodObject } from '../kube/pods.ts';
import {
  createConfigMap, createEvent, deleteConfigMap, patchConfigMap, patchPodAnnotations, patchStatus, setFinalizers,
  type ConfigMapObject, type EventInput, type PgClusterObject,
} from '../kube/resources.ts';
import { MANAGED_BY, MANAGED_BY_LABEL, type PgClusterStatus } from '../core/spec.ts';
import type { Clock } from '../core/clock.ts';
import { errorMessage, UserError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { WriteMemo } from './context.ts';
import type { OutputsPlan, StatusWrite } from './plan.ts';
import { forEachLimited } from '../core/limit.ts';

/** Every write the controller makes: one method, one API call. Tests pass a recording fake. */
export interface Writer {
  createConfigMap(cm: ConfigMapObject): Promise<ConfigMapObject>;
  patchConfigMap(ns: string, name: string, patch: { data: Record<string, string | null>; labels: Record<string, string>; resourceVersion?: string }): Promise<ConfigMapObject>;
  deleteConfigMap(ns: string, name: string): Promise<void>;
  /** Sets (string) or removes (null) annotations. */
  patchPodAnnotations(ns: string, name: string, annotations: Record<string, string | null>): Promise<unknown>;
  patchStatus(ns: string, name: string, status: PgClusterStatus): Promise<unknown>;
  setFinalizers(pc: PgClusterObject, finalizers: string[]): Promise<unknown>;
  createEvent(pc: PgClusterObject, ev: EventInput): Promise<unknown>;
}

export function kubeWriter(kube: KubeClient, identity: string, clock: Clock): Writer {
  return {
    createConfigMap: (cm) => createConfigMap(kube, cm),
    patchConfigMap: (ns, name, patch) => patchConfigMap(kube, ns, name, patch),
    deleteConfigMap: (ns, name) => deleteConfigMap(kube, ns, name),
    patchPodAnnotations: (ns, name, a) => patchPodAnnotations(kube, ns, name, a),
    patchStatus: (ns, name, status) => patchStatus(kube, ns, name, status),
    setFinalizers: (pc, f) => setFinalizers(kube, pc, f),
    createEvent: (pc, ev) => createEvent(kube, pc, ev, identity, clock.now()),
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
  configMap: (ns: string, name: string) => `cm:${ns}/${name}`,
  pod: (ns: string, name: string) => `pod:${ns}/${name}`,
  status: (ns: string, name: string) => `status:${ns}/${name}`,
};

/**
 * The ConfigMap first, alone: it is one write, and the fast path for readers; the fan-out of annotation
 * PATCHes would otherwise share the API server with it and delay it by the whole fan-out.
 */
export async function applyOutputs(d: ApplyDeps, pc: PgClusterObject, plan: OutputsPlan): Promise<void> {
  const ns = pc.metadata.namespace;
  const cm = plan.configMap;
  if (cm?.kind === 'create') {
    const key = memoKeys.configMap(ns, cm.object.metadata.name);
    try {
      d.written.record(key, undefined, await d.writer.createConfigMap(cm.object));
    } catch (err) {
      if (isConflict(err)) {
        throw new UserError('OutputConflict', `ConfigMap ${ns}/${cm.object.metadata.name} already exists and is not labelled ${MANAGED_BY_LABEL}=${MANAGED_BY}: delete it or choose another spec.output.configMapName`);
      }
      throw err;
    }
  } else {
    for (const name of plan.deleteConfigMaps) await d.writer.deleteConfigMap(ns, name);
    if (cm) {
      const written = await d.writer.patchConfigMap(ns, cm.name, { data: cm.data, labels: cm.labels, resourceVersion: cm.before.metadata.resourceVersion });
      d.written.record(memoKeys.configMap(ns, cm.name), cm.before, written);
    }
  }
  await forEachLimited(plan.podPatches, WRITE_CONCURRENCY, async ({ pod, annotations }) => {
    const written = await patchIfPresent(d.writer, ns, pod, annotations);
    if (written !== undefined) d.written.record(memoKeys.pod(ns, pod.metadata.name), pod, written);
  });
}

/** Patches a pod's annotations; a pod deleted meanwhile has nothing left to annotate (undefined). */
export async function patchIfPresent(writer: Writer, ns: string, pod: PodObject, annotations: Record<string, string | null>): Promise<unknown> {
  try {
    return await writer.patchPodAnnotations(ns, pod.metadata.name, annotations);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** Writes the status if the plan has one, then records its Events (best effort: a lost Event is logged). */
export async function applyStatus(d: ApplyDeps, pc: PgClusterObject, write: StatusWrite | undefined): Promise<void> {
  if (!write) return;
  const { namespace: ns, name } = pc.metadata;
  const written = await d.writer.patchStatus(ns, name, write.status);
  d.written.record(memoKeys.status(ns, name), write.before, written);
  for (const ev of write.events) {
    d.writer.createEvent(pc, ev).catch((err: unknown) => d.log.warn({ pgcluster: `${ns}/${name}`, err: errorMessage(err) }, 'could not record an Event'));
  }
}
