// `node bench/micro/reconcile.ts [members ...]`: the CPU of one reconcile of a settled PgCluster, in process,
// on in-memory caches and a recording Writer (test/support/controllerKit.ts): no API server, no Postgres. Each
// write is folded back into the caches as a watch event would, so that the next reconcile sees it. Prints,
// per size and annotation format: a reconcile with nothing changed, and one with a member joined.
import { performance } from 'node:perf_hooks';
import { reconcile } from '../../src/controller/reconcile.ts';
import type { EndpointPool } from '../../src/controller/endpointPool.ts';
import type { SecretObject } from '../../src/kube/resources.ts';
import type { PodObject } from '../../src/kube/pods.ts';
import { chatSpec, pgcluster, pod, testContext, type TestContext } from '../../test/support/controllerKit.ts';

const url = 'postgres://u:p@127.0.0.1:5432/db';
const secret = { metadata: { name: 'db', namespace: 'prod' }, data: { url: Buffer.from(url).toString('base64') } } as unknown as SecretObject;
let rv = 10_000;

/** The recorded writes, applied to the caches as the watches would deliver them. */
function deliver(ctx: TestContext): void {
  for (const c of ctx.writer.calls) {
    if (c.verb === 'patchPodAnnotations') {
      const p = ctx.pods.get('prod', c.name);
      if (!p) continue;
      const annotations = { ...p.metadata.annotations };
      for (const [k, v] of Object.entries(c.annotations)) if (v === null) delete annotations[k]; else annotations[k] = v;
      ctx.pods.set({ ...p, metadata: { ...p.metadata, resourceVersion: String(++rv), annotations, labels: { ...p.metadata.labels, 'pgcluster.io/annotated': 'true' } } });
    } else if (c.verb === 'createConfigMap' || c.verb === 'patchConfigMap') {
      const old = ctx.configMaps.get('prod', c.name);
      const data = { ...old?.data };
      for (const [k, v] of Object.entries(c.data)) if (v === null) delete data[k]; else data[k] = v;
      ctx.configMaps.set({ metadata: { name: c.name, namespace: 'prod', resourceVersion: String(++rv), labels: { 'app.kubernetes.io/managed-by': 'pgcluster-operator', 'pgcluster.io/cluster': 'chat' }, ownerReferences: [{ apiVersion: 'pgcluster.io/v1alpha1', kind: 'PgCluster', name: 'chat', uid: 'uid-chat', controller: true }] }, data } as never);
    } else if (c.verb === 'patchStatus') {
      const pc = ctx.pgclusters.get('prod', 'chat')!;
      ctx.pgclusters.set({ ...pc, metadata: { ...pc.metadata, resourceVersion: String(++rv) }, status: { ...pc.status, ...c.status } });
    }
  }
  ctx.writer.calls = [];
}

async function settle(ctx: TestContext): Promise<void> {
  for (let i = 0; i < 5; i++) {
    await reconcile(ctx, 'prod/chat');
    await ctx.runtimes.get('prod/chat')?.fanOut?.idle();
    deliver(ctx);
  }
}

async function measure(n: number, format: string | undefined, rounds: number): Promise<{ idle: number; join: number }> {
  const pods: PodObject[] = [];
  for (let i = 0; i < n; i++) pods.push(pod(`p${i}`, { labels: { app: 'chat' }, ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` }));
  const spec = { ...chatSpec, output: format ? { podAnnotationFormat: format } : {} } as typeof chatSpec;
  const ctx = testContext({ pgclusters: [pgcluster('chat', spec)], pods, secrets: { 'prod/db': secret } });
  const endpoint = { id: 'ep1', subscribe: () => ({ close: () => {} }), state: () => ({ phase: 'Listening' as const, since: 0 }), setAnnouncer: () => {}, notifyOnce: () => {} };
  ctx.pool = { acquire: () => endpoint, release: () => {} } as unknown as EndpointPool;
  await settle(ctx);
  let idle = 0;
  for (let i = 0; i < rounds; i++) {
    const t = performance.now();
    await reconcile(ctx, 'prod/chat');
    idle += performance.now() - t;
    deliver(ctx);
  }
  let join = 0;
  for (let i = 0; i < rounds; i++) {
    ctx.pods.set(pod(`j${i}`, { labels: { app: 'chat' }, ip: `10.200.${(i >> 8) & 255}.${i & 255}`, rv: String(++rv) }));
    const t = performance.now();
    await reconcile(ctx, 'prod/chat');
    join += performance.now() - t;
    await ctx.runtimes.get('prod/chat')?.fanOut?.idle();
    deliver(ctx);
    // It leaves again (not timed), so that the size stays n.
    ctx.pods.delete('prod', `j${i}`);
    await settle(ctx);
  }
  ctx.runtimes.forget?.('prod/chat');
  return { idle: idle / rounds, join: join / rounds };
}

const sizes = process.argv.slice(2).map(Number).filter((x) => x > 0);
for (const n of sizes.length ? sizes : [10, 100, 1000]) {
  for (const format of [undefined, 'version']) {
    await measure(n, format, 10); // warm-up
    const r = await measure(n, format, n >= 1000 ? 20 : 100);
    console.log(`${String(n).padStart(5)} members, ${(format ?? 'list').padEnd(7)}: reconcile, nothing changed ${r.idle.toFixed(2)} ms; a member joined ${r.join.toFixed(2)} ms (reconcile only; the fan-out runs beside it)`);
  }
}
process.exit(0);
