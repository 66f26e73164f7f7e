// Upgrading a live installation, as users do it: the previous release — its git tag's chart, and its image built
// from the tag's Dockerfile — installed by Helm into a real pod; PgClusters with and without spec.channel,
// clustering app pods on the real node; then `helm upgrade` to this tree's release, as `npm run release` makes
// it (the packaged chart, the image's OCI archive imported into containerd). Every output is watched for the
// whole upgrade: no member is ever missing from a ConfigMap, a pod annotation or an app's mounted files, and
// every PgCluster keeps its channel (its status before = after, and the new release records it in
// pgcluster.io/defaults). Then `helm test` of the upgraded release.
//
// "Previous" is the highest v<x.y.z> tag on an ancestor of HEAD (not on HEAD itself), or PGCO_UPGRADE_FROM;
// "current" is package.json's version. The two images never share a name, even when the versions are equal:
// the previous one is tagged with the git tag (localhost/pgcluster-operator:v0.1.0), the current one with the
// version (localhost/pgcluster-operator:0.1.0, what `npm run image` builds). A clone without the tags fails
// here, saying how to fetch them.
//
// Needs the real node of the test stack (`npm test` starts it for this directory).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileWatcherContainer, onRealNode, parseFileWatcherLine, peersVolumes } from '../../harness/apps.ts';
import { buildImage, packageVersion } from '../../harness/image.ts';
import { isReady } from '../../harness/kube.ts';
import { startPostgres, type PostgresServer } from '../../harness/postgres.ts';
import { runCommand } from '../../harness/proc.ts';
import { importImage, importImageArchive, REAL_NODE_TAINT } from '../../harness/realnode.ts';
import { checkoutRelease, previousRelease, type ReleaseTag } from '../../harness/release.ts';
import { crdForRelease } from '../../support/crd.ts';
import { createNamespace, kubectl, kubectlJson, lockStack, MOUNTED_FILE_SYNC_MS, REAL_NODE_TEST, requireRealNode, runBin, waitFor, type RealNodeEnv } from '../../support/env.ts';
import { testKube } from '../../support/operator.ts';
import { watchObjects, watchPeers, watchPodAnnotations } from '../../support/watch.ts';
import { DEFAULTS_ANNOTATION } from '../../../src/core/defaults.ts';
import { paths } from '../../../src/kube/resources.ts';
import type { KubeClient, KubeObject } from '../../../src/kube/client.ts';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const RELEASE = 'pgup';
const FULL = `${RELEASE}-pgcluster-operator`;
const OPERATOR_PODS = `app.kubernetes.io/name=pgcluster-operator,app.kubernetes.io/instance=${RELEASE}`;
const REPOSITORY = 'localhost/pgcluster-operator';
/** The clustered apps: one PgCluster on the default channel, one on a channel of its spec. */
const CLUSTERS = [
  { name: 'chat', channel: undefined, replicas: 3 },
  { name: 'jobs', channel: 'upgrade_jobs_explicit', replicas: 2 },
] as const;
type Cluster = (typeof CLUSTERS)[number];

interface PodJson {
  metadata: { name: string; deletionTimestamp?: string; annotations?: Record<string, string> };
  spec: { nodeName?: string; containers: { image: string }[] };
  status: { podIP?: string; conditions?: { type: string; status: string }[] };
}
interface PgClusterJson extends KubeObject {
  metadata: { name: string; generation: number; annotations?: Record<string, string> };
  status?: { channel?: string; observedGeneration?: number };
}

let env: RealNodeEnv;
let kube: KubeClient;
let prev: ReleaseTag;
let prevTree: { dir: string; remove(): void } | undefined;
let prevImage: string;
let version: string;
let artifacts: string | undefined;
let pgServer: PostgresServer | undefined;
let opNs: Awaited<ReturnType<typeof createNamespace>> | undefined;
let appNs: Awaited<ReturnType<typeof createNamespace>>;
let unlockCrd: (() => void) | undefined;
/** status.channel of each PgCluster under the previous release. */
const channelBefore = new Map<string, string>();

const secs = (t0: number) => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
const nodeName = (c: Cluster, p: PodJson) => `${c.name}@${p.status.podIP}`;

/** The values both releases get: the local images, the real node's taint, only the test's namespace. */
const values = () => ['--set', `image.repository=${REPOSITORY}`, '--set', 'image.pullPolicy=Never',
  '--set', `tolerations[0].key=${REAL_NODE_TAINT.key}`, '--set', 'tolerations[0].operator=Exists',
  '--set', `watchNamespaces={${appNs.name}}`];

