// The informer against a real API server: it keeps retrying (with capped backoff) through errors such as a
// missing RBAC grant, syncs once it may, follows changes, and replays its cache on resync.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { KubeClient } from '../../src/kube/client.ts';
import { Informer, type InformerEvent } from '../../src/kube/informer.ts';
import type { ConfigMapObject } from '../../src/kube/resources.ts';
import { createNamespace, kubectl, requireEnv, waitFor } from '../support/env.ts';
import { paths } from '../../src/kube/resources.ts';

let ns: { name: string; cleanup(): Promise<void> };
before(async () => { ns = await createNamespace('e2e-inf'); });
after(async () => ns?.cleanup());

test('an informer recovers from errors, follows changes and resyncs', async () => {
  const n = ns.name;
  await kubectl(['create', 'serviceaccount', 'reader', '-n', n]);
  await kubectl(['create', 'configmap', 'before', '-n', n, '--from-literal=a=1']);
  const token = (await kubectl(['create', 'token', 'reader', '-n', n, '--duration=1h'])).trim();
  const kc = new KubeConfig();
  kc.loadFromFile(requireEnv().kubeconfig);
  const cluster = kc.getCurrentCluster();
  assert.ok(cluster);
  const limited = new KubeConfig();
  limited.loadFromOptions({
    clusters: [cluster], users: [{ name: 'reader', token }],
    contexts: [{ name: 'reader', cluster: cluster.name, user: 'reader' }], currentContext: 'reader',
  });
  const errors: unknown[] = [];
  const events: [InformerEvent, string][] = [];
  const inf = new Informer<ConfigMapObject>(new KubeClient(limited), {
    path: paths.configMaps(n), log: pino({ level: 'silent' }), resyncMs: 700,
    onError: (e) => errors.push(e),
  });
  inf.on((e, o) => events.push([e, o.metadata.name]));
  inf.start();
  try {
    // Forbidden: the informer keeps retrying rather than giving up or crashing.
    await waitFor(() => errors.length >= 2, { message: 'at least two failed list attempts', timeoutMs: 10_000 });
    assert.equal(inf.hasSynced, false);
    await kubectl(['create', 'role', 'cm-reader', '-n', n, '--verb=get,list,watch', '--resource=configmaps']);
    await kubectl(['create', 'rolebinding', 'cm-reader', '-n', n, '--role=cm-reader', `--serviceaccount=${n}:reader`]);
    await waitFor(() => inf.hasSynced, { message: 'synced once allowed (backoff is capped)', timeoutMs: 40_000 });
    assert.ok(inf.get(`${n}/before`), 'the listed object is in the cache');

    await kubectl(['create', 'configmap', 'after', '-n', n, '--from-literal=a=1']);
    await waitFor(() => inf.get(`${n}/after`), { message: 'an added object arrives by watch' });
    await kubectl(['patch', 'configmap', 'after', '-n', n, '-p', '{"data":{"a":"2"}}']);
    await waitFor(() => inf.get(`${n}/after`)?.data?.a === '2', { message: 'an update arrives' });
    await kubectl(['delete', 'configmap', 'before', '-n', n]);
    await waitFor(() => !inf.get(`${n}/before`), { message: 'a delete arrives' });
    assert.deepEqual([...inf.inNamespace(n)].map((o) => o.metadata.name).sort(), ['after', 'kube-root-ca.crt'].filter((x) => inf.get(`${n}/${x}`)).sort());

    const before = events.filter(([e]) => e === 'resync').length;
    await waitFor(() => events.filter(([e]) => e === 'resync').length > before, { message: 'a resync replays the cache', timeoutMs: 5_000 });
    assert.ok(events.some(([e, name]) => e === 'update' && name === 'after'));
    assert.ok(events.some(([e, name]) => e === 'delete' && name === 'before'));
  } finally {
    inf.stop();
  }
});

test('a quiet watch stays open: no restart and no warning while nothing changes', async () => {
  // client-node's Watch ended every watch silent for 30 s, so every quiet namespace logged a failed watch
  // twice a minute and re-established it. Ours is ended by the server's timeoutSeconds (300 s) only.
  const n = ns.name;
  const kc = new KubeConfig();
  kc.loadFromFile(requireEnv().kubeconfig);
  let watches = 0;
  class CountingClient extends KubeClient {
    override watch(...args: Parameters<KubeClient['watch']>): ReturnType<KubeClient['watch']> {
      watches++;
      return super.watch(...args);
    }
  }
  const errors: unknown[] = [];
  const inf = new Informer<ConfigMapObject>(new CountingClient(kc), {
    path: paths.secrets(n), log: pino({ level: 'silent' }), onError: (e) => errors.push(e),
  });
  inf.start();
  try {
    await waitFor(() => inf.hasSynced, { message: 'synced' });
    await new Promise((r) => setTimeout(r, 40_000));
    assert.deepEqual(errors, [], 'no failed list/watch');
    assert.equal(watches, 1, 'one watch, never restarted');
    await kubectl(['create', 'secret', 'generic', 'late', '-n', n, '--from-literal=a=1']);
    await waitFor(() => inf.get(`${n}/late`), { message: 'the 40 s old watch still delivers' });
  } finally {
    inf.stop();
  }
});
