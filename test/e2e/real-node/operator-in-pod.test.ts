// Run as users run it: the image built from the Dockerfile, installed by Helm into a real pod on a real kubelet
// (containerd + runc), talking to the API server with its ServiceAccount token and to a Postgres on this
// machine through a Secret; app pods read the peers from files the kubelet mounts and refreshes.
//
// Needs the real node of the test stack (`npm test` starts it for this directory; by hand:
// `npm run stack -- up --real-node && source .stack/env`).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { join } from 'node:path';
import { buildImage } from '../../harness/image.ts';
import { startPostgres, type PostgresServer } from '../../harness/postgres.ts';
import { importImage, REAL_NODE_TAINT } from '../../harness/realnode.ts';
import { ANNOTATION_FILE, CONFIGMAP_FILE, fileWatcherContainer, onRealNode, parseFileWatcherLine, peersVolumes } from '../../harness/apps.ts';
import { createNamespace, kubectl, kubectlJson, lockStack, MOUNTED_FILE_SYNC_MS, REAL_NODE_TEST, requireRealNode, runBin, waitFor, type RealNodeEnv } from '../../support/env.ts';
import { testKube } from '../../support/operator.ts';
import { CRD_NAME, crdForRelease } from '../../support/crd.ts';
import type { KubeClient } from '../../../src/kube/client.ts';
import { isReady, KWOK_NODE } from '../../harness/kube.ts';
import { createPodObject } from '../../support/objects.ts';
import { parseMetrics, sumMetric } from '../../support/metrics.ts';
import { recordSenders, senderRuns } from '../../support/senders.ts';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const CHART = join(ROOT, 'charts', 'pgcluster-operator');
const RELEASE = 'pgco';
const FULL = `${RELEASE}-pgcluster-operator`;
/** The operator Deployment's selector (the chart's `helm test` Pod has the instance label too, not this name). */
const OPERATOR_PODS = `app.kubernetes.io/name=pgcluster-operator,app.kubernetes.io/instance=${RELEASE}`;
const CLUSTER = 'demo';
const BASENAME = 'demo';
const PEERS_CM = `${CLUSTER}-peers`;

type Obj = Record<string, any>; // kubectl's JSON
interface PodJson {
  metadata: { name: string; deletionTimestamp?: string; annotations?: Record<string, string>; creationTimestamp: string };
  spec: { nodeName?: string };
  status: {
    podIP?: string; phase?: string; conditions?: { type: string; status: string; lastTransitionTime: string }[];
    containerStatuses?: { restartCount: number; lastState?: { terminated?: { exitCode: number; reason?: string; finishedAt?: string } } }[];
  };
}

let env: RealNodeEnv;
let kube: KubeClient;
let pgServer: PostgresServer;
let opNs: Awaited<ReturnType<typeof createNamespace>>;
let appNs: Awaited<ReturnType<typeof createNamespace>>;
let imageRef: string;
let unlockCrd: (() => void) | undefined;
const refreshMs: { annotation: number[]; configmap: number[] } = { annotation: [], configmap: [] };
/** Refreshes slower than a second, with where they happened (printed: the kubelet's periodic resync shows up here). */
const slow: string[] = [];

const nodeName = (p: PodJson) => `${BASENAME}@${p.status.podIP}`;

async function appPods(): Promise<PodJson[]> {
  const list = await kube.get<{ items: PodJson[] }>(`/api/v1/namespaces/${appNs.name}/pods?labelSelector=app%3D${BASENAME}`);
  return list.items;
}

/** The peers files as the app sees them, read inside the pod. */
async function filesOf(pod: string): Promise<{ annotation: string[]; configmap: string[] }> {
  const out = await kubectl(['exec', pod, '--', 'sh', '-c', `cat ${ANNOTATION_FILE}; echo; echo ---; cat ${CONFIGMAP_FILE} 2>/dev/null`], { ns: appNs.name });
  const [a = '', c = ''] = out.split('---\n');
  return { annotation: a.trim().split(',').filter(Boolean), configmap: c.trim().split('\n').filter(Boolean) };
}

