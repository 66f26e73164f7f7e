// What-if preload for the operator process (`npm run bench -- --what-if strip-managed-fields`): not a change
// to src/, an experiment that measures a proposed one. The informers cache whole objects, including
// metadata.managedFields (server-side-apply bookkeeping the operator never reads), often the largest part of
// a pod. Here lists and watch events drop it before the informers see them, as client-go's
// TransformStripManagedFields does for controller-runtime caches.
import { KubeClient } from '../../src/kube/client.ts';

type Obj = { metadata?: { managedFields?: unknown } };
const strip = (o: unknown): void => {
  const m = (o as Obj | null)?.metadata;
  if (m && 'managedFields' in m) delete m.managedFields;
};

const list = KubeClient.prototype.list;
KubeClient.prototype.list = async function <T>(this: KubeClient, path: string, query: Record<string, string | undefined> = {}) {
  const r = await list.call(this, path, query);
  for (const item of r.items) strip(item);
  return r as Awaited<ReturnType<typeof list<T>>>;
};

const watch = KubeClient.prototype.watch;
KubeClient.prototype.watch = function (this: KubeClient, path, query, onEvent, done) {
  return watch.call(this, path, query, (type, obj) => { strip(obj); onEvent(type, obj); }, done);
};