async function appPods(c: Cluster): Promise<PodJson[]> {
  const list = await kube.get<{ items: PodJson[] }>(`${paths.pods(appNs.name)}?labelSelector=app%3D${c.name}`);
  return list.items.filter((p) => !p.metadata.deletionTimestamp);
}

const operatorPods = async () => (await kube.get<{ items: PodJson[] }>(`${paths.pods(opNs!.name)}?labelSelector=${encodeURIComponent(OPERATOR_PODS)}`)).items;

/** Waits until `count` Ready pods of `c` are listed, exactly, in its ConfigMap, in every one's annotation and in every one's mounted files. */
async function expectClustered(c: Cluster, count: number, what: string): Promise<{ pods: PodJson[]; members: string[] }> {
  let members: string[] = [];
  const pods = await waitFor(async () => {
    const ps = await appPods(c);
    if (ps.length !== count || !ps.every((p) => isReady(p) && p.status.podIP)) return false;
    members = ps.map((p) => nodeName(c, p)).sort();
    const key = members.join(',');
    const cm = await kube.getOptional<{ data?: Record<string, string> }>(`${paths.configMaps(appNs.name)}/${c.name}-peers`);
    if (cm?.data?.peers?.trim().split('\n').sort().join(',') !== key) return false;
    return ps.every((p) => p.metadata.annotations?.['pgcluster.io/peers']?.split(',').sort().join(',') === key) ? ps : false;
  }, { timeoutMs: 120_000, intervalMs: 200, message: `${what}: ${count} Ready pods of ${c.name}, listed in its ConfigMap and every pod's annotation` });
  for (const p of pods) {
    await waitFor(async () => {
      const seen = lastFileLists(await kubectl(['logs', p.metadata.name], { ns: appNs.name }));
      return ['annotation', 'configmap'].every((f) => seen.get(f)?.slice().sort().join(',') === members.join(','));
    }, { timeoutMs: MOUNTED_FILE_SYNC_MS, intervalMs: 500, message: `${what}: the mounted files of ${p.metadata.name} list ${members.join(',')}` });
  }
  return { pods, members };
}

/** The last list each file showed, from the app's log. */
function lastFileLists(log: string): Map<string, string[]> {
  const last = new Map<string, string[]>();
  for (const line of log.split('\n')) {
    const l = parseFileWatcherLine(line);
    if (l) last.set(l.file, l.names);
  }
  return last;
}

/** Each file that showed a list lacking one of `members` after it had first shown them all: the first such list, and how many. */
function filesDropped(pod: string, log: string, members: string[]): string[] {
  const complete = new Set<string>();
  const lost = new Map<string, { first: string; times: number }>();
  for (const line of log.split('\n')) {
    const l = parseFileWatcherLine(line);
    if (!l) continue;
    const missing = members.filter((m) => !l.names.includes(m));
    if (!missing.length) complete.add(l.file);
    else if (complete.has(l.file)) {
      const was = lost.get(l.file);
      lost.set(l.file, { first: was?.first ?? `lacked ${missing.join(',')} at ${new Date(l.at).toISOString()}`, times: (was?.times ?? 0) + 1 });
    }
  }
  return [...lost].map(([file, { first, times }]) => `${pod}'s ${file} file ${first} (${times} change${times > 1 ? 's' : ''} lacking a member)`);
}