/**
 * The app's log: a line "<uptime> annotation|configmap <peers>" each time a file changed (the app polls
 * every 100 ms). Returns when the app first read the files and when each first held exactly `want`, as
 * wall-clock ms.
 */
async function fileChangeTimes(pod: string, want: string[]): Promise<{ started?: number; annotation?: number; configmap?: number }> {
  const log = await kubectl(['logs', pod], { ns: appNs.name });
  const key = [...want].sort().join(',');
  const out: { started?: number; annotation?: number; configmap?: number } = {};
  for (const line of log.split('\n')) {
    const l = parseFileWatcherLine(line);
    if (!l) continue;
    out.started ??= l.at; // the app's first line: its first read
    if (l.names.slice().sort().join(',') === key && out[l.file] === undefined) out[l.file] = l.at;
  }
  return out;
}

/**
 * Waits until every live app pod's mounted files list exactly the live pods' names, then records how long
 * each file took after the API object changed (first seen through the API by a 50 ms poll).
 */
async function expectFilesShowMembers(what: string, expectCount: number): Promise<string[]> {
  const apiAnnotationAt = new Map<string, number>(); // pod -> when the API first showed it the new list
  let apiConfigMapAt = 0;
  let want: string[] = [];
  const live = await waitFor(async () => {
    const pods = (await appPods()).filter((p) => !p.metadata.deletionTimestamp);
    if (pods.length !== expectCount || !pods.every((p) => isReady(p) && p.status.podIP)) return false;
    want = pods.map(nodeName).sort();
    const key = want.join(',');
    const cm = await kube.getOptional<{ data?: Record<string, string> }>(`/api/v1/namespaces/${appNs.name}/configmaps/${PEERS_CM}`);
    if (!apiConfigMapAt && cm?.data?.peers?.trim().split('\n').join(',') === key) apiConfigMapAt = Date.now();
    for (const p of pods) {
      if (!apiAnnotationAt.has(p.metadata.name) && p.metadata.annotations?.['pgcluster.io/peers'] === key) apiAnnotationAt.set(p.metadata.name, Date.now());
    }
    return apiConfigMapAt && pods.every((p) => apiAnnotationAt.has(p.metadata.name)) ? pods : false;
  }, { timeoutMs: 90_000, intervalMs: 50, message: `${what}: ${expectCount} Ready app pods, listed in the ConfigMap and in every pod's annotation` });

  // Inside every pod, both mounted files list the same names.
  for (const p of live) {
    await waitFor(async () => {
      const f = await filesOf(p.metadata.name);
      return JSON.stringify(f.annotation.sort()) === JSON.stringify(want) && JSON.stringify(f.configmap.sort()) === JSON.stringify(want);
    }, { timeoutMs: MOUNTED_FILE_SYNC_MS, intervalMs: 200, message: `${what}: the mounted files of pod ${p.metadata.name} list ${want.join(',')}` });
  }
  for (const p of live) {
    const t = await fileChangeTimes(p.metadata.name, want);
    const annAt = apiAnnotationAt.get(p.metadata.name)!;
    // A refresh is measured only where the app ran before the API change; one that started later read the
    // list at its start.
    const sample = (kind: 'annotation' | 'configmap', fileAt: number | undefined, apiAt: number) => {
      if (t.started === undefined || fileAt === undefined || t.started >= apiAt) return;
      const ms = Math.max(0, fileAt - apiAt);
      refreshMs[kind].push(ms);
      if (ms > 1000) slow.push(`${kind} of ${p.metadata.name} (${what}): ${ms.toFixed(0)} ms, app started ${((apiAt - t.started) / 1000).toFixed(1)} s before the change`);
    };
    sample('annotation', t.annotation, annAt);
    sample('configmap', t.configmap, apiConfigMapAt);
  }
  return want;
}

