// The finalizer (docs/architecture.md, "Deletion"): stop announcing, remove what this PgCluster wrote on its
// pods (each key by its own marker, nothing else) and its ConfigMap (if it owns it), then let it go.
import { FINALIZER, outputNames } from '../../core/spec.ts';
import { forEachLimited } from '../../core/limit.ts';
import { ownedKeys } from '../../core/ownership.ts';
import { ownedBy, type PgClusterObject } from '../../kube/resources.ts';
import { WRITE_CONCURRENCY, memoKeys, patchIfPresent } from '../write/apply.ts';
import type { Context } from '../context.ts';
import { removal } from '../plan/outputs.ts';

export async function finalize(ctx: Pick<Context, 'caches' | 'writes' | 'env'>, pc: PgClusterObject, forget: () => void): Promise<void> {
  forget();
  const { caches, writes: { writer, memo } } = ctx;
  if (!(pc.metadata.finalizers ?? []).includes(FINALIZER)) return;
  const { namespace: ns, name } = pc.metadata;
  // The output names need no valid spec: an object refused later (a stricter CRD) is cleaned up as well.
  const { configMapName, podAnnotation } = outputNames(pc);
  const legacyKey = pc.status?.podAnnotation ?? podAnnotation;
  const pods = [...caches.pods.inNamespace(ns)].map((p) => memo.observe(memoKeys.pod(ns, p.metadata.name), p) ?? p);
  await forEachLimited(pods, WRITE_CONCURRENCY, async (pod) => {
    const a = pod.metadata.annotations ?? {};
    for (const own of ownedKeys(a, name, legacyKey)) {
      await patchIfPresent(writer, ns, pod, removal(a, [own.key, own.marker]), { key: own.marker, value: own.markerValue });
    }
  });
  // The DNS output's Service and EndpointSlices, where they are this PgCluster's.
  for (const s of caches.endpointSlices.inNamespace(ns)) if (ownedBy(s, pc)) await writer.deleteOutput('endpointslices', ns, s.metadata.name);
  for (const s of caches.services.inNamespace(ns)) if (ownedBy(s, pc)) await writer.deleteOutput('services', ns, s.metadata.name);
  const cm = caches.configMaps.get(ns, configMapName);
  if (cm && ownedBy(cm, pc)) await writer.deleteConfigMap(ns, configMapName);
  memo.forget(memoKeys.configMap(ns, configMapName));
  await writer.setFinalizers(pc, (pc.metadata.finalizers ?? []).filter((f) => f !== FINALIZER));
  ctx.env.log.info({ pgcluster: `${ns}/${name}` }, 'finalized: annotations and ConfigMap removed');
}
