// The defaults a PgCluster keeps (src/core/defaults.ts; docs/upgrading.md, "What is kept"): recorded at its first reconcile,
// they win over this release's defaults, so a release that changes a default never moves a live PgCluster.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { reconcile } from '../../src/controller/reconcile.ts';
import { DEFAULTS_ANNOTATION, effectiveSpec, outputNames, type PgCluster } from '../../src/core/spec.ts';
import { chatSpec, NS, pgcluster, testContext } from '../support/controllerKit.ts';

const base = { selector: { matchLabels: { app: 'chat' } }, postgres: { urlSecretRef: { name: 'db' } } };
const pinned = { channel: 'old_default', basename: 'chatnode', mode: 'dns', configMapName: 'chat-old', podAnnotation: 'example.com/peers' };
const withRecord = (annotation: string | undefined, spec: object = base, status?: object): PgCluster => ({
  metadata: { namespace: NS, name: 'chat', ...(annotation === undefined ? {} : { annotations: { [DEFAULTS_ANNOTATION]: annotation } }) },
  spec, ...(status ? { status } : {}),
});

const cases: { name: string; pc: PgCluster; want: Record<string, string> | RegExp }[] = [
  { name: 'nothing recorded, no status: this release\'s defaults', pc: withRecord(undefined), want: { channel: 'prod_chat', basename: 'chat', mode: 'ip', configMapName: 'chat-peers', podAnnotation: 'pgcluster.io/peers' } },
  { name: 'nothing recorded, a status from an earlier release: the channel and key it used', pc: withRecord(undefined, base, { channel: 'chat_cluster', podAnnotation: 'x.io/p' }), want: { channel: 'chat_cluster', basename: 'chat', mode: 'ip', configMapName: 'chat-peers', podAnnotation: 'x.io/p' } },
  { name: 'recorded: the record wins over this release\'s defaults', pc: withRecord(JSON.stringify(pinned)), want: pinned },
  { name: 'recorded, and the spec sets values: the spec wins', pc: withRecord(JSON.stringify(pinned), { ...base, channel: 'explicit', nodeName: { basename: 'b', mode: 'ip' }, output: { configMapName: 'cm', podAnnotation: 'k.io/a' } }), want: { channel: 'explicit', basename: 'b', mode: 'ip', configMapName: 'cm', podAnnotation: 'k.io/a' } },
  { name: 'a record that is not JSON: InvalidSpec that says what to do', pc: withRecord('{oops'), want: /annotation pgcluster\.io\/defaults must be the JSON object.*delete it/ },
  { name: 'a record missing a field: InvalidSpec', pc: withRecord(JSON.stringify({ ...pinned, mode: 'sideways' })), want: /must be the JSON object/ },
];
for (const c of cases) {
  test(`effective defaults: ${c.name}`, () => {
    const r = effectiveSpec(c.pc);
    if (c.want instanceof RegExp) {
      assert.ok(!r.ok);
      assert.match(r.message, c.want);
      return;
    }
    assert.ok(r.ok, r.ok ? '' : r.message);
    const { channel, basename, mode, configMapName, podAnnotation } = r.spec;
    assert.deepEqual({ channel, basename, mode, configMapName, podAnnotation }, c.want);
    assert.equal(outputNames(c.pc).configMapName, c.want.configMapName, 'the finalizer finds the same outputs');
  });
}

test('the first reconcile records the defaults with the finalizer, in one write; later ones never again', async () => {
  const ctx = testContext({ pgclusters: [pgcluster('chat', chatSpec, { finalizers: [], recorded: false })] });
  await reconcile(ctx, 'prod/chat');
  assert.deepEqual(ctx.writer.calls, [{ verb: 'setFinalizers', name: 'chat', finalizers: ['pgcluster.io/finalizer'], annotations: { [DEFAULTS_ANNOTATION]: JSON.stringify({ channel: 'prod_chat', basename: 'chat', mode: 'ip', configMapName: 'chat-peers', podAnnotation: 'pgcluster.io/peers' }) } }]);
  // A PgCluster of an earlier release: its finalizer is there, its record not yet; its status says its channel.
  const old = testContext({ pgclusters: [pgcluster('chat', { ...base }, { recorded: false, status: { channel: 'chat_cluster' } })] });
  await reconcile(old, 'prod/chat');
  const call = old.writer.calls[0];
  assert.ok(call?.verb === 'setFinalizers');
  assert.equal(JSON.parse(call.annotations?.[DEFAULTS_ANNOTATION] ?? '{}').channel, 'chat_cluster', 'keeps the channel it used');
});

test('a recorded channel is the one announced and reported, whatever this release\'s default', async () => {
  const pc = pgcluster('chat', { ...base });
  pc.metadata.annotations = { [DEFAULTS_ANNOTATION]: JSON.stringify({ ...pinned, mode: 'ip', configMapName: 'chat-peers', podAnnotation: 'pgcluster.io/peers' }) };
  const ctx = testContext({ pgclusters: [pc] });
  await reconcile(ctx, 'prod/chat');
  const status = ctx.writer.calls.find((c) => c.verb === 'patchStatus');
  assert.ok(status?.verb === 'patchStatus');
  assert.equal(status.status.channel, 'old_default');
});
