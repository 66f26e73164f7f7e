// apply.ts through a recording Writer, and reconcile end to end on in-memory caches (no API server, no
// Postgres): the controller-rs "scenario" style. The e2e suite covers the same against real servers.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { applyOutputs, applyStatus } from '../../src/controller/write/apply.ts';
import { applyDeps } from '../../src/controller/steps/apply.ts';
import type { OutputsPlan } from '../../src/controller/plan/outputs.ts';
import { reconcile, RESYNC_MS, TAKEN_RECHECK_MS } from '../../src/controller/reconcile.ts';
import { REMOTE_PUBLISH_INTERVAL_MS } from '../../src/controller/runtime/publishPacing.ts';
import { SECRET_RETRY_BASE_MS } from '../../src/controller/runtime/secretRetry.ts';
import { FINALIZER, CLUSTER_KEY, DEFAULT_POD_ANNOTATION } from '../../src/core/spec.ts';
import { markerKey } from '../../src/core/ownership.ts';
import { KubeApiError } from '../../src/kube/client.ts';
import type { ConfigMapObject } from '../../src/kube/resources.ts';
import { chatSpec, NS, pgcluster, pod, testContext } from '../support/controllerKit.ts';
import { eventually as until } from '../support/poll.ts';

const M = markerKey(DEFAULT_POD_ANNOTATION);
const MINE = { [M]: `chat ${DEFAULT_POD_ANNOTATION}` };
const conflict = () => new KubeApiError('POST', '/x', 409, 'AlreadyExists', 'exists');
const gone = () => new KubeApiError('PATCH', '/x', 404, 'NotFound', 'gone');
const invalid = () => new KubeApiError('PATCH', '/x', 422, 'Invalid', 'metadata.annotations: Too long');
const tooLarge = () => new KubeApiError('POST', '/x', 413, 'RequestEntityTooLarge', 'too large');

describe('applyOutputs', () => {
  const pc = pgcluster('chat', chatSpec);
  const created: OutputsPlan = {
    configMap: { kind: 'create', object: { metadata: { name: 'chat-peers', namespace: NS }, data: { peers: 'a@b\n' } } },
    deleteConfigMaps: [], podPatches: [{ pod: pod('p1'), annotations: { x: 'y' } }, { pod: pod('p2'), annotations: { x: 'y' } }],
    configMapConflict: undefined, podConflicts: [],
  };

  test('the ConfigMap first, then the pods; each write remembered until the cache shows it', async () => {
    const ctx = testContext();
    await applyOutputs(applyDeps(ctx), pc, created);
    assert.deepEqual(ctx.writer.verbs(), ['createConfigMap chat-peers', 'patchPodAnnotations p1', 'patchPodAnnotations p2']);
    assert.equal(ctx.writes.memo.size, 3);
    assert.ok(ctx.writes.memo.observe('pod:prod/p1', pod('p1'))?.metadata.annotations?.x === 'y', 'a stale cache reads as our write');
  });

  test('renamed ConfigMaps are deleted before the patch', async () => {
    const ctx = testContext();
    const before: ConfigMapObject = { metadata: { name: 'chat-peers', namespace: NS, resourceVersion: '3' } };
    await applyOutputs(applyDeps(ctx), pc, { configMap: { kind: 'patch', name: 'chat-peers', data: { peers: '' }, labels: {}, before }, deleteConfigMaps: ['old'], podPatches: [], configMapConflict: undefined, podConflicts: [] });
    assert.deepEqual(ctx.writer.verbs(), ['deleteConfigMap old', 'patchConfigMap chat-peers']);
  });

  test('a ConfigMap name taken by an object we cannot see (409 on create): reported, the pods are still written', async () => {
    const ctx = testContext();
    ctx.writer.fail = (c) => (c.verb === 'createConfigMap' ? conflict() : undefined);
    assert.deepEqual(await applyOutputs(applyDeps(ctx), pc, created), { configMapTaken: true, rejected: [] });
    assert.deepEqual(ctx.writer.verbs(), ['patchPodAnnotations p1', 'patchPodAnnotations p2']);
  });

  test('writes the API server refuses (422, 413) are reported; the other writes go on', async () => {
    const ctx = testContext();
    ctx.writer.fail = (c) => (c.verb === 'createConfigMap' ? tooLarge() : c.verb === 'patchPodAnnotations' && c.name === 'p1' ? invalid() : undefined);
    const r = await applyOutputs(applyDeps(ctx), pc, created);
    assert.deepEqual(ctx.writer.verbs(), ['patchPodAnnotations p2']);
    assert.equal(r.rejected.length, 2);
    assert.match(r.rejected[0] ?? '', /^ConfigMap prod\/chat-peers: .*413/);
    assert.match(r.rejected[1] ?? '', /^pod p1: .*422/);
  });

  test('a guarded removal whose marker changed meanwhile (422) is nothing to do, not a rejection', async () => {
    const ctx = testContext();
    ctx.writer.fail = (c) => (c.verb === 'patchPodAnnotations' ? invalid() : undefined);
    const plan: OutputsPlan = { ...created, configMap: undefined, podPatches: [{ pod: pod('p1'), annotations: { x: null }, guard: { key: 'm', value: 'chat x' } }] };
    assert.deepEqual(await applyOutputs(applyDeps(ctx), pc, plan), { configMapTaken: false, rejected: [] });
  });

  test('a pod deleted meanwhile (404) is skipped; another failure fails the apply after every pod was tried', async () => {
    const ctx = testContext();
    ctx.writer.fail = (c) => (c.verb === 'patchPodAnnotations' && c.name === 'p1' ? gone() : undefined);
    await applyOutputs(applyDeps(ctx), pc, created);
    assert.deepEqual(ctx.writer.verbs(), ['createConfigMap chat-peers', 'patchPodAnnotations p2']);
    const ctx2 = testContext();
    ctx2.writer.fail = (c) => (c.verb === 'patchPodAnnotations' && c.name === 'p1' ? new Error('500') : undefined);
    await assert.rejects(applyOutputs(applyDeps(ctx2), pc, created), /500/);
    assert.deepEqual(ctx2.writer.verbs(), ['createConfigMap chat-peers', 'patchPodAnnotations p2']);
  });

  test('applyStatus: the status, then its Events; none without a write', async () => {
    const ctx = testContext();
    await applyStatus(applyDeps(ctx), pc, undefined);
    assert.deepEqual(ctx.writer.verbs(), []);
    await applyStatus(applyDeps(ctx), pc, { status: { members: 1 }, before: pc, events: [{ type: 'Warning', reason: 'R', message: 'm' }] });
    assert.deepEqual(ctx.writer.verbs(), ['patchStatus chat', 'createEvent chat']);
  });
});