before(async () => {
  env = requireRealNode();
  kube = testKube();
  version = packageVersion();
  // Throws, saying how to fetch the tags, in a clone without them.
  prev = previousRelease();
  prevImage = `${REPOSITORY}:${prev.tag}`;
  console.log(`# upgrade from ${prev.tag} (commit ${prev.commit.slice(0, 12)}, image ${prevImage}) to ${version} (this tree, npm run release -- --snapshot)`);
  const log = (l: string) => { if (!l.startsWith('  ')) console.error(`[image] ${l}`); };

  // The previous release, from its tag: the chart as it was, and its Dockerfile built as it was.
  prevTree = checkoutRelease(prev);
  const built = await buildImage({ root: prevTree.dir, ref: prevImage, log });
  await importImage(env.containerd, built.ref);

  // This tree's release artifacts, made by the command maintainers run (the image build is npm run image's).
  artifacts = mkdtempSync(join(tmpdir(), 'pgco-release-'));
  const t0 = Date.now();
  const r = await runCommand(process.execPath, [join(ROOT, 'scripts', 'release.ts'), '--snapshot', '--out', artifacts, '--image-repository', REPOSITORY],
    { env: { ...process.env, HELM: join(env.binDir, 'helm') }, onOutput: (l) => console.error(`[release] ${l.replace(/^\[release\] /, '')}`) });
  assert.equal(r.code, 0, `npm run release -- --snapshot failed:\n${r.stdout}\n${r.stderr}`);
  console.log(`# npm run release -- --snapshot: ${secs(t0)}`);
  await importImageArchive(env.containerd, join(artifacts, `pgcluster-operator-${version}.oci.tar`));
  const images = await runCommand('ctr', ['-a', env.containerd.replace(/^unix:\/\//, ''), '-n', 'k8s.io', 'images', 'ls', '-q']);
  for (const ref of [prevImage, `${REPOSITORY}:${version}`]) {
    assert.ok(images.stdout.split('\n').some((l) => l === ref || l === `docker.io/${ref}`), `${ref} in the node's containerd:\n${images.stdout}`);
  }

  pgServer = await startPostgres({ extraListen: { address: env.hostIp, clientCidr: env.podCidr } });
  opNs = await createNamespace('upgrade-op');
  appNs = await createNamespace('upgrade-app');
  // One Helm release owns the CRD at a time (chart.test.ts and operator-in-pod install the chart too).
  unlockCrd = await lockStack('crd-release');
});

after(async () => {
  if (opNs) await runBin('helm', ['uninstall', RELEASE, '--namespace', opNs.name, '--ignore-not-found', '--wait'], { allowFail: true });
  unlockCrd?.();
  // No operator is left to finish the PgClusters' finalizers: drop them, or the namespace never goes away.
  for (const c of CLUSTERS) await kubectl(['patch', 'pgcluster', c.name, '--type=merge', '-p', '{"metadata":{"finalizers":null}}'], { ns: appNs?.name }).catch(() => {});
  await appNs?.cleanup();
  await opNs?.cleanup();
  await pgServer?.destroy();
  prevTree?.remove();
  if (artifacts) rmSync(artifacts, { recursive: true, force: true });
});

test('helm install of the previous release: its tag\'s chart and image, under the restricted profile', async () => {
  await kubectl(['label', 'namespace', opNs!.name, 'pod-security.kubernetes.io/enforce=restricted']);
  // Other tests apply the CRD with kubectl: the release adopts it, as the README tells such users.
  await crdForRelease(kube, RELEASE, opNs!.name);
  const t0 = Date.now();
  await runBin('helm', ['install', RELEASE, join(prevTree!.dir, 'charts', 'pgcluster-operator'), '--namespace', opNs!.name, ...values(), '--set', `image.tag=${prev.tag}`]);
  const pod = await waitFor(async () => (await operatorPods()).find(isReady),
    { timeoutMs: 120_000, message: `the ${prev.tag} operator pod Ready (kubectl -n ${opNs!.name} logs deploy/${FULL})` });
  console.log(`# ${prev.tag}: helm install -> operator Ready in ${secs(t0)}`);
  assert.equal(pod.spec.containers[0]!.image, prevImage);
  assert.equal(pod.spec.nodeName, env.node);
});

test('clustered apps under the previous release: PgClusters with and without spec.channel', REAL_NODE_TEST, async () => {
  const url = new URL(pgServer!.url);
  url.hostname = env.hostIp; // the operator's pod reaches this machine's Postgres over the bridge
  await kubectl(['create', 'secret', 'generic', 'db', `--from-literal=url=${url.toString()}`], { ns: appNs.name });
  for (const c of CLUSTERS) {
    await kubectl(['apply', '-f', '-'], { ns: appNs.name, input: JSON.stringify({
      apiVersion: 'pgcluster.io/v1alpha1', kind: 'PgCluster', metadata: { name: c.name },
      spec: { selector: { matchLabels: { app: c.name } }, postgres: { urlSecretRef: { name: 'db' } }, heartbeatInterval: '2s', ...(c.channel ? { channel: c.channel } : {}) },
    }) });
    await kubectl(['apply', '-f', '-'], { ns: appNs.name, input: JSON.stringify({
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: c.name },
      spec: {
        replicas: c.replicas,
        selector: { matchLabels: { app: c.name } },
        template: {
          metadata: { labels: { app: c.name } },
          // The app of the README's "reading the peers": polls both mounted files, logs each change.
          spec: { ...onRealNode, containers: [fileWatcherContainer('app', `${c.name}-peers`, 0.2)], volumes: peersVolumes(`${c.name}-peers`).volumes },
        },
      },
    }) });
  }
  for (const c of CLUSTERS) {
    await expectClustered(c, c.replicas, `under ${prev.tag}`);
    const pc = await kubectlJson<PgClusterJson>(['get', 'pgcluster', c.name], { ns: appNs.name });
    const channel = pc.status?.channel;
    assert.ok(channel, `${c.name} has a status.channel under ${prev.tag}`);
    if (c.channel) assert.equal(channel, c.channel);
    channelBefore.set(c.name, channel);
    console.log(`# ${prev.tag}: PgCluster ${c.name} on channel ${channel}${c.channel ? ' (spec)' : ' (default)'}, defaults recorded: ${pc.metadata.annotations?.[DEFAULTS_ANNOTATION] ?? 'none'}`);
  }
});

test(`helm upgrade to this tree's release: no member ever missing from any output, every PgCluster keeps its channel`, REAL_NODE_TEST, async () => {
  assert.equal(channelBefore.size, CLUSTERS.length, 'the clusters of the test before');
  const initial = new Map<string, { pods: PodJson[]; members: string[] }>();
  for (const c of CLUSTERS) initial.set(c.name, await expectClustered(c, c.replicas, 'before the upgrade'));
  const [old] = await operatorPods();
  assert.ok(old);

  // Watches of every output, and of the PgClusters, for the whole upgrade.
  const configMaps = await Promise.all(CLUSTERS.map((c) => watchPeers(kube, appNs.name, `${c.name}-peers`)));
  const annotations = await watchPodAnnotations(kube, appNs.name, `app in (${CLUSTERS.map((c) => c.name).join(',')})`);
  // helm upgrade replaces the CRD, and the API server starts that resource's watch cache anew: a watch resumed
  // from before may be told 410 Gone and starts again from a list (every PgCluster's current version). The
  // outputs' watches (ConfigMaps, pods) must never miss a version.
  const pgclusters = await watchObjects<PgClusterJson>(kube, paths.pgclusters(appNs.name), { what: `PgClusters in ${appNs.name}`, relistWhenExpired: true });
  const stopAll = () => ({
    configMaps: configMaps.map((w) => w.stop()),
    annotations: annotations.stop(),
    pgclusters: pgclusters.stop(),
  });

  let seen: ReturnType<typeof stopAll> | undefined;
  let failed: Error | undefined;
  const t0 = Date.now();
  const timings: string[] = [];
  try {
    const chart = join(artifacts!, `pgcluster-operator-${version}.tgz`);
    // No image.tag: the chart's appVersion names the image (localhost/pgcluster-operator:<version>).
    await runBin('helm', ['upgrade', RELEASE, chart, '--namespace', opNs!.name, ...values()]);
    await runBin('kubectl', ['-n', opNs!.name, 'rollout', 'status', `deployment/${FULL}`, '--timeout=300s']);
    const fresh = await waitFor(async () => {
      const pods = await operatorPods();
      return !pods.some((p) => p.metadata.name === old.metadata.name) && pods.find((p) => isReady(p));
    }, { timeoutMs: 120_000, message: `the ${prev.tag} operator pod ${old.metadata.name} gone, the new one Ready` });
    timings.push(`new operator Ready and the old one gone ${secs(t0)}`);
    assert.equal(fresh.spec.containers[0]!.image, `${REPOSITORY}:${version}`, 'the upgraded Deployment runs this tree\'s image');
    // The new release has reconciled every PgCluster: it recorded the defaults it keeps.
    for (const c of CLUSTERS) {
      await waitFor(async () => {
        const pc = await kubectlJson<PgClusterJson>(['get', 'pgcluster', c.name], { ns: appNs.name });
        return pc.metadata.annotations?.[DEFAULTS_ANNOTATION] !== undefined && pc.status?.observedGeneration === pc.metadata.generation;
      }, { timeoutMs: 120_000, message: `PgCluster ${c.name} reconciled by the new release (annotation ${DEFAULTS_ANNOTATION})` });
    }
    timings.push(`every PgCluster recorded ${secs(t0)}`);
    // And it publishes: a pod added now appears in every output.
    const chat = CLUSTERS[0];
    await kubectl(['scale', 'deployment', chat.name, `--replicas=${chat.replicas + 1}`], { ns: appNs.name });
    await expectClustered(chat, chat.replicas + 1, 'scaled up after the upgrade');
    timings.push(`a new pod published by the new release ${secs(t0)}`);
  } catch (e) {
    failed = e as Error; // reported with what the watches saw
  } finally {
    seen = stopAll();
  }
  console.log(`# helm upgrade ${prev.tag} -> ${version}: ${timings.join('; ')}`);

  const missing: string[] = [];
  CLUSTERS.forEach((c, i) => {
    const { pods, members } = initial.get(c.name)!;
    for (const [n, list] of seen.configMaps[i]!.entries()) {
      const lost = members.filter((m) => !list.includes(m));
      if (lost.length) missing.push(`ConfigMap ${c.name}-peers, version ${n + 1} of ${seen.configMaps[i]!.length}, lacked ${lost.join(',')}`);
    }
    for (const p of pods) {
      const versions = seen.annotations.get(p.metadata.name) ?? [];
      assert.ok(versions.length > 0, `the watch saw pod ${p.metadata.name}`);
      for (const [n, list] of versions.entries()) {
        const lost = members.filter((m) => !list.includes(m));
        if (lost.length) missing.push(`annotation of ${p.metadata.name}, version ${n + 1} of ${versions.length}, lacked ${lost.join(',')}`);
      }
    }
  });
  // What the apps read: once a file listed every member, it never lacked one.
  for (const c of CLUSTERS) {
    const { pods, members } = initial.get(c.name)!;
    for (const p of pods) missing.push(...filesDropped(p.metadata.name, await kubectl(['logs', p.metadata.name], { ns: appNs.name }), members));
  }
  // Channels: every version of every PgCluster's status, and the record of the new release.
  const moved = [...new Set(seen.pgclusters.filter((pc) => pc.status?.channel !== undefined && pc.status.channel !== channelBefore.get(pc.metadata.name))
    .map((pc) => `${pc.metadata.name}: status.channel ${pc.status!.channel}, was ${channelBefore.get(pc.metadata.name)}`))];
  if (failed) {
    throw new Error(`${failed.message}\nMeanwhile, outputs that lacked a member: ${missing.length ? missing.join('; ') : 'none'}; PgClusters that moved: ${moved.length ? moved.join('; ') : 'none'}`, { cause: failed });
  }
  assert.deepEqual(missing, [], 'a member went missing from an output during the upgrade');
  assert.deepEqual(moved, [], 'a PgCluster moved to another channel');
  for (const c of CLUSTERS) {
    const pc = await kubectlJson<PgClusterJson>(['get', 'pgcluster', c.name], { ns: appNs.name });
    assert.equal(pc.status?.channel, channelBefore.get(c.name), `${c.name}: status.channel after the upgrade`);
    const recorded = JSON.parse(pc.metadata.annotations![DEFAULTS_ANNOTATION]!) as { channel: string };
    assert.equal(recorded.channel, channelBefore.get(c.name), `${c.name}: the channel recorded in ${DEFAULTS_ANNOTATION}`);
  }
});

test('helm test --logs of the upgraded release passes', async () => {
  // --logs asks for the log of every test object by its name: they all have the Pod's (the chart README).
  const r = await runBin('helm', ['test', RELEASE, '--namespace', opNs!.name, '--timeout', '5m', '--logs'], { allowFail: true });
  const out = `${r.stdout}\n${r.stderr}`;
  assert.equal(r.code, 0, `helm test --logs failed:\n${out}`);
  assert.match(out, /Phase:\s+Succeeded/, out);
  assert.match(out, new RegExp(`POD LOGS: ${FULL}-test\\n(.*\\n)*PASS`), out);
});

test('helm test fails, saying why, when the operator does not run; its RBAC goes all the same', async () => {
  await kubectl(['scale', 'deployment', FULL, '--replicas=0'], { ns: opNs!.name });
  const r = await runBin('helm', ['test', RELEASE, '--namespace', opNs!.name, '--timeout', '5m'], { allowFail: true });
  const out = `${r.stdout}\n${r.stderr}`;
  assert.notEqual(r.code, 0, `helm test passed without an operator:\n${out}`);
  // helm prints the failed Pod's log (hook-output-log-policy).
  assert.match(out, new RegExp(`FAIL Deployment ${FULL} has replicas: 0: no operator runs`), out);
  const pod = await kubectlJson<{ status: { phase: string } }>(['get', 'pod', `${FULL}-test`], { ns: opNs!.name });
  assert.equal(pod.status.phase, 'Failed', 'the failed test Pod stays for kubectl logs');
  const left = await runBin('kubectl', ['get', 'serviceaccount,role,rolebinding', '-A', '--field-selector', `metadata.name=${FULL}-test`, '-o', 'name']);
  assert.equal(left.stdout.trim(), '', 'the test\'s RBAC is left after a failure');
});
