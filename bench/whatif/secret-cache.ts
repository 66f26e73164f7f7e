// What-if preload for the operator process (`npm run bench -- --what-if secret-cache`): not a change to src/,
// an experiment that measures a proposed one. Every reconcile GETs the PgCluster's Secret from the API
// server (src/controller/reconcile.ts connect()), and every PgCluster is reconciled at least once a minute,
// so 1,000 PgClusters make ~17 GETs a second. Here Secret GETs are answered from a cache for 30 s, standing
// in for a Secret informer (or a cache invalidated by watch events).
import { KubeClient } from '../../src/kube/client.ts';

const TTL_MS = 30_000;
const cache = new Map<string, { at: number; value: unknown }>();
const getOptional = KubeClient.prototype.getOptional;
KubeClient.prototype.getOptional = async function <T>(this: KubeClient, path: string): Promise<T | undefined> {
  if (!/^\/api\/v1\/namespaces\/[^/]+\/secrets\/[^/]+$/.test(path)) return getOptional.call(this, path) as Promise<T | undefined>;
  const hit = cache.get(path);
  if (hit && Date.now() - hit.at < TTL_MS) return hit.value as T | undefined;
  const value = await getOptional.call(this, path);
  cache.set(path, { at: Date.now(), value });
  return value as T | undefined;
};
