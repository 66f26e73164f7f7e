// The examples run as they are (issue 23, item 2). For each of examples/mounted-files and examples/dns-cluster,
// what a user does with it, on the real node:
//   - its image, built from its own Dockerfile, unchanged (test/harness/examples.ts: on a local stand-in of
//     debian:bookworm-slim where that cannot be pulled; the stack builds it before any test, this file loads it);
//   - the Secrets its README's `kubectl create secret` lines create (read from the README: the Postgres URI
//     pointing at the test stack's Postgres, a fresh cookie);
//   - its k8s/ manifests applied with `kubectl apply -n <namespace>`, parsed with the yaml package and changed
//     in one thing only: every container's image, set to the image built here;
// then a wait (conditions, no sleep) until every pod of its Deployment is Ready and every pod's app has every
// other pod's node in its Node.list() (the line it prints after each change), has seen every pod in its peers
// files (mounted-files) or in its DNS answer (dns-cluster), and no container restarted. It also checks that the
// README builds the image the manifests name, applies k8s/, and creates exactly the Secrets they use.
//
// The real node has a test-only taint (REAL_NODE_TAINT), which the examples do not tolerate and must not: the
// test's namespace carries the annotation scheduler.alpha.kubernetes.io/defaultTolerations instead, which the
// API server's PodTolerationRestriction admission plugin (enabled by the real-node stack, test/harness/kube.ts)
// merges into every pod created there. It is how a cluster admin gives one namespace access to dedicated nodes,
// and it leaves the manifests and their pods' templates as written: the Deployment's pods get the toleration
// from their namespace, as any pod there would.
//
// Needs the real node of the test stack (`npm test` starts it for this directory).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { before, test } from 'node:test';
import { realNodeNamespace } from '../../harness/apps.ts';
import { buildExampleImages, EXAMPLES, exampleImage, exampleManifests, exampleProblems, readmeCommands, withImage, type ExampleName, type K8sObject } from '../../harness/examples.ts';
import { importImage } from '../../harness/realnode.ts';
import { waitForBeamCluster, type AppEvent, type AppPod } from '../../support/beam.ts';
import { installCrd } from '../../support/crd.ts';
import { createNamespace, kubectl, REAL_NODE_TEST, requireRealNode, type RealNodeEnv } from '../../support/env.ts';
import { startOperator, testKube } from '../../support/operator.ts';

let env: RealNodeEnv;

interface Deployment extends K8sObject {
  spec: { replicas: number; selector: { matchLabels: Record<string, string> } };
}
interface PgCluster extends K8sObject {
  spec: { nodeName?: { basename?: string } };
}

/** The one object of a kind in the manifests. */
function only<T extends K8sObject>(objects: readonly K8sObject[], kind: string): T {
  const found = objects.filter((o) => o.kind === kind);
  assert.equal(found.length, 1, `the manifests hold ${found.length} ${kind}s, not one`);
  return found[0] as T;
}

/** The value a test gives a Secret key the README creates: the test's Postgres for the URI, a fresh cookie. */
function secretValue(key: string): string {
  if (key === 'url') return env.databaseUrl;
  if (key === 'cookie') return randomBytes(32).toString('hex');
  throw new Error(`the README creates a Secret key "${key}" the test does not know how to fill`);
}

/** The names an app's peers files listed last (peer_watch.exs prints "seen <node>" and "gone <node>"). */
function namesInFiles(events: readonly AppEvent[]): Set<string> {
  const names = new Set<string>();
  for (const e of events) {
    if (e.event === 'seen') names.add(e.arg);
    else if (e.event === 'gone') names.delete(e.arg);
  }
  return names;
}

/** What each example's app must have learnt of every pod, on top of Node.list(): its own way of discovery. */
const discovered: Record<ExampleName, (basename: string) => (pod: AppPod, events: AppEvent[], pods: AppPod[]) => string | undefined> = {
  'mounted-files': (basename) => (_pod, events, pods) => {
    const names = namesInFiles(events);
    const missing = pods.map((p) => `${basename}@${p.status.podIP}`).filter((n) => !names.has(n));
    return missing.length ? `its peers files have not listed ${missing.join(', ')} (they list ${[...names].join(', ') || 'nothing'})` : undefined;
  },
  'dns-cluster': () => (_pod, events, pods) => {
    const answer = events.filter((e) => e.event === 'resolved').at(-1)?.arg.split(',').filter(Boolean);
    const missing = pods.map((p) => p.status.podIP!).filter((ip) => !answer?.includes(ip));
    return missing.length ? `its DNS answer lacks ${missing.join(', ')} (it last resolved ${answer ? `[${answer.join(',')}]` : 'nothing'})` : undefined;
  },
};

before(async () => {
  env = requireRealNode();
  await installCrd(testKube());
  // The stack built them before any test (a label check here, unless an example changed since); loaded into the
  // node's containerd by this file only.
  await buildExampleImages();
  for (const name of EXAMPLES) await importImage(env.containerd, exampleImage(name));
}, { timeout: 15 * 60_000 });

for (const name of EXAMPLES) {
  test(`examples/${name} runs as it is: its Secrets as the README says, k8s/ applied unchanged but for the image, every pod Ready and connected to all the others`, REAL_NODE_TEST, async (t) => {
    const manifests = exampleManifests(name);
    const readme = readmeCommands(name);
    const deployment = only<Deployment>(manifests, 'Deployment');
    const pgcluster = only<PgCluster>(manifests, 'PgCluster');
    // What the README tells a user fits the manifests (also a unit test: test/unit/examples.test.ts).
    assert.deepEqual(exampleProblems(name), []);
    const { objects } = withImage(manifests, exampleImage(name));

    // The examples' READMEs say their pods run under the restricted Pod Security Standard: the namespace
    // enforces it (a pod that broke it would never be created; the ReplicaSet's Warning event would say why).
    const ns = await createNamespace(`ex-${name}`, { annotations: realNodeNamespace, labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } });
    const op = await startOperator({ namespaces: [ns.name] });
    t.after(async () => {
      await kubectl(['delete', 'deployment', '--all', '--wait=false'], { ns: ns.name }).catch(() => {});
      await op.stop();
      await kubectl(['patch', 'pgcluster', pgcluster.metadata.name, '--type=merge', '-p', '{"metadata":{"finalizers":null}}'], { ns: ns.name }).catch(() => {});
      await ns.cleanup();
    });

    for (const s of readme.secrets) await kubectl(['create', 'secret', 'generic', s.name, `--from-literal=${s.key}=${secretValue(s.key)}`], { ns: ns.name });
    const t0 = Date.now();
    await kubectl(['apply', '-f', '-'], { ns: ns.name, input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }) });

    const basename = pgcluster.spec.nodeName?.basename ?? pgcluster.metadata.name;
    const pods = await waitForBeamCluster({
      ns: ns.name,
      selector: Object.entries(deployment.spec.selector.matchLabels).map(([k, v]) => `${k}=${v}`).join(','),
      basename, count: deployment.spec.replicas, what: `examples/${name}`, check: discovered[name](basename),
    });
    t.diagnostic(`examples/${name}: ${pods.length} pods Ready, each connected to the others, ${((Date.now() - t0) / 1000).toFixed(1)} s after kubectl apply`);
    const restarts = pods.flatMap((p) => (p.status.containerStatuses ?? []).filter((c) => c.restartCount > 0).map((c) => `${p.metadata.name}/${c.name} x${c.restartCount}`));
    assert.deepEqual(restarts, [], 'containers that restarted');
  });
}
