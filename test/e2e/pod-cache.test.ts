// What the operator caches of the pods (issue 13, "bystanders cost nothing"; kube/watchSet.ts): only the pods
// some PgCluster selects, watched server-side by its label selector, and the pods it wrote on (label
// pgcluster.io/annotated), in namespaces that have PgClusters. Pods no PgCluster selects, in its namespace or
// in another watched one, are never cached (pgcluster_cached_pods). A pod that left the selector, while the
// operator ran or while it was down, or after the selector changed, is still found and cleaned up.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createNamespace, requireEnv, waitFor } from '../support/env.ts';
import { forEachLimited } from '../../src/core/limit.ts';
import { ANNOTATED_LABEL, DEFAULT_POD_ANNOTATION } from '../../src/core/spec.ts';
import { paths } from '../../src/kube/resources.ts';
import { createPgCluster, createPod, createSecret, podAnnotation, startOperator, testKube, waitForPeers, type OperatorProcess } from '../support/operator.ts';
import { installCrd } from '../support/crd.ts';

const kube = testKube();
let a: Awaited<ReturnType<typeof createNamespace>>;
let b: Awaited<ReturnType<typeof createNamespace>>;
let op: OperatorProcess | undefined;
const BYSTANDERS = 40;

before(async () => {
  await installCrd(kube);
  a = await createNamespace('e2e-podcache');
  b = await createNamespace('e2e-podcache-other');
  await createSecret(kube, a.name, 'db', { url: requireEnv().databaseUrl });
  op = await startOperator({ namespaces: [a.name, b.name] });
});
after(async () => {
  await op?.stop();
  await a?.cleanup();
  await b?.cleanup();
});

const labelsOf = async (ns: string, pod: string) => (await kube.get<{ metadata: { labels?: Record<string, string> } }>(paths.pod(ns, pod))).metadata.labels ?? {};

test('pods no PgCluster selects are not cached, here or in another namespace; members are, and carry the label', async () => {
  const n = a.name;
  await createPod(kube, n, { name: 'chat-1', labels: { app: 'chat' }, ip: '127.0.60.1' });
  await createPod(kube, n, { name: 'chat-2', labels: { app: 'chat' }, ip: '127.0.60.2' });
  const idx = Array.from({ length: BYSTANDERS }, (_, i) => i);
  await forEachLimited(idx, 8, (i) => createPod(kube, n, { name: `other-${i}`, labels: { app: 'other' }, ip: `127.0.61.${i + 1}` }));
  await forEachLimited(idx, 8, (i) => createPod(kube, b.name, { name: `elsewhere-${i}`, labels: { app: 'chat' }, ip: `127.0.62.${i + 1}` }));
  await createPgCluster(kube, n, 'chat', { selector: { matchLabels: { app: 'chat' } }, postgres: { urlSecretRef: { name: 'db' } }, channel: `${n.replace(/-/g, '_')}_chat`, heartbeatInterval: '1s' });
  await waitForPeers(kube, n, 'chat-peers', ['chat-1', 'chat-2'], ['chat@127.0.60.1', 'chat@127.0.60.2']);
  // Two watches in the PgCluster's namespace (its selector, the pods written on), none in the other.
  assert.equal(await op?.metric('pgcluster_pod_watches'), 2);
  assert.equal(await op?.metric('pgcluster_cached_pods'), 2, `${BYSTANDERS * 2} bystanders must not be cached`);
  assert.equal((await labelsOf(n, 'chat-1'))[ANNOTATED_LABEL], 'true');
  assert.equal((await labelsOf(n, 'other-1'))[ANNOTATED_LABEL], undefined);
});

test('a pod that leaves the selector loses the annotation, while the operator runs and while it is down; a changed selector cleans up too', async () => {
  const n = a.name;
  // While it runs: the selector's watch drops the pod; the label's watch still has it.
  await kube.patch(paths.pod(n, 'chat-2'), { metadata: { labels: { app: 'gone' } } }, 'pods');
  await waitFor(async () => (await podAnnotation(kube, n, 'chat-2')) === undefined, { message: 'annotation removed from chat-2 (relabelled while running)' });
  await waitForPeers(kube, n, 'chat-peers', ['chat-1'], ['chat@127.0.60.1']);

  // While it is down: no event will ever say the pod left; the restarted operator finds it by the label.
  await createPod(kube, n, { name: 'chat-3', labels: { app: 'chat' }, ip: '127.0.60.3' });
  await waitForPeers(kube, n, 'chat-peers', ['chat-1', 'chat-3'], ['chat@127.0.60.1', 'chat@127.0.60.3']);
  await op?.stop();
  await kube.patch(paths.pod(n, 'chat-3'), { metadata: { labels: { app: 'gone' } } }, 'pods');
  op = await startOperator({ namespaces: [a.name, b.name] });
  await waitFor(async () => (await podAnnotation(kube, n, 'chat-3')) === undefined, { message: 'annotation removed from chat-3 (relabelled while the operator was down)' });
  await waitForPeers(kube, n, 'chat-peers', ['chat-1'], ['chat@127.0.60.1']);

  // A changed selector: the old watch stops, the pods it selected are cleaned up, the new ones annotated.
  await createPod(kube, n, { name: 'web-1', labels: { app: 'web' }, ip: '127.0.60.11' });
  await kube.patch(paths.pgcluster(n, 'chat'), { spec: { selector: { matchLabels: { app: 'web' } } } }, 'pgclusters');
  await waitForPeers(kube, n, 'chat-peers', ['web-1'], ['chat@127.0.60.11']);
  await waitFor(async () => (await podAnnotation(kube, n, 'chat-1')) === undefined, { message: 'annotation removed from chat-1 (the selector changed)' });
  await waitFor(async () => (await op?.metric('pgcluster_pod_watches')) === 2, { message: 'the old selector\'s watch stopped' });
  // Cached now: the selected web-1 and the three pods written on (the label stays; it only says "look here").
  assert.equal(await op?.metric('pgcluster_cached_pods'), 4);
  assert.equal((await kube.get<{ metadata: { annotations?: Record<string, string> } }>(paths.pod(n, 'other-1'))).metadata.annotations?.[DEFAULT_POD_ANNOTATION], undefined);
});