const appDeployment = (replicas: number) => ({
  apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: BASENAME },
  spec: {
    replicas,
    selector: { matchLabels: { app: BASENAME } },
    template: {
      metadata: { labels: { app: BASENAME } },
      // The app of the README's "reading the peers" section: it polls the mounted files and logs each change.
      spec: { ...onRealNode, containers: [fileWatcherContainer('app', PEERS_CM, 0.1)], volumes: peersVolumes(PEERS_CM).volumes },
    },
  },
});

before(async () => {
  env = requireRealNode();
  kube = testKube();
  imageRef = (await buildImage({ log: (l) => { if (!l.startsWith('  ')) console.error(`[image] ${l}`); } })).ref;
  await importImage(env.containerd, imageRef);
  pgServer = await startPostgres({ extraListen: { address: env.hostIp, clientCidr: env.podCidr } });
  opNs = await createNamespace('real-op');
  // One Helm release owns the CRD at a time (chart.test.ts installs the chart too).
  unlockCrd = await lockStack('crd-release');
  appNs = await createNamespace('real-app');
});

after(async () => {
  await runBin('helm', ['uninstall', RELEASE, '--namespace', opNs.name, '--ignore-not-found', '--wait'], { allowFail: true });
  unlockCrd?.();
  // No operator is left to finish the PgCluster's finalizer: drop it, or the namespace never goes away.
  await kubectl(['patch', 'pgcluster', CLUSTER, '--type=merge', '-p', '{"metadata":{"finalizers":null}}'], { ns: appNs.name }).catch(() => {});
  await appNs?.cleanup();
  await opNs?.cleanup();
  await pgServer?.destroy();
  const fmt = (xs: number[]) => {
    if (!xs.length) return 'no samples';
    const s = [...xs].sort((a, b) => a - b);
    const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
    return `n=${s.length} min ${s[0]!.toFixed(0)} / p50 ${q(0.5).toFixed(0)} / max ${s[s.length - 1]!.toFixed(0)} ms`;
  };
  console.log(`# kubelet refresh after the API object changed: annotation file ${fmt(refreshMs.annotation)}; ConfigMap file ${fmt(refreshMs.configmap)}`);
  for (const l of slow) console.log(`#   slow: ${l}`);
});

