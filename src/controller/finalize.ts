// The finalizer (docs/architecture.md, "Deletion"): stop announcing, remove what this PgCluster wrote on its
// pods (each key by its own marker, nothing else) and its ConfigMap (if it owns it), then let it go.
import { FINALIZER, outputNames } from '../core/spec.ts';
import { forEachLimited } from '../core/limit.ts';
import { ownedKeys } from '../core/ownership.ts';
import { ownedBy, type PgClusterObject } from '../kube/resources.ts';
import { WRITE_CONCURRENCY, memoKeys, patchIfPresent } from './apply.ts';
import type { Context } from './context.ts';
import { removal } from './plan.ts';

export async function finalize(ctx: Context, pc: PgClusterObject, forget: () => void): Promise<void> {
  forget();
  if (!(pc.metadata.finalizers ?? []).includes(FINALIZER)) return;
  const { namespace: ns, name } = pc.metadata;
  // The output names need no valid spec: an object refused later (a stricter CRD) is cleaned up as well.
  const { configMapName, podAnnotation } = outputNames(pc);
  const legacyKey = pc.status?.podAnnotation ?? podAnnotation;
  const pods = [...ctx.pods.inNamespace(ns)].map((p) => ctx.written.observe(memoKeys.pod(ns, p.metadata.name), p) ?? p);
  await forEachLimited(pods, WRITE_CONCURRENCY, async (pod) => {
    const a = pod.metadata.annotations ?? {};
    for (const own of ownedKeys(a, name, legacyKey)) {
      await patchIfPresent(ctx.writer, ns, pod, removal(a, [own.key, own.marker]), { key: own.marker, value: own.markerValue });
    }
  });
  // The DNS output's Service and EndpointSlices, where they are this PgCluster's.
  for (const s of ctx.endpointSlices.inNamespace(ns)) if (ownedBy(s, pc)) await ctx.writer.deleteOutput('endpointslices', ns, s.metadata.name);
  for (const s of ctx.services.inNamespace(ns)) if (ownedBy(s, pc)) await ctx.writer.deleteOutput('services', ns, s.metadata.name);
  const cm = ctx.configMaps.get(ns, configMapName);
  if (cm && ownedBy(cm, pc)) await ctx.writer.deleteConfigMap(ns, configMapName);
  ctx.written.forget(memoKeys.configMap(ns, configMapName));
  await ctx.writer.setFinalizers(pc, (pc.metadata.finalizers ?? []).filter((f) => f !== FINALIZER));
  ctx.log.info({ pgcluster: `${ns}/${name}` }, 'finalized: annotations and ConfigMap removed');
}
