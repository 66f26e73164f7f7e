// Step 5, apply: the plan carried out through the Writer (write/apply.ts) — the ConfigMap first and alone (the
// fast path for readers), the pods' annotations handed to the PgCluster's fan-out (write/fanout.ts, beside the
// reconcile), the DNS output, then the status and its Events. Output names found taken are remembered, and
// tried again after TAKEN_RECHECK_MS.
import { splitKey } from '../../core/key.ts';
import { errorMessage } from '../../errors.ts';
import type { Context } from '../context.ts';
import { FanOut } from '../write/fanout.ts';
import { applyConfigMap, applyDns, applyPodPatch, applyStatus, WRITE_CONCURRENCY, type ApplyDeps } from '../write/apply.ts';
import { WritesFenced } from '../write/writer.ts';
import type { Observed } from './observe.ts';
import type { OutputsReport, ReconcilePlan, StatusPlan } from './plan.ts';

/** How often to try the create again of an output whose name an object we cannot watch holds. */
export const TAKEN_RECHECK_MS = 30_000;

export interface Applied extends OutputsReport {
  /** When the outputs were written (monotonic): the join-to-published latency ends here. */
  at: number;
  status: StatusPlan;
}

export async function apply(ctx: Context, o: Observed, p: ReconcilePlan): Promise<Applied> {
  const { pc, spec, rt } = o;
  const d = applyDeps(ctx);
  const cm = await applyConfigMap(d, pc, p.outputs);
  rt.fanOut?.submit(p.outputs.podPatches, spec.annotationMinIntervalMs);
  const dns = await applyDns(d, pc, p.dns.writes);
  const at = ctx.env.clock.monotonic();
  if (dns.taken) rt.taken.mark('service', spec.serviceName, at + TAKEN_RECHECK_MS);
  if (cm.configMapTaken) rt.taken.mark('configMap', spec.configMapName, at + TAKEN_RECHECK_MS);
  const report: OutputsReport = { configMapTaken: cm.configMapTaken, serviceTaken: dns.taken, rejected: [...cm.rejected, ...(rt.fanOut?.rejected() ?? []), ...dns.rejected] };
  const status = p.status(report);
  await applyStatus(d, pc, status.write);
  return { ...report, at, status };
}

export function applyDeps(ctx: Pick<Context, 'writes' | 'env'>): ApplyDeps {
  return { writer: ctx.writes.writer, memo: ctx.writes.memo, log: ctx.env.log };
}

/**
 * The fan-out of one PgCluster: each PATCH against the pod as cached when it is issued (the plan may be
 * older); a pass that failed or changed which writes are refused brings a reconcile (the status says so).
 */
export function podFanOut(ctx: Pick<Context, 'writes' | 'env' | 'caches' | 'queue'>, key: string): FanOut {
  const [ns] = splitKey(key);
  const { clock, metrics, log } = ctx.env;
  return new FanOut({
    clock,
    concurrency: WRITE_CONCURRENCY,
    write: async (p) => {
      const pod = ctx.caches.pods.get(ns, p.pod.metadata.name);
      if (!pod || pod.metadata.deletionTimestamp) return undefined; // gone, or going: nothing to tell it
      return ctx.writes.podWrites.run(() => applyPodPatch(applyDeps(ctx), ns, { ...p, pod }));
    },
    onPassEnd: (failed, rejectedChanged, ms) => {
      if (failed instanceof WritesFenced) return; // this replica is stopping: nothing to retry
      metrics.fanOutPass.observe(ms / 1000);
      if (failed !== undefined) log.warn({ pgcluster: key, err: errorMessage(failed) }, 'annotation writes failed; retrying');
      if (failed !== undefined || rejectedChanged) ctx.queue.add(key);
    },
  });
}