test('helm install with the local image: the operator pod becomes Ready on the real node under the restricted profile', async () => {
  // Pods that break the restricted Pod Security Standard are refused by the API server.
  await kubectl(['label', 'namespace', opNs.name, 'pod-security.kubernetes.io/enforce=restricted']);
  // Other tests apply the CRD with kubectl: the release adopts it, as the README tells such users.
  await crdForRelease(kube, RELEASE, opNs.name);
  const [repository, tag] = imageRef.split(/:(?=[^:]+$)/) as [string, string];
  const t0 = Date.now();
  await runBin('helm', ['install', RELEASE, CHART, '--namespace', opNs.name,
    '--set', `image.repository=${repository}`, '--set', `image.tag=${tag}`, '--set', 'image.pullPolicy=Never',
    // The real node is tainted so that no other test's pod lands there.
    '--set', `tolerations[0].key=${REAL_NODE_TAINT.key}`, '--set', 'tolerations[0].operator=Exists',
    // Only this test's namespace: cluster-wide, this operator would also reconcile the PgClusters of the test
    // files running beside it (and, from inside its pod, fail to reach their loopback Postgres and say so in
    // their status).
    '--set', `watchNamespaces={${appNs.name}}`]);
  const pod = await waitFor(async () => {
    const pods = await kubectlJson<{ items: PodJson[] }>(['get', 'pods', '-l', OPERATOR_PODS], { ns: opNs.name });
    return pods.items.find(isReady);
  }, { timeoutMs: 120_000, message: `the operator pod Ready (kubectl -n ${opNs.name} describe pod; kubectl -n ${opNs.name} logs deploy/${FULL})` });
  console.log(`# operator pod: helm install -> Ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  assert.equal(pod.spec.nodeName, env.node, 'it runs on the real node');

  const whoami = await kubectl(['exec', pod.metadata.name, '--', 'sh', '-c', 'id -u; id -g; test -s /var/run/secrets/kubernetes.io/serviceaccount/token && echo token; touch /x 2>&1 || echo read-only'], { ns: opNs.name });
  assert.match(whoami, /^65532\n65532\ntoken\n/, 'runs as 65532:65532 with its ServiceAccount token mounted');
  assert.match(whoami, /Read-only file system/, 'the root filesystem is read-only');
});

test('helm test: the chart\'s test Pod (operator image, restricted profile, its own RBAC) finds the CRD established, the operator Ready, a PgCluster reconciled', async () => {
  const t0 = Date.now();
  const r = await runBin('helm', ['test', RELEASE, '--namespace', opNs.name, '--timeout', '5m'], { allowFail: true });
  const out = `${r.stdout}\n${r.stderr}`;
  console.log(`# helm test: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  assert.equal(r.code, 0, `helm test failed:\n${out}`);
  assert.match(out, /Phase:\s+Succeeded/, out);
  // helm prints the Pod's log itself (hook-output-log-policy): one line per check.
  for (const line of [/ok {3}CRD pgclusters\.pgcluster\.io established/, new RegExp(`ok {3}operator Deployment ${opNs.name}/${FULL} Ready`),
    new RegExp(`ok {3}PgCluster ${appNs.name}/${FULL}-test reconciled`), /ok {3}the PgCluster \(the operator removes its finalizer\): PgCluster .* deleted/, /PASS/]) {
    assert.match(out, line, out);
  }
  // Its ServiceAccount and Roles lived only while it ran; the PgCluster it made is gone; the Pod stays, Completed.
  const left = await runBin('kubectl', ['get', 'serviceaccount,role,rolebinding', '-A', '--field-selector', `metadata.name=${FULL}-test`, '-o', 'name']);
  assert.equal(left.stdout.trim(), '', 'the test\'s RBAC is left');
  assert.equal((await runBin('kubectl', ['-n', appNs.name, 'get', 'pgclusters', '-o', 'name'])).stdout.trim(), '', 'the test\'s PgCluster is left');
  const pod = await kubectlJson<PodJson>(['get', 'pod', `${FULL}-test`], { ns: opNs.name });
  assert.equal(pod.status.phase, 'Succeeded');
  assert.equal(pod.spec.nodeName, env.node, 'it ran on the real node (the operator image is there)');
});

test('the image: uid 65532, no dev dependencies, no TypeScript sources, ENTRYPOINT node flags as src/nodeFlags.ts', async () => {
  const [pod] = (await kubectlJson<{ items: PodJson[] }>(['get', 'pods', '-l', OPERATOR_PODS], { ns: opNs.name })).items;
  assert.ok(pod, 'the operator pod');
  const listing = await kubectl(['exec', pod.metadata.name, '--', 'sh', '-c',
    'ls /app/node_modules; echo ---; find /app -name "*.ts" -not -name "*.d.ts" -not -path "*/node_modules/*"; echo ---; cat /proc/1/cmdline | tr "\\0" " "'], { ns: opNs.name });
  const [modules = '', tsFiles = '', cmdline = ''] = listing.split('---\n');
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
  for (const dev of Object.keys(pkg.devDependencies)) {
    assert.ok(!modules.split('\n').includes(dev.split('/')[0]!) || dev.startsWith('@types'), `dev dependency ${dev} is in the image`);
  }
  assert.ok(!modules.split('\n').includes('typescript'), 'typescript is in the image');
  assert.equal(tsFiles.trim(), '', 'TypeScript sources in the image');
  const flags = readFileSync(join(ROOT, 'src', 'nodeFlags.ts'), 'utf8').match(/--[a-z-]+=\d+/g) ?? [];
  assert.ok(flags.length > 0, 'src/nodeFlags.ts names node flags');
  for (const f of flags) assert.ok(cmdline.includes(f), `PID 1 (${cmdline.trim()}) runs without ${f}`);
});

test('app pods read the peers from mounted files: 3 pods, scale to 4, delete one', REAL_NODE_TEST, async () => {
  const url = new URL(pgServer.url);
  url.hostname = env.hostIp; // the pods reach this machine's Postgres over the bridge
  await kube.create(`/api/v1/namespaces/${appNs.name}/secrets`, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'demo-db' }, stringData: { url: url.toString() } }, 'secrets');
  await kubectl(['apply', '-f', '-'], { ns: appNs.name, input: JSON.stringify({
    apiVersion: 'pgcluster.io/v1alpha1', kind: 'PgCluster', metadata: { name: CLUSTER },
    spec: { selector: { matchLabels: { app: BASENAME } }, postgres: { urlSecretRef: { name: 'demo-db' } }, heartbeatInterval: '2s' },
  }) });
  await kubectl(['apply', '-f', '-'], { ns: appNs.name, input: JSON.stringify(appDeployment(3)) });
  const three = await expectFilesShowMembers('3 replicas', 3);
  const pc = await kubectlJson<Obj>(['get', 'pgcluster', CLUSTER], { ns: appNs.name });
  assert.equal(pc.status.members, 3);
  assert.equal(pc.status.conditions.find((c: Obj) => c.type === 'Connected')?.status, 'True', 'the operator in its pod LISTENs on the Postgres of this machine');

  await kubectl(['scale', 'deployment', BASENAME, '--replicas=4'], { ns: appNs.name });
  const four = await expectFilesShowMembers('scaled to 4', 4);
  assert.equal(four.filter((n) => !three.includes(n)).length, 1, 'one new name');

  const victim = (await appPods()).find((p) => !p.metadata.deletionTimestamp)!;
  const gone = nodeName(victim);
  await kubectl(['delete', 'pod', victim.metadata.name, '--wait=false'], { ns: appNs.name });
  const afterDelete = await expectFilesShowMembers(`pod ${victim.metadata.name} deleted (its replacement started)`, 4);
  assert.ok(!afterDelete.includes(gone), `${gone} left every file`);
});

