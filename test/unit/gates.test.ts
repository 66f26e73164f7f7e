// plan/gates.ts, the readiness gate, as a table: which pods get which condition (status, reason, message),
// only pods with the gate, only when it differs from what is observed, lastTransitionTime only on a flip. Then
// its writes (pods/status) and whole reconciles on in-memory caches: the fan-out's pass end brings the
// reconcile that flips the gate.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { planGates, type GateInput, type PublishedOutputs, type SelectorClaim } from '../../src/controller/plan/gates.ts';
import { selectMembers } from '../../src/controller/plan/members.ts';
import { reconcile } from '../../src/controller/reconcile.ts';
import { applyDeps } from '../../src/controller/steps/apply.ts';
import { applyGateWrite } from '../../src/controller/write/apply.ts';
import { DEFAULT_POD_ANNOTATION, effectiveSpec, NODE_NAME_ANNOTATION, READINESS_GATE, type EffectiveSpec, type PgClusterSpec } from '../../src/core/spec.ts';
import { KubeApiError } from '../../src/kube/client.ts';
import { gateCondition, podView, slimPod, type PodCondition, type PodObject } from '../../src/kube/pods.ts';
import { chatSpec, pgcluster, pod, testContext } from '../support/controllerKit.ts';
import { markerKey } from '../../src/core/ownership.ts';
import { eventually as until } from '../support/poll.ts';

const T0 = '2026-01-01T00:00:00Z';
const NOW = '2026-01-01T12:00:00Z';
const chat = { app: 'chat' };
const A = 'chat@10.0.0.1';
const B = 'chat@10.0.0.2';

function specOf(s: PgClusterSpec = chatSpec): EffectiveSpec {
  const r = effectiveSpec(pgcluster('chat', s));
  assert.ok(r.ok);
  return r.spec;
}
const gate = (status: 'True' | 'False', reason: string, message = 'm', lastTransitionTime = T0): PodCondition => ({ type: READINESS_GATE, status, reason, message, lastTransitionTime });
/** Pod a: gated, containers ready, not Ready (what the gate holds back). Pod b: no gate, Ready. */
const a = (o: Parameters<typeof pod>[1] = {}) => pod('a', { labels: chat, ip: '10.0.0.1', gated: true, ready: false, containersReady: true, ...o });
const b = pod('b', { labels: chat, ip: '10.0.0.2' });
const everywhere = (names = [A, B]): PublishedOutputs => ({
  configMap: new Set(names), annotations: new Map([['a', new Set(names)], ['b', new Set(names)]]), dns: undefined, refused: undefined,
});

interface Case {
  name: string;
  pods?: PodObject[];
  spec?: PgClusterSpec;
  outputs?: Partial<PublishedOutputs>;
  /** Names left out of the published list. */
  unpublished?: string[];
  rivals?: SelectorClaim[];
  /** Pod a's desired condition: status, reason, message; undefined: none planned. */
  want: [string, string, RegExp] | undefined;
  /** The write, if any: lastTransitionTime. */
  written?: string;
  waiting?: number;
}

