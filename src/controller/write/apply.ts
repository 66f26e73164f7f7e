// The thin, effectful end of a reconcile (docs/architecture.md, "Observe, plan, apply"): carries out a plan
// through a Writer, one API call per write, and remembers each write until the cache shows it (WriteMemo).
import { isConflict, isForbidden, isInvalid, isNotFound, isRefused } from '../../kube/client.ts';
import type { OutputWrite } from '../plan/dns.ts';
import type { PodObject } from '../../kube/pods.ts';
import type { EventInput, Guard, OutputKind, PgClusterObject } from '../../kube/resources.ts';
import { errorMessage } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import { forEachLimited } from '../../core/limit.ts';
import type { OutputsPlan, PodPatch } from '../plan/outputs.ts';
import type { GateWrite } from '../plan/gates.ts';
import type { StatusWrite } from '../plan/status.ts';
import type { Writer } from './writer.ts';
import type { WriteMemo } from './writeMemo.ts';

/** What applying needs: the Writer, the memo of our writes, and the log (lost Events are logged). */
export interface ApplyDeps {
  writer: Writer;
  memo: WriteMemo;
  log: Logger;
}

// Annotation PATCHes in flight at once: the fan-out to every member is most of the join latency. More in
// flight buys little and loads the API server harder than a polite client should (figures: bench/results).
export const WRITE_CONCURRENCY = 64;

export const memoKeys = {
  output: (kind: OutputKind, ns: string, name: string) => `${kind}:${ns}/${name}`,
  configMap: (ns: string, name: string) => `cm:${ns}/${name}`,
  pod: (ns: string, name: string) => `pod:${ns}/${name}`,
  /** A pod's status as we wrote it (its readiness gate): apart from `pod`, which our annotation writes keep. */
  podStatus: (ns: string, name: string) => `podstatus:${ns}/${name}`,
  status: (ns: string, name: string) => `status:${ns}/${name}`,
  /** The PgCluster's metadata as our finalizer write left it. */
  pgcluster: (ns: string, name: string) => `pgcluster:${ns}/${name}`,
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
      d.memo.record(key, undefined, await d.writer.createConfigMap(cm.object));
    } catch (err) {
      if (isConflict(err)) report.configMapTaken = true;
      else if (!refused(`ConfigMap ${ns}/${cm.object.metadata.name}`, err)) throw err;
    }
  } else {
    for (const name of plan.deleteConfigMaps) await d.writer.deleteConfigMap(ns, name);
    if (cm) {
      try {
        const written = await d.writer.patchConfigMap(ns, cm.name, { data: cm.data, labels: cm.labels, resourceVersion: cm.before.metadata.resourceVersion });
        d.memo.record(memoKeys.configMap(ns, cm.name), cm.before, written);
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
    if (written !== undefined) d.memo.record(memoKeys.pod(ns, pod.metadata.name), pod, written);
    return undefined;
  } catch (err) {
    const rejected: string[] = [];
    if (!noteRefusal(rejected, `pod ${pod.metadata.name}`, err)) throw err;
    return rejected[0];
  }
}

/**
 * One pod's readiness gate condition (pods/status), remembered until the cache shows it. Resolves with
 * "pod <name> condition <type>: <why>" if the API server refused it (422, 413) or forbade it (403: the
 * operator's RBAC lacks patch on pods/status); a pod deleted meanwhile is skipped; anything else throws.
 */
export async function applyGateWrite(d: ApplyDeps, ns: string, { pod, condition }: GateWrite): Promise<string | undefined> {
  const name = pod.metadata.name;
  try {
    d.memo.record(memoKeys.podStatus(ns, name), pod, await d.writer.patchPodCondition(ns, name, condition));
    return undefined;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    const what = `pod ${name} condition ${condition.type}`;
    if (isForbidden(err)) return `${what}: forbidden: grant the operator patch on pods/status (the chart's RBAC does): ${errorMessage(err).slice(0, 200)}`;
    const rejected: string[] = [];
    if (!noteRefusal(rejected, what, err)) throw err;
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
      if (w.verb === 'create') d.memo.record(memoKeys.output(w.kind, ns, name), undefined, await d.writer.createOutput(w.kind, w.object));
      else if (w.verb === 'patch') d.memo.record(memoKeys.output(w.kind, ns, name), w.before, await d.writer.patchOutput(w.kind, ns, name, w.body));
      else {
        await d.writer.deleteOutput(w.kind, ns, name);
        d.memo.forget(memoKeys.output(w.kind, ns, name));
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
  d.memo.record(memoKeys.status(ns, name), write.before, written);
  for (const ev of write.events) recordEvent(d, pc, ev);
}

/** Records an Event on the PgCluster, best effort: not awaited, a lost Event is logged. */
export function recordEvent(d: Pick<ApplyDeps, 'writer' | 'log'>, pc: PgClusterObject, ev: EventInput): void {
  d.writer.createEvent(pc, ev).catch((err: unknown) => {
    d.log.warn({ pgcluster: `${pc.metadata.namespace}/${pc.metadata.name}`, reason: ev.reason, err: errorMessage(err) }, 'could not record an Event');
  });
}