test('kubectl logs of the operator pod is JSON', async () => {
  const logs = await kubectl(['logs', `deployment/${FULL}`], { ns: opNs.name });
  const lines = logs.trim().split('\n').filter(Boolean);
  assert.ok(lines.length > 0, 'the operator logged something');
  for (const l of lines) {
    const j = JSON.parse(l) as { level?: unknown; msg?: unknown };
    assert.ok(j.level !== undefined && typeof j.msg === 'string', `not a pino line: ${l}`);
  }
});

/**
 * Watches the outputs while the operator is replaced: every observation (a poll every 100 ms) of the
 * ConfigMap and of the annotation of each of `memberPods` must list every one of them. stop() answers what
 * was missing, and when.
 */
function watchMembersKept(memberPods: PodJson[]): { members: string[]; stop(): Promise<string[]> } {
  const members = memberPods.map(nodeName).sort();
  const dropped: string[] = [];
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      const cm = await kube.getOptional<{ data?: Record<string, string> }>(`/api/v1/namespaces/${appNs.name}/configmaps/${PEERS_CM}`);
      const names = cm?.data?.peers?.trim().split('\n') ?? [];
      for (const m of members) if (!names.includes(m)) dropped.push(`ConfigMap lost ${m}`);
      for (const p of await appPods()) {
        if (!memberPods.some((m) => m.metadata.name === p.metadata.name)) continue; // a pod added meanwhile
        const a = p.metadata.annotations?.['pgcluster.io/peers']?.split(',') ?? [];
        for (const m of members) if (!a.includes(m)) dropped.push(`annotation of ${p.metadata.name} lost ${m}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return { members, stop: async () => { watching = false; await watcher; return [...new Set(dropped)]; } };
}

const operatorPods = async () => (await kube.get<{ items: PodJson[] }>(`/api/v1/namespaces/${opNs.name}/pods?labelSelector=${encodeURIComponent(OPERATOR_PODS)}`)).items;

test('deleting the operator pod: the Deployment\'s new pod takes over, no output ever drops a live member', REAL_NODE_TEST, async () => {
  const memberPods = (await appPods()).filter((p) => isReady(p) && !p.metadata.deletionTimestamp);
  assert.equal(memberPods.length, 4);
  const [old] = await operatorPods();
  assert.ok(old);
  const kept = watchMembersKept(memberPods);
  let dropped: string[] = [];
  try {
    await kubectl(['delete', 'pod', old.metadata.name, '--wait=false'], { ns: opNs.name });
    const fresh = await waitFor(async () => (await operatorPods()).find((p) => p.metadata.name !== old.metadata.name && isReady(p)),
      { timeoutMs: 120_000, message: 'a new operator pod Ready' });
    // Once the old pod is gone, only the new one can publish a change: a pod added now must appear.
    await waitFor(async () => (await runBin('kubectl', ['-n', opNs.name, 'get', 'pod', old.metadata.name, '--ignore-not-found', '-o', 'name'])).stdout.trim() === '',
      { timeoutMs: 60_000, message: `the old operator pod ${old.metadata.name} gone` });
    assert.equal(fresh.spec.nodeName, env.node);
    await kubectl(['scale', 'deployment', BASENAME, '--replicas=5'], { ns: appNs.name });
    await expectFilesShowMembers('scaled to 5 after the operator moved', 5);
  } finally {
    dropped = await kept.stop();
  }
  assert.deepEqual(dropped, [], 'an output dropped a live member while the operator was replaced');
});

/** The operator's Lease holder, or '' when none. */
async function leaseHolder(): Promise<string> {
  const lease = await kube.getOptional<{ spec: { holderIdentity?: string } }>(`/apis/coordination.k8s.io/v1/namespaces/${opNs.name}/leases/${FULL}`);
  return lease?.spec.holderIdentity ?? '';
}

/** What a failing wait on the operator pod shows: who holds the Lease, its restarts, and its leader-election and error log lines. */
async function operatorState(pod: PodJson): Promise<string> {
  const now = await kube.getOptional<PodJson>(`/api/v1/namespaces/${opNs.name}/pods/${pod.metadata.name}`);
  const c = now?.status.containerStatuses?.[0];
  const logs = async (previous: boolean) => {
    const r = await runBin('kubectl', ['-n', opNs.name, 'logs', pod.metadata.name, ...(previous ? ['--previous'] : [])], { allowFail: true });
    return (r?.stdout ?? '').split('\n').filter((l) => /leader election|"level":(40|50|60)|exiting/.test(l)).slice(-15).join('\n');
  };
  return [
    `Lease holder: "${await leaseHolder()}"`,
    `pod ${pod.metadata.name}: ${now ? `restarts ${c?.restartCount ?? '?'}, last termination ${JSON.stringify(c?.lastState?.terminated ?? null)}` : 'gone'}`,
    `its log (leader election, warnings, errors):\n${await logs(false)}`,
    `previous container:\n${await logs(true)}`,
  ].join('\n');
}

/** An operator pod's Kubernetes writes so far (pgcluster_kube_writes_total without its Lease), read from its metrics port on the bridge. */
async function writesOf(pod: PodJson): Promise<number | undefined> {
  if (!pod.status.podIP) return undefined;
  try {
    const res = await fetch(`http://${pod.status.podIP}:8080/metrics`, { signal: AbortSignal.timeout(1_000) });
    const series = parseMetrics(await res.text());
    return sumMetric(series, 'pgcluster_kube_writes_total') - sumMetric(series, 'pgcluster_kube_writes_total', { resource: 'leases' });
  } catch {
    return undefined; // not serving (yet, or any more)
  }
}

test('a rolling update of the chart: at most one operator pod ever sends heartbeats or writes, no live member dropped', async () => {
  const memberPods = (await appPods()).filter((p) => isReady(p) && !p.metadata.deletionTimestamp);
  assert.ok(memberPods.length >= 3, 'the app pods of the tests above');
  // The test before replaced the operator pod; on a loaded machine its readiness may still be settling.
  const live = await waitFor(async () => {
    const pods = (await operatorPods()).filter((p) => !p.metadata.deletionTimestamp);
    return pods.length === 1 && isReady(pods[0]!) ? pods : undefined;
  }, { timeoutMs: 120_000, message: 'one operator pod, Ready' }).catch(async (e: Error) => {
    // Say why: an operator container that exited left its last lines behind.
    const previous = await runBin('kubectl', ['-n', opNs.name, 'logs', '-l', OPERATOR_PODS, '--previous', '--tail=20'], { allowFail: true });
    throw new Error(`${e.message}; the previous operator container's last lines:\n${previous?.stdout ?? ''}${previous?.stderr ?? ''}`);
  });
  const old = live[0]!;
  const pc = await kubectlJson<Obj>(['get', 'pgcluster', CLUSTER], { ns: appNs.name });
  const senders = await recordSenders(pgServer.url, pc.status.channel as string);
  const operatorSession = /^pgcluster-operator\/sender\/(.+)$/;
  const podOf = (pods: PodJson[]) => (applicationName: string) => {
    const id = operatorSession.exec(applicationName)?.[1];
    return pods.find((p) => id && p.metadata.name.endsWith(id))?.metadata.name ?? `not an operator pod: ${applicationName}`;
  };
  const kept = watchMembersKept(memberPods);

  // Kubernetes writes: each operator pod's counter, every 150 ms, with the time it was read.
  const samples: { at: number; pod: string; writes: number }[] = [];
  const seenPods = new Map<string, PodJson>([[old.metadata.name, old]]);
  // Membership changes all along (a kwok pod joins, then leaves, every second), so that there is always
  // something to write, for whichever operator is active.
  let running = true;
  const sampler = (async () => {
    while (running) {
      for (const p of await operatorPods()) seenPods.set(p.metadata.name, p);
      await Promise.all([...seenPods.values()].map(async (p) => {
        const at = performance.now();
        const writes = await writesOf(p);
        if (writes !== undefined) samples.push({ at, pod: p.metadata.name, writes });
      }));
      await new Promise((r) => setTimeout(r, 150));
    }
  })();
  let churned = 0;
  const churn = (async () => {
    for (let i = 0; running; i++) {
      const name = `churn-${i}`;
      await createPodObject(kube, appNs.name, { name, labels: { app: BASENAME }, node: KWOK_NODE });
      churned++;
      await new Promise((r) => setTimeout(r, 1_000));
      await kube.request('DELETE', `/api/v1/namespaces/${appNs.name}/pods/${name}`, { body: { gracePeriodSeconds: 0 } });
    }
  })();

  let dropped: string[] = [];
  let fresh: PodJson | undefined;
  try {
    // Something to see before the rollout: the old pod leads, heartbeats (every 2 s) and writes (the churn).
    // On a loaded machine it may have lost the Lease and restarted as a standby since the test before: the
    // failure then says so, from its log.
    const explain = async (e: Error) => { throw new Error(`${e.message}\n${await operatorState(old)}`); };
    await waitFor(async () => (await leaseHolder()) === old.metadata.name, { timeoutMs: 60_000, message: `the Lease held by ${old.metadata.name}` }).catch(explain);
    await waitFor(() => senders.heard.length > 0 && samples.some((s) => s.pod === old.metadata.name && s.writes > 0),
      { timeoutMs: 30_000, message: 'heartbeats and writes from the operator pod before the rollout' })
      .catch((e: Error) => explain(new Error(`${e.message}: ${senders.heard.length} heartbeats heard, ${samples.filter((s) => s.pod === old.metadata.name).length} metrics readings of the pod, last ${JSON.stringify(samples.filter((s) => s.pod === old.metadata.name).at(-1) ?? null)}`)));
    // A changed pod template: the Deployment rolls (1 replica, maxSurge 25% -> 1, maxUnavailable 25% -> 0:
    // the new pod starts, and is Ready, while the old one still runs).
    await runBin('helm', ['upgrade', RELEASE, CHART, '--namespace', opNs.name, '--reuse-values', '--set', `podAnnotations.rollout=r${Date.now()}`]);
    await runBin('kubectl', ['-n', opNs.name, 'rollout', 'status', `deployment/${FULL}`, '--timeout=180s']);
    await waitFor(async () => !(await operatorPods()).some((p) => p.metadata.name === old.metadata.name),
      { timeoutMs: 60_000, message: `the old operator pod ${old.metadata.name} gone` });
    fresh = (await operatorPods()).find((p) => isReady(p));
    assert.ok(fresh, 'the new operator pod');
    const newPod = fresh.metadata.name;
    // And a while after: three heartbeats of the new pod once the old one is gone, and a write of it.
    const goneAt = performance.now();
    await waitFor(() => senders.heard.filter((h) => h.at > goneAt && podOf([...seenPods.values()])(senders.names.get(h.pid) ?? '') === newPod).length >= 3
      && samples.some((s) => s.pod === newPod && s.writes > 0),
    { timeoutMs: 60_000, message: `heartbeats and writes of the new operator pod ${newPod}` });
  } finally {
    running = false;
    await Promise.all([sampler, churn]);
    dropped = await kept.stop();
    await senders.stop();
    await kubectl(['delete', 'pods', '-l', 'app=' + BASENAME, '--field-selector', `spec.nodeName=${KWOK_NODE}`, '--wait=true'], { ns: appNs.name });
  }
  const newPod = fresh.metadata.name;
  const identity = podOf([...seenPods.values()]);

  // Every figure first, then the claims: a failing run shows all three.
  // (a) Heartbeats: the senders, in the order Postgres delivered their notifications, switch once.
  const runs = senderRuns(senders, identity);
  const shown = runs.map((r) => `${r.identity} x${r.count}`).join(' -> ');
  const gapMs = runs.length > 1 ? runs[1]!.from - runs[0]!.to : NaN;
  console.log(`# rolling update: heartbeat senders ${shown}; takeover gap (last NOTIFY of the old pod -> first of the new) ${gapMs.toFixed(0)} ms`);
  // (b) Kubernetes writes: once a reading shows the new pod has written, no later pair of readings of the
  // old pod shows it writing (a write between readings r1 and r2 of the old pod happened after r1).
  const readings = (pod: string) => samples.filter((s) => s.pod === pod).sort((a, b) => a.at - b.at);
  const newWroteAt = readings(newPod).find((s) => s.writes > 0)?.at ?? Infinity;
  const oldR = readings(old.metadata.name);
  const late = oldR.slice(1).filter((s, i) => s.writes > oldR[i]!.writes && oldR[i]!.at > newWroteAt).map((s) => `${s.writes} at +${(s.at - newWroteAt).toFixed(0)} ms`);
  console.log(`# rolling update: Kubernetes writes of the old pod ${oldR.at(-1)?.writes ?? 0}, of the new pod ${readings(newPod).at(-1)?.writes ?? 0}`
    + ` (${churned} churn pods); old pod's writes after the new one had written: ${late.length ? late.join(', ') : 'none'}`);

  assert.deepEqual(senders.errors, [], 'every sending PID named in pg_stat_activity');
  assert.deepEqual(runs.map((r) => r.identity), [old.metadata.name, newPod], `heartbeat senders over time: ${shown}`);
  assert.ok(gapMs < 15_000, `the new pod took over ${gapMs.toFixed(0)} ms after the old one's last heartbeat: more than the lease duration, was the Lease released?`);
  assert.ok(newWroteAt < Infinity, 'the new pod wrote');
  assert.deepEqual(late, [], 'the old pod wrote after the new one had written');
  // (c) Outputs.
  assert.deepEqual(dropped, [], 'an output dropped a live member during the rolling update');
});

test('helm uninstall keeps the CRD and the PgClusters (keep policy)', async () => {
  const r = await runBin('helm', ['uninstall', RELEASE, '--namespace', opNs.name, '--wait']);
  assert.match(r.stdout + r.stderr, /kept due to the resource policy/);
  await kubectl(['get', 'crd', CRD_NAME]);
  await kubectl(['get', 'pgcluster', CLUSTER], { ns: appNs.name });
});