const cases: Case[] = [
  { name: 'in every output: True/Published, written over an absent condition', want: ['True', 'Published', /^chat@10\.0\.0\.1 is in every output of PgCluster chat$/], written: NOW },
  { name: 'a pod without the gate gets nothing, Ready or not', pods: [pod('a', { labels: chat, ip: '10.0.0.1', ready: false }), b], want: undefined },
  { name: 'not in the ConfigMap yet: a wait (NotPublished), not written over an absent condition; the pass end must reconcile', outputs: { configMap: new Set([B]) }, want: ['False', 'NotPublished', /announced by PgCluster chat and not yet in every output/], waiting: 1 },
  { name: 'not in one member\'s annotation yet: NotPublished', outputs: { annotations: new Map([['a', new Set([A, B])], ['b', new Set([B])]]) }, want: ['False', 'NotPublished', /./], waiting: 1 },
  { name: 'its own annotation counts too', outputs: { annotations: new Map([['a', new Set([B])], ['b', new Set([A, B])]]) }, want: ['False', 'NotPublished', /./], waiting: 1 },
  { name: 'annotation output off: only the ConfigMap is looked at', outputs: { annotations: undefined, configMap: new Set([A]) }, want: ['True', 'Published', /./], written: NOW },
  { name: 'DNS output on, its address not in the slices yet: NotPublished', outputs: { dns: new Set(['10.0.0.2']) }, want: ['False', 'NotPublished', /./], waiting: 1 },
  { name: 'DNS output on, its address in the slices: True', outputs: { dns: new Set(['10.0.0.1', '10.0.0.2']) }, want: ['True', 'Published', /./], written: NOW },
  {
    name: 'a host that is a DNS name has no address in the DNS output: not waited for there',
    pods: [a({ annotations: { [NODE_NAME_ANNOTATION]: 'chat@a.chat.prod' } }), b],
    outputs: { ...everywhere(['chat@a.chat.prod', B]), dns: new Set(['10.0.0.2']) }, want: ['True', 'Published', /chat@a\.chat\.prod is in every output/], written: NOW,
  },
  { name: 'containers not ready: a wait (ContainersNotReady), nothing written over an absent condition', pods: [a({ containersReady: false }), b], want: ['False', 'ContainersNotReady', /waiting for the pod's containers to be ready: PgCluster chat announces it then/] },
  { name: 'containers no longer ready after True: flipped False, the transition time moves', pods: [a({ containersReady: false, gate: gate('True', 'Published') }), b], want: ['False', 'ContainersNotReady', /./], written: NOW },
  { name: 'containers not ready over a problem: the wait replaces it, same transition time', pods: [a({ containersReady: false, gate: gate('False', 'OutputRefused') }), b], want: ['False', 'ContainersNotReady', /./], written: T0 },
  { name: 'a wait over another wait: not written (one PATCH per flip)', pods: [a({ gate: gate('False', 'ContainersNotReady') }), b], outputs: { configMap: new Set([B]) }, want: ['False', 'NotPublished', /./], waiting: 1 },
  { name: 'True stays True while published, though a member\'s annotation does not list it (a newer member\'s, not written yet)', pods: [a({ gate: gate('True', 'Published', `${A} is in every output of PgCluster chat`) }), b], outputs: { annotations: new Map([['a', new Set([A, B])], ['b', new Set([B])]]) }, want: ['True', 'Published', /./] },
  { name: 'True and unchanged: nothing written', pods: [a({ gate: gate('True', 'Published', `${A} is in every output of PgCluster chat`) }), b], want: ['True', 'Published', /./] },
  { name: 'True over a problem: written, the transition time moves', pods: [a({ gate: gate('False', 'OutputRefused') }), b], want: ['True', 'Published', /./], written: NOW },
  { name: 'left out of the published names (maxPeers): OutputRefused, written', unpublished: [A], want: ['False', 'OutputRefused', /chat@10\.0\.0\.1 is left out of the outputs of PgCluster chat: more names than maxPeers/], written: NOW },
  { name: 'left out after True: flipped False', pods: [a({ gate: gate('True', 'Published') }), b], unpublished: [A], want: ['False', 'OutputRefused', /./], written: NOW },
  { name: 'the ConfigMap is someone else\'s: OutputRefused with its message', outputs: { configMap: { refused: 'ConfigMap prod/chat-peers belongs to PgCluster first' } }, want: ['False', 'OutputRefused', /chat@10\.0\.0\.1 cannot be published by PgCluster chat: ConfigMap prod\/chat-peers belongs to PgCluster first$/], written: NOW },
  { name: 'the Service is someone else\'s: OutputRefused', outputs: { dns: { refused: 'Service prod/chat-peers exists and is not this PgCluster\'s' } }, want: ['False', 'OutputRefused', /Service prod\/chat-peers exists/], written: NOW },
  { name: 'a write refused (the Ready condition says so) while not everywhere: OutputRefused quoting it', outputs: { configMap: new Set([B]), refused: 'the API server refused 1 write(s): pod b: 422 too long' }, want: ['False', 'OutputRefused', /not yet in every output of PgCluster chat: the API server refused 1 write\(s\): pod b: 422 too long$/], written: NOW },
  { name: 'a write refused elsewhere while it is everywhere: True', outputs: { refused: 'the API server refused 1 write(s): pod c' }, want: ['True', 'Published', /./], written: NOW },
  { name: 'a problem that changes: written, the transition time stays (no flip)', pods: [a({ annotations: { [NODE_NAME_ANNOTATION]: 'nope' }, gate: gate('False', 'OutputRefused') }), b], want: ['False', 'NotAnnounced', /not announced by PgCluster chat: pod a: annotation pgcluster.io\/node-name="nope" is not a node name/], written: T0 },
  { name: 'not announced (two pods, one name): NotAnnounced, written over an absent condition', pods: [a({ annotations: { [NODE_NAME_ANNOTATION]: B } }), pod('b', { labels: chat, ip: '10.0.0.2', annotations: { [NODE_NAME_ANNOTATION]: B } })], want: ['False', 'NotAnnounced', /another selected pod has its node name chat@10\.0\.0\.2/], written: NOW },
  { name: 'an older PgCluster selects the pod: its gate is that one\'s', rivals: [{ name: 'elder', created: '2025-01-01T00:00:00Z', selector: { matchLabels: chat } }], want: undefined },
  { name: 'an older PgCluster selecting other pods changes nothing', rivals: [{ name: 'elder', created: '2025-01-01T00:00:00Z', selector: { matchLabels: { app: 'web' } } }], want: ['True', 'Published', /./], written: NOW },
  { name: 'a younger PgCluster selecting it changes nothing', rivals: [{ name: 'young', created: '2027-01-01T00:00:00Z', selector: { matchLabels: chat } }], want: ['True', 'Published', /./], written: NOW },
];

describe('planGates', () => {
  for (const c of cases) {
    test(c.name, () => {
      const spec = specOf(c.spec);
      const pods = c.pods ?? [a(), b];
      const sel = selectMembers(pods, spec);
      const unpublished = new Set(c.unpublished ?? []);
      const g: GateInput = {
        pgcluster: { name: 'chat', created: '2026-01-01T00:00:00Z' }, spec, selected: sel.selected, members: sel.members,
        published: sel.members.filter((m) => !unpublished.has(m.node)).map((m) => ({ ...m, source: 'member' as const })),
        outputs: { ...everywhere(), ...c.outputs }, observed: gateCondition, rivals: c.rivals ?? [],
      };
      const p = planGates(g, NOW);
      const d = p.desired.get('a');
      if (!c.want) assert.equal(d, undefined);
      else {
        assert.deepEqual([d?.status, d?.reason], c.want.slice(0, 2));
        assert.match(d?.message ?? '', c.want[2]);
      }
      assert.equal(p.desired.has('b'), false, 'b has no gate');
      assert.deepEqual(p.writes.map((w) => [w.pod.metadata.name, w.condition.type, w.condition.status, w.condition.reason, w.condition.lastTransitionTime]),
        c.written ? [['a', READINESS_GATE, c.want?.[0], c.want?.[1], c.written]] : []);
      assert.equal(p.waiting, c.waiting ?? 0);
    });
  }
});

describe('eligibility with the gate', () => {
  test('a gated pod whose containers are ready is announced before it is Ready; an ungated one is not; a deleting one never', () => {
    const spec = specOf();
    const deleting = { ...a(), metadata: { ...a().metadata, name: 'd', deletionTimestamp: T0 } };
    const s = selectMembers([a(), pod('u', { labels: chat, ip: '10.0.0.3', ready: false }), a({ containersReady: false, ip: '10.0.0.4' }), deleting], spec);
    assert.deepEqual(s.members.map((m) => m.pod), ['a']);
  });
  test('the cache keeps what the gate reads: the spec\'s gate, ContainersReady, the gate\'s condition whole', () => {
    const full: PodObject = {
      metadata: { name: 'a', namespace: 'prod' },
      spec: { readinessGates: [{ conditionType: 'other/gate' }, { conditionType: READINESS_GATE }] },
      status: { phase: 'Running', conditions: [{ type: 'PodScheduled', status: 'True' }, { type: 'ContainersReady', status: 'True' }, gate('True', 'Published', 'x')] },
    };
    const slim = slimPod(full);
    assert.deepEqual(slim.spec?.readinessGates, [{ conditionType: READINESS_GATE }]);
    assert.deepEqual(slim.status?.conditions, [{ type: 'ContainersReady', status: 'True' }, gate('True', 'Published', 'x')]);
    assert.deepEqual([podView(slim).gated, podView(slim).containersReady, podView(slim).ready], [true, true, false]);
    const ungated = slimPod({ ...full, spec: {} });
    assert.deepEqual(ungated.status?.conditions, [gate('True', 'Published', 'x')], 'ContainersReady only where the gate needs it');
  });
});

describe('writing the gate', () => {
  const w = { pod: a(), condition: { ...gate('True', 'Published'), status: 'True' as const, reason: 'Published' as const, message: 'm', lastTransitionTime: NOW } };
  test('a pods/status PATCH of the one condition, remembered until the cache shows it', async () => {
    const ctx = testContext();
    assert.equal(await applyGateWrite(applyDeps(ctx), 'prod', w), undefined);
    assert.deepEqual(ctx.writer.calls, [{ verb: 'patchPodCondition', name: 'a', condition: w.condition }]);
    assert.equal(gateCondition(ctx.writes.memo.observe('podstatus:prod/a', a()) ?? a())?.status, 'True');
  });
  test('forbidden (no patch on pods/status) and refused are reported; a pod gone is nothing; anything else throws', async () => {
    const ctx = testContext();
    const err = (status: number) => new KubeApiError('PATCH', '/api/v1/namespaces/prod/pods/a/status', status, 'R', 'says no');
    ctx.writer.fail = () => err(403);
    assert.match(await applyGateWrite(applyDeps(ctx), 'prod', w) ?? '', /^pod a condition pgcluster\.io\/published: forbidden: grant the operator patch on pods\/status/);
    ctx.writer.fail = () => err(422);
    assert.match(await applyGateWrite(applyDeps(ctx), 'prod', w) ?? '', /^pod a condition pgcluster\.io\/published: .*422/);
    ctx.writer.fail = () => err(404);
    assert.equal(await applyGateWrite(applyDeps(ctx), 'prod', w), undefined);
    ctx.writer.fail = () => err(500);
    await assert.rejects(applyGateWrite(applyDeps(ctx), 'prod', w), /500/);
  });
});

describe('reconciles with a gated pod', () => {
  test('announced once its containers are ready; the fan-out\'s pass end brings the reconcile that flips the gate True, once; the ungated pod is never touched', async () => {
    const ctx = testContext({ pgclusters: [pgcluster('chat', chatSpec)], pods: [a(), b] });
    await reconcile(ctx, 'prod/chat');
    const cm = ctx.writer.calls.find((c) => c.verb === 'createConfigMap');
    assert.ok(cm?.verb === 'createConfigMap');
    assert.equal(cm.data.peers, `${A}\n${B}\n`, 'the gated pod is announced before it is Ready');
    assert.deepEqual(ctx.writer.verbs().filter((v) => v.startsWith('patchPodCondition')), [], 'not in the outputs yet when planned: nothing written');
    await ctx.runtimes.get('prod/chat')?.fanOut?.idle();
    await until(() => ctx.added.includes('prod/chat'), 'the pass end queues a reconcile while the gated pod waits');
    ctx.writer.calls = [];
    await reconcile(ctx, 'prod/chat');
    assert.deepEqual(ctx.writer.calls.filter((c) => c.verb === 'patchPodCondition').map((c) => c.verb === 'patchPodCondition' && [c.name, c.condition.status, c.condition.reason]), [['a', 'True', 'Published']]);
    ctx.writer.calls = [];
    ctx.added.length = 0;
    await reconcile(ctx, 'prod/chat');
    assert.deepEqual(ctx.writer.verbs(), [], 'the memo answers for the cache: no second write');
  });

  test('with the DNS output on, the gate waits for the slices as written; a member whose annotation is someone else\'s is not waited for', async () => {
    const theirs = pod('c', { labels: chat, ip: '10.0.0.3', annotations: { [DEFAULT_POD_ANNOTATION]: 'a value we did not write' } });
    const ctx = testContext({ pgclusters: [pgcluster('chat', { ...chatSpec, output: { service: {} } })], pods: [a(), b, theirs] });
    await reconcile(ctx, 'prod/chat');
    assert.ok(ctx.writer.verbs().includes('createOutput chat-peers-pgco-4-0'));
    await ctx.runtimes.get('prod/chat')?.fanOut?.idle();
    ctx.writer.calls = [];
    await reconcile(ctx, 'prod/chat');
    assert.deepEqual(ctx.writer.calls.filter((c) => c.verb === 'patchPodCondition').map((c) => c.verb === 'patchPodCondition' && [c.name, c.condition.status]), [['a', 'True']]);
  });

  test('with podAnnotationFormat version, a member\'s annotation counts as the list of the version it carries; an unknown version lists nobody', async () => {
    const ctx = testContext({ pgclusters: [pgcluster('chat', { ...chatSpec, output: { podAnnotationFormat: 'version' } })], pods: [a(), pod('b', { labels: chat, ip: '10.0.0.2', annotations: { [DEFAULT_POD_ANNOTATION]: '1/sha256:0123456789abcdef' } })] });
    // b's annotation is someone else's until we write it: give it our marker (a value we wrote before a restart).
    const b0 = ctx.pods.get('prod', 'b')!;
    ctx.pods.set({ ...b0, metadata: { ...b0.metadata, annotations: { ...b0.metadata.annotations, [markerKey(DEFAULT_POD_ANNOTATION)]: `chat ${DEFAULT_POD_ANNOTATION}` } } });
    let refused = 0;
    ctx.writer.fail = (c) => (c.verb === 'patchPodAnnotations' && c.name === 'b' ? (refused++, new Error('500 from the API server')) : undefined);
    await reconcile(ctx, 'prod/chat');
    await until(() => refused > 0 && ctx.writer.calls.some((c) => c.verb === 'patchPodAnnotations' && c.name === 'a'), 'a written, b refused');
    ctx.writer.calls = [];
    await reconcile(ctx, 'prod/chat');
    assert.deepEqual(ctx.writer.calls.filter((c) => c.verb === 'patchPodCondition'), [], 'b still carries a version we never published: a waits');
    ctx.writer.fail = undefined;
    ctx.clock.advance(30_000); // the fan-out's retry backoff
    await until(() => ctx.writer.calls.some((c) => c.verb === 'patchPodAnnotations' && c.name === 'b'), 'the fan-out retries b');
    const written = ctx.writer.calls.find((c) => c.verb === 'patchPodAnnotations' && c.name === 'b');
    assert.ok(written?.verb === 'patchPodAnnotations');
    assert.match(written.annotations[DEFAULT_POD_ANNOTATION] ?? '', /^2\/sha256:[0-9a-f]{16}$/);
    ctx.writer.calls = [];
    await reconcile(ctx, 'prod/chat');
    assert.deepEqual(ctx.writer.calls.filter((c) => c.verb === 'patchPodCondition').map((c) => c.verb === 'patchPodCondition' && [c.name, c.condition.status, c.condition.reason]), [['a', 'True', 'Published']]);
  });

  test('without a gated pod waiting, a pass end brings no reconcile', async () => {
    const ctx = testContext({ pgclusters: [pgcluster('chat', chatSpec)], pods: [b] });
    await reconcile(ctx, 'prod/chat');
    await ctx.runtimes.get('prod/chat')?.fanOut?.idle();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(ctx.added, []);
  });
});