describe('reconcile scenarios', () => {
  const members = () => [pod('a', { labels: { app: 'chat' }, ip: '10.0.0.1' }), pod('b', { labels: { app: 'chat' }, ip: '10.0.0.2' })];

  test('no finalizer yet: only the finalizer is written', async () => {
    const ctx = testContext({ pgclusters: [pgcluster('chat', chatSpec, { finalizers: [] })], pods: members() });
    assert.deepEqual(await reconcile(ctx, 'prod/chat'), {});
    assert.deepEqual(ctx.writer.calls, [{ verb: 'setFinalizers', name: 'chat', finalizers: [FINALIZER] }]);
    // Queued again (a pod event) before the cache shows the write: the finalizer is there, not written again
    // against the old resourceVersion (a 409 from the API server); the reconcile goes on from what was written.
    ctx.writer.calls = [];
    await reconcile(ctx, 'prod/chat');
    assert.ok(!ctx.writer.verbs().includes('setFinalizers chat'), `no second finalizer write: ${ctx.writer.verbs().join(', ')}`);
    assert.ok(ctx.writer.verbs().includes('patchStatus chat'), 'reconciled as a PgCluster with its finalizer');
  });

  test('Secret missing: outputs list the members, Connected False/SecretNotFound with an Event, Ready NotConnected; a second pass writes nothing', async () => {
    const ctx = testContext({ pgclusters: [pgcluster('chat', chatSpec)], pods: members() });
    const r = await reconcile(ctx, 'prod/chat');
    // Secrets are not watched: the missing one is read again within a second, not at the 60 s resync.
    assert.ok(r.requeueAfterMs !== undefined && r.requeueAfterMs >= SECRET_RETRY_BASE_MS / 2 && r.requeueAfterMs <= SECRET_RETRY_BASE_MS + 5, `requeued after ${r.requeueAfterMs} ms`);
    assert.deepEqual(ctx.writer.verbs(), ['createConfigMap chat-peers', 'patchPodAnnotations a', 'patchPodAnnotations b', 'patchStatus chat', 'createEvent chat', 'createEvent chat']);
    const cm = ctx.writer.calls[0];
    assert.ok(cm?.verb === 'createConfigMap');
    assert.equal(cm.data.peers, 'chat@10.0.0.1\nchat@10.0.0.2\n');
    const status = ctx.writer.calls.find((c) => c.verb === 'patchStatus');
    assert.ok(status?.verb === 'patchStatus');
    assert.deepEqual(status.status.conditions?.map((c) => [c.type, c.status, c.reason]), [['Connected', 'False', 'SecretNotFound'], ['Ready', 'False', 'NotConnected']]);
    assert.equal(status.status.members, 2);
    await until(() => ctx.writer.calls.filter((c) => c.verb === 'createEvent').length === 2, 'both Events');
    // The caches have not caught up; the write memo answers for them: no second write.
    ctx.writer.calls = [];
    // A reconcile for another reason, before the read is due, keeps the time it is due.
    ctx.clock.advance(100);
    assert.equal((await reconcile(ctx, 'prod/chat')).requeueAfterMs, r.requeueAfterMs! - 100);
    assert.deepEqual(ctx.writer.verbs(), []);
    // At the retry, still missing: the next read is due later, up to twice the base.
    ctx.clock.advance(r.requeueAfterMs! - 100);
    const again = (await reconcile(ctx, 'prod/chat')).requeueAfterMs;
    assert.ok(again !== undefined && again >= SECRET_RETRY_BASE_MS / 2 && again <= 2 * SECRET_RETRY_BASE_MS + 5, `then after ${again} ms`);
  });

  test('a write that fails names the reconcile step it failed in; the retry writes what was left', async () => {
    const ctx = testContext({ pgclusters: [pgcluster('chat', chatSpec)], pods: members() });
    ctx.writer.fail = (c) => (c.verb === 'patchStatus' ? new Error('500 from the API server') : undefined);
    await assert.rejects(reconcile(ctx, 'prod/chat'), (err: Error) => err.name === 'ReconcileStepError' && err.message === 'apply: 500 from the API server');
    ctx.writer.fail = undefined;
    ctx.writer.calls = [];
    await reconcile(ctx, 'prod/chat');
    assert.deepEqual(ctx.writer.verbs().filter((v) => !v.startsWith('createEvent')), ['patchStatus chat'], 'the outputs were written before; only the status is left');
  });

  test('a pod leaves: the ConfigMap and the remaining pod are patched, the leaver loses our annotation', async () => {
    const ctx = testContext({ pgclusters: [pgcluster('chat', chatSpec)], pods: members() });
    await reconcile(ctx, 'prod/chat');
    ctx.writer.calls = [];
    const value = 'chat@10.0.0.1,chat@10.0.0.2';
    const ann = { [DEFAULT_POD_ANNOTATION]: value, ...MINE };
    ctx.pods.set(pod('a', { labels: { app: 'chat' }, ip: '10.0.0.1', annotations: ann, rv: '2' }));
    ctx.pods.set(pod('b', { labels: { app: 'web' }, ip: '10.0.0.2', annotations: ann, rv: '2' }));
    await reconcile(ctx, 'prod/chat');
    const patches = ctx.writer.calls.filter((c) => c.verb === 'patchPodAnnotations').map((c) => c.verb === 'patchPodAnnotations' && [c.name, c.annotations, c.guard]);
    assert.deepEqual(patches, [
      ['a', { [DEFAULT_POD_ANNOTATION]: 'chat@10.0.0.1', ...MINE }, undefined],
      ['b', { [DEFAULT_POD_ANNOTATION]: null, [M]: null }, { key: M, value: MINE[M] }],
    ]);
  });

  test('an invalid spec: Ready False/InvalidSpec and nothing else', async () => {
    const ctx = testContext({ pgclusters: [pgcluster('chat', { ...chatSpec, channel: 'Bad-Channel' })], pods: members() });
    assert.deepEqual(await reconcile(ctx, 'prod/chat'), {});
    assert.deepEqual(ctx.writer.verbs(), ['patchStatus chat', 'createEvent chat']);
  });

  test('deleted: our annotations and ConfigMap go, then the finalizer', async () => {
    const ann = { [DEFAULT_POD_ANNOTATION]: 'x@y', ...MINE, 'other': 'kept' };
    const cm: ConfigMapObject = { metadata: { name: 'chat-peers', namespace: NS, labels: { [CLUSTER_KEY]: 'chat' }, ownerReferences: [{ apiVersion: 'pgcluster.io/v1alpha1', kind: 'PgCluster', name: 'chat', uid: 'uid-chat' }] } };
    const ctx = testContext({
      pgclusters: [pgcluster('chat', { ...chatSpec, channel: 'Invalid-Spec-Still-Cleaned' }, { deleting: true, finalizers: [FINALIZER, 'else'] })],
      pods: [pod('a', { annotations: ann }), pod('b', { annotations: { [DEFAULT_POD_ANNOTATION]: 'z', [M]: `other ${DEFAULT_POD_ANNOTATION}` } }), pod('c', { annotations: { 'x/y': '1', [CLUSTER_KEY]: 'chat' } })],
      configMaps: [cm],
    });
    await reconcile(ctx, 'prod/chat');
    assert.deepEqual(ctx.writer.calls, [
      { verb: 'patchPodAnnotations', name: 'a', annotations: { [DEFAULT_POD_ANNOTATION]: null, [M]: null }, guard: { key: M, value: MINE[M] } },
      { verb: 'patchPodAnnotations', name: 'c', annotations: { [CLUSTER_KEY]: null }, guard: { key: CLUSTER_KEY, value: 'chat' } },
      { verb: 'deleteConfigMap', name: 'chat-peers' },
      { verb: 'setFinalizers', name: 'chat', finalizers: ['else'] },
    ]);
  });

  test('the ConfigMap name is taken: Ready False/OutputConflict with one Event, the pods still annotated; no create again until the recheck', async () => {
    const ctx = testContext({ pgclusters: [pgcluster('chat', chatSpec)], pods: members() });
    ctx.writer.fail = (c) => (c.verb === 'createConfigMap' ? conflict() : undefined);
    const r = await reconcile(ctx, 'prod/chat');
    assert.ok((r.requeueAfterMs ?? 0) <= TAKEN_RECHECK_MS + 5);
    assert.deepEqual(ctx.writer.verbs(), ['patchPodAnnotations a', 'patchPodAnnotations b', 'patchStatus chat', 'createEvent chat', 'createEvent chat']);
    const status = ctx.writer.calls.find((c) => c.verb === 'patchStatus');
    assert.ok(status?.verb === 'patchStatus');
    const ready = status.status.conditions?.find((c) => c.type === 'Ready');
    assert.deepEqual([ready?.status, ready?.reason], ['False', 'OutputConflict']);
    assert.match(ready?.message ?? '', /ConfigMap prod\/chat-peers exists and is not this PgCluster's/);
    await until(() => ctx.writer.calls.filter((c) => c.verb === 'createEvent').length === 2, 'both Events');
    const ev = ctx.writer.calls.filter((c) => c.verb === 'createEvent').map((c) => c.verb === 'createEvent' && [c.event.type, c.event.reason]);
    assert.deepEqual(ev, [['Warning', 'SecretNotFound'], ['Warning', 'OutputConflict']]);
    ctx.writer.calls = [];
    await reconcile(ctx, 'prod/chat');
    assert.deepEqual(ctx.writer.verbs(), [], 'no second create, no second status');
    ctx.clock.advance(TAKEN_RECHECK_MS + 1);
    ctx.writer.fail = undefined;
    await reconcile(ctx, 'prod/chat');
    assert.deepEqual(ctx.writer.verbs().slice(0, 1), ['createConfigMap chat-peers'], 'tried again after the recheck interval');
    // Created now: the name is no longer waited on (no requeue before the resync or the next expiry).
    ctx.clock.advance(REMOTE_PUBLISH_INTERVAL_MS + 1); // past any hold-back of remote changes too
    const after = await reconcile(ctx, 'prod/chat');
    // A past recheck time is forgotten, not a requeue every 10 ms: the next wake is the missing Secret's retry.
    const retryAt = ctx.runtimes.get('prod/chat')?.secretRetry.wakeAt();
    assert.ok(retryAt !== undefined);
    assert.equal(after.requeueAfterMs, Math.max(10, retryAt - ctx.clock.monotonic() + 5));
  });
});
