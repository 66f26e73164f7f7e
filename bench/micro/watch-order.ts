// `node bench/micro/watch-order.ts [rounds]`: with podAnnotationFormat `version`, a member's kubelet refreshes
// its mounted ConfigMap when the annotation PATCH reaches it (a pod event), from its own watch of that
// ConfigMap. If the pod event reaches the kubelet before the ConfigMap event written just before it, the file
// keeps the old list until the next refresh. This measures, on a real API server under write load, how often
// a watcher placed like a kubelet (one watch of the ConfigMap by name, one of the pods) sees the pod event
// first, in two orders of writing, alternated round by round so that both see the same load:
//   at once   ConfigMap PATCH answered, then the pod PATCH (what the operator does)
//   after     ConfigMap PATCH answered, then wait until a third watch (as the operator's informer) has
//             delivered that ConfigMap version, then the pod PATCH
// Load: WRITERS loops PATCH ~20 KB annotations onto LOAD_PODS other pods throughout (a large rollout's fan-out).
// On the stack named by PGCO_STACK_DIR/KUBECONFIG (`npm run stack -- up`), else a fresh one.
import { performance } from 'node:perf_hooks';
import { openStack } from '../lib/stack.ts';
import { paths } from '../../src/kube/resources.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import { summarize, until } from '../lib/util.ts';

const ROUNDS = Number(process.argv[2] ?? 200);
const WRITERS = 16;
const LOAD_PODS = 200;
const NS = `watch-order-${process.pid}`;

interface Arrivals { cm: Map<string, number>; pod: Map<string, number>; own: Map<string, number> }

function podObject(name: string) {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: NS, labels: { role: name.startsWith('load') ? 'load' : 'member' } },
    spec: { nodeName: 'watch-order-node', containers: [{ name: 'c', image: 'none' }] } };
}

/** A watch delivering each object's `v` (a data key or an annotation) with its arrival time. */
async function watchVersions(kube: KubeClient, path: string, query: Record<string, string>, read: (o: Record<string, unknown>) => string | undefined, into: Map<string, number>): Promise<AbortController> {
  return kube.watch(path, { ...query, allowWatchBookmarks: 'true', timeoutSeconds: '3600' }, (_type, obj) => {
    const v = read(obj as Record<string, unknown>);
    if (v !== undefined && !into.has(v)) into.set(v, performance.now());
  }, () => {});
}

/** Whether `cond` held within `timeoutMs` (polled every millisecond: the figures are milliseconds). */
const within = (cond: () => boolean, timeoutMs: number): Promise<boolean> =>
  until('a watch event', () => cond() || undefined, timeoutMs, 1).then(() => true, () => false);

async function main(): Promise<void> {
  const stack = await openStack();
  const kube = stack.kube;
  await kube.create('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } }, 'namespaces');
  try {
    await kube.create(paths.configMaps(NS), { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'peers', namespace: NS }, data: { v: '0' } }, 'configmaps');
    await kube.create(paths.pods(NS), podObject('member'), 'pods');
    for (let i = 0; i < LOAD_PODS; i += 20) await Promise.all(Array.from({ length: Math.min(20, LOAD_PODS - i) }, (_, j) => kube.create(paths.pods(NS), podObject(`load-${i + j}`), 'pods')));

    const a: Arrivals = { cm: new Map(), pod: new Map(), own: new Map() };
    const cmData = (o: Record<string, unknown>) => (o.data as Record<string, string> | undefined)?.v;
    const ann = (o: Record<string, unknown>) => ((o.metadata as { annotations?: Record<string, string> }).annotations ?? {})['pgcluster.io/version'];
    const watches = [
      // As the kubelet: the ConfigMap by name, the pods of its node.
      await watchVersions(kube, paths.configMaps(NS), { fieldSelector: 'metadata.name=peers' }, cmData, a.cm),
      await watchVersions(kube, paths.pods(NS), { fieldSelector: 'spec.nodeName=watch-order-node', labelSelector: 'role=member' }, ann, a.pod),
      // As the operator's informer: ConfigMaps of the namespace.
      await watchVersions(kube, paths.configMaps(NS), {}, cmData, a.own),
    ];

    let loading = true;
    const big = 'x'.repeat(20_000);
    const load = Array.from({ length: WRITERS }, async (_, w) => {
      for (let n = 0; loading; n++) {
        const pod = `load-${(w * 13 + n) % LOAD_PODS}`;
        await kube.patch(paths.pod(NS, pod), { metadata: { annotations: { 'pgcluster.io/peers': `${n}${big}` } } }, 'pods').catch(() => {});
      }
    });

    const inversions = { atOnce: 0, after: 0 };
    const leads: Record<'atOnce' | 'after', number[]> = { atOnce: [], after: [] };
    const waits: number[] = [];
    let lost = 0;
    for (let i = 1; i <= ROUNDS; i++) {
      const mode = i % 2 ? 'atOnce' : 'after';
      const v = String(i);
      await kube.patch(paths.configMap(NS, 'peers'), { data: { v } }, 'configmaps');
      if (mode === 'after') {
        const t = performance.now();
        if (!(await within(() => a.own.has(v), 5000))) lost++;
        waits.push(performance.now() - t);
      }
      await kube.patch(paths.pod(NS, 'member'), { metadata: { annotations: { 'pgcluster.io/version': v } } }, 'pods');
      if (!(await within(() => a.cm.has(v) && a.pod.has(v), 10_000))) { lost++; continue; }
      const lead = a.pod.get(v)! - a.cm.get(v)!; // > 0: the ConfigMap event came first
      leads[mode].push(lead);
      if (lead < 0) inversions[mode]++;
    }
    loading = false;
    await Promise.all(load);
    for (const w of watches) w.abort();

    const fmt = (xs: number[]) => { const s = summarize(xs); return `min ${s.min.toFixed(1)} / p50 ${s.p50.toFixed(1)} / p99 ${s.p99.toFixed(1)} ms`; };
    console.log(`watch-order: ${ROUNDS} rounds, ${WRITERS} writers of ~20 KB annotations on ${LOAD_PODS} pods`);
    console.log(`  at once: pod event before the ConfigMap event in ${inversions.atOnce} of ${leads.atOnce.length}; ConfigMap lead ${fmt(leads.atOnce)}`);
    console.log(`  after:   pod event before the ConfigMap event in ${inversions.after} of ${leads.after.length}; ConfigMap lead ${fmt(leads.after)}; the wait for our own watch ${fmt(waits)}`);
    if (lost) console.log(`  ${lost} rounds lost an event (timed out)`);
  } finally {
    await kube.request('DELETE', `/api/v1/namespaces/${NS}`).catch(() => {});
    await stack.stop();
  }
}

await main();
