// Hardening, ownership (issue 11, items 1 to 3): the operator never writes or deletes what it does not own,
// reports it instead, and two PgClusters that select the same pods settle without a write loop. Against the
// real API server and Postgres; pods are reported Ready by the test (no kubelet needed for this).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { holdsFor, requireEnv, waitFor, kubectl } from '../support/env.ts';
import { condition, configMapPeers, createPgCluster, createPod, getPgCluster, operatorInNamespace, type OperatorProcess, pgclusterEvents, type PgClusterJson, testKube, waitForPeers } from '../support/operator.ts';
import { DEFAULT_POD_ANNOTATION } from '../../src/core/spec.ts';
import { markerKey } from '../../src/core/ownership.ts';
import { paths } from '../../src/kube/resources.ts';

const kube = testKube();
type Annotated = { metadata: { resourceVersion: string; annotations?: Record<string, string> } };
const annotations = async (ns: string, pod: string) => (await kube.get<Annotated>(paths.pod(ns, pod))).metadata.annotations ?? {};
const ready = (pc: PgClusterJson | undefined) => condition(pc, 'Ready');

describe('ownership: what the operator does not own it leaves alone, and says so', () => {
  let ns: { name: string; cleanup(): Promise<void> };
  let op: OperatorProcess;
  let n: string;
  const spec = (app: string, extra: Record<string, unknown> = {}) => ({
    selector: { matchLabels: { app } }, postgres: { urlSecretRef: { name: 'db' } }, channel: `${n.replace(/-/g, '_')}_${app.replace(/-/g, '_')}`, heartbeatInterval: '1s', ...extra,
  });

  before(async () => {
    ({ ns, op } = await operatorInNamespace(kube, 'e2e-own', requireEnv().databaseUrl));
    n = ns.name;
  });
  after(async () => {
    const code = await op?.stop();
    await ns?.cleanup();
    assert.equal(code, 0, 'the operator exits 0 on SIGTERM');
  });

  test('a ConfigMap under the output name that is not ours (unlabelled, or labelled with no owner) is never written; pods and status go on; Ready says OutputConflict with an Event', async () => {
    for (const [app, labels] of [['cm-plain', {}], ['cm-labelled', { 'app.kubernetes.io/managed-by': 'pgcluster-operator' }]] as const) {
      await kube.create(paths.configMaps(n), { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `${app}-peers`, labels }, data: { mine: 'keep me' } }, 'configmaps');
      const rvBefore = (await kube.get<Annotated>(paths.configMap(n, `${app}-peers`))).metadata.resourceVersion;
      await createPod(kube, n, { name: `${app}-1`, labels: { app }, ip: '10.70.0.1' });
      await createPgCluster(kube, n, app, spec(app));
      // The pod annotation is still written, and the status says why the ConfigMap is not.
      await waitFor(async () => (await annotations(n, `${app}-1`))[DEFAULT_POD_ANNOTATION] === `${app}@10.70.0.1`, { message: `${app}: the pod annotated despite the conflict` });
      const pc = await waitFor(async () => {
        const p = await getPgCluster(kube, n, app);
        return ready(p)?.reason === 'OutputConflict' && p;
      }, { message: `${app}: Ready OutputConflict` });
      assert.equal(ready(pc)?.status, 'False');
      assert.match(ready(pc)?.message ?? '', new RegExp(`ConfigMap ${n}/${app}-peers .*left alone: delete it`));
      assert.equal(pc.status?.members, 1, 'the status is written');
      const ev = await waitFor(async () => (await pgclusterEvents(kube, n, app)).find((e) => e.reason === 'OutputConflict'), { message: `${app}: an OutputConflict Event` });
      assert.equal(ev.type, 'Warning');
      assert.match(ev.message, /spec.output.configMapName/);
      const cm = await kube.get<Annotated & { data: Record<string, string> }>(paths.configMap(n, `${app}-peers`));
      assert.deepEqual([cm.metadata.resourceVersion, cm.data], [rvBefore, { mine: 'keep me' }], 'the ConfigMap is untouched');

      // The fix the message names: another configMapName. Ready comes back; the foreign ConfigMap stays as it was.
      await kube.patch(paths.pgcluster(n, app), { spec: { output: { configMapName: `${app}-own` } } }, 'pgclusters');
      await waitForPeers(kube, n, `${app}-own`, [`${app}-1`], [`${app}@10.70.0.1`]);
      await waitFor(async () => ready(await getPgCluster(kube, n, app))?.status === 'True', { message: `${app}: Ready again` });
      await kube.delete(paths.pgcluster(n, app), 'pgclusters');
      await waitFor(async () => (await getPgCluster(kube, n, app)) === undefined, { message: `${app}: deleted` });
      const still = await kube.get<Annotated & { data: Record<string, string> }>(paths.configMap(n, `${app}-peers`));
      assert.deepEqual([still.metadata.resourceVersion, still.data], [rvBefore, { mine: 'keep me' }], 'deleting the PgCluster does not delete what was never its own');
    }
  });

  test('two PgClusters name one ConfigMap: the first keeps it, the second reports it and never writes it', async () => {
    await createPod(kube, n, { name: 'first-1', labels: { app: 'first' }, ip: '10.71.0.1' });
    await createPod(kube, n, { name: 'second-1', labels: { app: 'second' }, ip: '10.71.0.2' });
    await createPgCluster(kube, n, 'first', spec('first', { output: { configMapName: 'shared-peers' } }));
    await waitForPeers(kube, n, 'shared-peers', ['first-1'], ['first@10.71.0.1']);
    await createPgCluster(kube, n, 'second', spec('second', { output: { configMapName: 'shared-peers' } }));
    const pc = await waitFor(async () => {
      const p = await getPgCluster(kube, n, 'second');
      return ready(p)?.reason === 'OutputConflict' && p;
    }, { message: 'second: Ready OutputConflict' });
    assert.match(ready(pc)?.message ?? '', new RegExp(`ConfigMap ${n}/shared-peers belongs to PgCluster first`));
    assert.equal((await annotations(n, 'second-1'))[DEFAULT_POD_ANNOTATION], 'second@10.71.0.2', 'second\'s pods are annotated');
    assert.deepEqual(await configMapPeers(kube, n, 'shared-peers'), ['first@10.71.0.1'], 'the ConfigMap is first\'s');
    await kube.delete(paths.pgcluster(n, 'second'), 'pgclusters');
    await waitFor(async () => (await getPgCluster(kube, n, 'second')) === undefined, { message: 'second deleted' });
    assert.deepEqual(await configMapPeers(kube, n, 'shared-peers'), ['first@10.71.0.1'], 'deleting second leaves first\'s ConfigMap');
    assert.equal(ready(await getPgCluster(kube, n, 'first'))?.status, 'True');
  });

  test('annotation keys: a value someone else put there is left alone and reported; a rename removes the old key only where this PgCluster wrote it', async () => {
    const K2 = 'example.com/peers';
    await createPod(kube, n, { name: 'ann-1', labels: { app: 'ann' }, ip: '10.72.0.1' });
    await createPod(kube, n, { name: 'ann-2', labels: { app: 'ann' }, ip: '10.72.0.2', annotations: { [DEFAULT_POD_ANNOTATION]: 'set-by-hand@somewhere', [K2]: 'also by hand' } });
    await createPgCluster(kube, n, 'ann', spec('ann'));
    const both = 'ann@10.72.0.1,ann@10.72.0.2';
    await waitFor(async () => (await annotations(n, 'ann-1'))[DEFAULT_POD_ANNOTATION] === both, { message: 'ann-1 annotated' });
    const pc = await waitFor(async () => {
      const p = await getPgCluster(kube, n, 'ann');
      return p?.status?.conflictingPods === 1 && p;
    }, { message: 'status.conflictingPods 1' });
    assert.deepEqual([ready(pc)?.status, ready(pc)?.reason], ['False', 'OutputConflict']);
    assert.match(ready(pc)?.message ?? '', /left alone on 1 selected pod\(s\): ann-2 \(a value this PgCluster did not write\)/);
    assert.equal((await annotations(n, 'ann-2'))[DEFAULT_POD_ANNOTATION], 'set-by-hand@somewhere');

    // The user takes the stale value off: the operator writes its own.
    await kubectl(['-n', n, 'annotate', 'pod', 'ann-2', `${DEFAULT_POD_ANNOTATION}-`]);
    await waitFor(async () => (await annotations(n, 'ann-2'))[DEFAULT_POD_ANNOTATION] === both, { message: 'ann-2 annotated once free' });
    await waitFor(async () => ready(await getPgCluster(kube, n, 'ann'))?.reason === 'PeersPublished', { message: 'Ready PeersPublished' });

    // Rename to K2: ann-1 gets it; on ann-2 K2 is someone else's and stays; the old key leaves both (ours on both).
    await kube.patch(paths.pgcluster(n, 'ann'), { spec: { output: { podAnnotation: K2 } } }, 'pgclusters');
    await waitFor(async () => {
      const a1 = await annotations(n, 'ann-1');
      const a2 = await annotations(n, 'ann-2');
      return a1[K2] === both && a1[markerKey(K2)] === `ann ${K2}` && a1[DEFAULT_POD_ANNOTATION] === undefined && a1[markerKey(DEFAULT_POD_ANNOTATION)] === undefined
        && a2[DEFAULT_POD_ANNOTATION] === undefined && a2[K2] === 'also by hand' && a2[markerKey(K2)] === undefined;
    }, { message: 'the list under the new key where it is ours, the old key gone, the hand-made value kept' });
    await waitFor(async () => (await getPgCluster(kube, n, 'ann'))?.status?.conflictingPods === 1, { message: 'ann-2 reported under the new key' });
  });

  test('two PgClusters select the same pods: the older owns the key, no write after the first settle (a minute measured), each deletion cleans exactly its own', async () => {
    const app = 'dup';
    for (let i = 1; i <= 3; i++) await createPod(kube, n, { name: `dup-${i}`, labels: { app }, ip: `10.73.0.${i}` });
    const pods = ['dup-1', 'dup-2', 'dup-3'];
    // elder first (older creationTimestamp: one second apart at least, the API's resolution), then young; then
    // one with a key of its own, which lives beside them.
    await createPgCluster(kube, n, 'elder', spec(app, { channel: `${n.replace(/-/g, '_')}_dup_e`, nodeName: { basename: 'elder' } }));
    await waitFor(async () => (await annotations(n, 'dup-1'))[DEFAULT_POD_ANNOTATION] !== undefined, { message: 'elder has annotated' });
    const created = async (name: string) => (await kube.get<{ metadata: { creationTimestamp: string } }>(paths.pgcluster(n, name))).metadata.creationTimestamp;
    const elderAt = Date.parse(await created('elder'));
    await waitFor(() => Date.now() >= elderAt + 1500, { message: 'a creationTimestamp later than elder\'s' });
    await createPgCluster(kube, n, 'young', spec(app, { channel: `${n.replace(/-/g, '_')}_dup_y`, nodeName: { basename: 'young' } }));
    await createPgCluster(kube, n, 'other-key', spec(app, { channel: `${n.replace(/-/g, '_')}_dup_o`, nodeName: { basename: 'other' }, output: { podAnnotation: 'example.com/dup-peers' } }));

    const elderValue = 'elder@10.73.0.1,elder@10.73.0.2,elder@10.73.0.3';
    const otherValue = 'other@10.73.0.1,other@10.73.0.2,other@10.73.0.3';
    const settled = async () => {
      for (const p of pods) {
        const a = await annotations(n, p);
        if (a[DEFAULT_POD_ANNOTATION] !== elderValue || a[markerKey(DEFAULT_POD_ANNOTATION)] !== `elder ${DEFAULT_POD_ANNOTATION}`) return false;
        if (a['example.com/dup-peers'] !== otherValue) return false;
      }
      const young = await getPgCluster(kube, n, 'young');
      return young?.status?.conflictingPods === 3 && ready(young)?.reason === 'OutputConflict' && young;
    };
    const young = await waitFor(settled, { message: 'elder owns the default key on every pod, other-key its own key, young reports 3 conflicting pods', timeoutMs: 30_000 });
    assert.match(ready(young)?.message ?? '', /left alone on 3 selected pod\(s\): dup-\d \(owned by the older PgCluster elder\)/);
    await waitFor(async () => (await pgclusterEvents(kube, n, 'young')).some((e) => e.reason === 'OutputConflict' && e.type === 'Warning'), { message: 'young: an OutputConflict Event' });
    assert.equal(ready(await getPgCluster(kube, n, 'elder'))?.status, 'True');
    assert.equal(ready(await getPgCluster(kube, n, 'other-key'))?.status, 'True');

    // A minute of steady state: not one pod write (the old code wrote these pods ~150 times a second).
    const rvs = async () => Promise.all(pods.map(async (p) => (await kube.get<Annotated>(paths.pod(n, p))).metadata.resourceVersion));
    const writesBefore = await op.metric('pgcluster_kube_writes_total', { resource: 'pods' });
    const rvBefore = await rvs();
    await holdsFor(async () => (await op.metric('pgcluster_kube_writes_total', { resource: 'pods' })) === writesBefore, { forMs: 60_000, intervalMs: 1000, message: 'no pod write in a minute of steady state' });
    assert.deepEqual(await rvs(), rvBefore, 'the pods did not change in that minute');

    // elder goes: its key and marker leave; young takes the key over; other-key's stays.
    await kube.delete(paths.pgcluster(n, 'elder'), 'pgclusters');
    const youngValue = 'young@10.73.0.1,young@10.73.0.2,young@10.73.0.3';
    await waitFor(async () => {
      for (const p of pods) {
        const a = await annotations(n, p);
        if (a[DEFAULT_POD_ANNOTATION] !== youngValue || a[markerKey(DEFAULT_POD_ANNOTATION)] !== `young ${DEFAULT_POD_ANNOTATION}` || a['example.com/dup-peers'] !== otherValue) return false;
      }
      return true;
    }, { message: 'young owns the default key once elder is gone; other-key untouched' });
    await waitFor(async () => ready(await getPgCluster(kube, n, 'young'))?.reason === 'PeersPublished', { message: 'young Ready PeersPublished' });
    // young goes: the default key leaves every pod; other-key's key and marker stay.
    await kube.delete(paths.pgcluster(n, 'young'), 'pgclusters');
    await waitFor(async () => (await getPgCluster(kube, n, 'young')) === undefined, { message: 'young deleted' });
    for (const p of pods) {
      const a = await annotations(n, p);
      assert.equal(a[DEFAULT_POD_ANNOTATION], undefined);
      assert.equal(a[markerKey(DEFAULT_POD_ANNOTATION)], undefined);
      assert.deepEqual([a['example.com/dup-peers'], a[markerKey('example.com/dup-peers')]], [otherValue, 'other-key example.com/dup-peers']);
    }
  });
});
