// The finalizer (docs/architecture.md, "Deletion"): stop announcing, remove our annotations and ConfigMap,
// then let the PgCluster go.
import { FINALIZER, CLUSTER_KEY, outputNames } from '../core/spec.ts';
import { forEachLimited } from '../core/limit.ts';
import type { PgClusterObject } from '../kube/resources.ts';
import { WRITE_CONCURRENCY, memoKeys, patchIfPresent } from './apply.ts';
import type { Context } from './context.ts';
import { annotationRemoval } from './plan.ts';

export async function finalize(ctx: Context, pc: PgClusterObject, forget: () => void): Promise<void> {
  forget();
  if (!(pc.metadata.finalizers ?? []).includes(FINALIZER)) return;
  const { namespace: ns, name } = pc.metadata;
  // The output names need no valid spec: an object refused later (a stricter CRD) is cleaned up as well.
  const { configMapName, podAnnotation } = outputNames(pc);
  const owned = [...ctx.pods.inNamespace(ns)].filter((p) => p.metadata.annotations?.[CLUSTER_KEY] === name);
  await forEachLimited(owned, WRITE_CONCURRENCY, async (pod) => {
    await patchIfPresent(ctx.writer, ns, pod, annotationRemoval(pod, [podAnnotation, pc.status?.podAnnotation]));
  });
  const cm = ctx.configMaps.get(ns, configMapName);
  if (cm && cm.metadata.labels?.[CLUSTER_KEY] === name) await ctx.writer.deleteConfigMap(ns, configMapName);
  ctx.written.forget(memoKeys.configMap(ns, configMapName));
  await ctx.writer.setFinalizers(pc, (pc.metadata.finalizers ?? []).filter((f) => f !== FINALIZER));
  ctx.log.info({ pgcluster: `${ns}/${name}` }, 'finalized: annotations and ConfigMap removed');
}
