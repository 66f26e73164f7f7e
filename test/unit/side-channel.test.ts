// The operators' side channel (core/sideChannel.ts) and what reconcile does with it: a member that leaves is
// said once as a "leave"; a "leave" heard takes a remote peer out at once, and a late bare heartbeat of it
// does not bring it back within peerTimeout; leaves cannot drive writes beyond the remote-change pacing. No Postgres: an endpoint stand-in with what reconcile uses.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { reconcile } from '../../src/controller/reconcile.ts';
import type { EndpointPool } from '../../src/controller/endpointPool.ts';
import { LEAVE_PUBLISH_BURST, LEAVE_PUBLISH_INTERVAL_MS, REMOTE_PUBLISH_BURST, REMOTE_PUBLISH_INTERVAL_MS } from '../../src/controller/runtime/publishPacing.ts';
import { encodeLeave, parseSideMessage, sideChannel } from '../../src/core/sideChannel.ts';
import { CHANNEL_PATTERN } from '../../src/core/spec.ts';
import type { SecretObject } from '../../src/kube/resources.ts';
import { chatSpec, pgcluster, pod, testContext } from '../support/controllerKit.ts';

describe('side-channel messages', () => {
  test('the side channel: valid, at most 62 bytes, distinct per channel, never the channel itself', () => {
    for (const ch of ['chat', 'a', `_${'x'.repeat(62)}`, `_${'x'.repeat(61)}y`]) {
      const side = sideChannel(ch);
      assert.match(side, CHANNEL_PATTERN);
      assert.ok(side.length <= 62 && side !== ch);
    }
    assert.notEqual(sideChannel(`_${'x'.repeat(62)}`), sideChannel(`_${'x'.repeat(61)}y`));
  });
  const cases: [string, string, string | undefined][] = [
    ['a leave', encodeLeave('chat@10.0.0.1', 'operator-7d9f'), undefined],
    ['not JSON', 'chat@10.0.0.1', 'side-not-json'],
    ['a JSON array', '[1]', 'side-not-json'],
    ['another version', JSON.stringify({ v: 3, type: 'leave', node: 'a@b', from: 'x' }), 'side-unknown-version'],
    ['an unknown type', JSON.stringify({ v: 1, type: 'join', node: 'a@b', from: 'x' }), 'side-unknown-type'],
    ['a node that fails the payload rules', JSON.stringify({ v: 1, type: 'leave', node: 'a b@c', from: 'x' }), 'side-bad-node'],
    ['no sender', JSON.stringify({ v: 1, type: 'leave', node: 'a@b' }), 'side-bad-sender'],
  ];
  for (const [name, payload, problem] of cases) {
    test(name, () => {
      const r = parseSideMessage(payload);
      if (problem === undefined) assert.deepEqual(r, { ok: true, message: { v: 1, type: 'leave', node: 'chat@10.0.0.1', from: 'operator-7d9f' } });
      else assert.deepEqual(r, { ok: false, problem });
    });
  }
});

/** A reconciled PgCluster "chat" of two pods on an endpoint stand-in: its channel and side channel to say
 * things on, what it sent, and the ConfigMap it wrote. */
async function harness() {
  const url = 'postgres://u:p@127.0.0.1:5432/db';
  const secret = { metadata: { name: 'db', namespace: 'prod' }, data: { url: Buffer.from(url).toString('base64') } } as unknown as SecretObject;
  const ctx = testContext({ pgclusters: [pgcluster('chat', chatSpec)], pods: [pod('a', { labels: { app: 'chat' }, ip: '10.0.0.1' }), pod('b', { labels: { app: 'chat' }, ip: '10.0.0.2' })], secrets: { 'prod/db': secret } });
  const subs = new Map<string, (payload: string) => void>();
  const sent: [string, string][] = [];
  const endpoint = {
    id: 'ep1',
    subscribe: (channel: string, cb: (payload: string) => void) => { subs.set(channel, cb); return { close: () => {} }; },
    state: () => ({ phase: 'Listening' as const, since: 0 }),
    setAnnouncer: () => {},
    notifyOnce: (channel: string, payload: string) => { sent.push([channel, payload]); },
  };
  ctx.pool = { acquire: () => endpoint, release: () => {} } as unknown as EndpointPool;
  const configMaps = () => ctx.writer.calls.flatMap((c) => (c.verb === 'createConfigMap' || c.verb === 'patchConfigMap') && typeof c.data.peers === 'string' ? [c.data.peers] : []);
  await reconcile(ctx, 'prod/chat');
  const main = subs.get('chat');
  const side = subs.get(sideChannel('chat'));
  assert.ok(main && side, 'subscribed to the channel and to its side channel');
  return { ctx, main, side, sent, configMaps, lastPeers: () => configMaps().at(-1) };
}

test('reconcile: a member that leaves is said on the side channel; a leave heard drops a remote peer at once, and its late heartbeat stays out for peerTimeout', async () => {
  const { ctx, main, side, sent, lastPeers } = await harness();
  const REMOTE = 'elixir@192.0.2.9';
  main(REMOTE);
  ctx.clock.advance(REMOTE_PUBLISH_INTERVAL_MS);
  await reconcile(ctx, 'prod/chat');
  assert.ok(lastPeers()?.includes(REMOTE));

  // Another operator says it left: published at once (no hold-back), and a late heartbeat does not bring it back.
  side(encodeLeave(REMOTE, 'other-operator'));
  assert.deepEqual(ctx.added.slice(-1), ['prod/chat'], 'a reconcile is queued');
  await reconcile(ctx, 'prod/chat');
  assert.equal(lastPeers(), 'chat@10.0.0.1\nchat@10.0.0.2\n');
  main(REMOTE);
  ctx.clock.advance(REMOTE_PUBLISH_INTERVAL_MS);
  await reconcile(ctx, 'prod/chat');
  assert.equal(lastPeers(), 'chat@10.0.0.1\nchat@10.0.0.2\n', 'tombstoned: a late heartbeat is ignored');
  ctx.clock.advance(15_000);
  main(REMOTE);
  ctx.clock.advance(REMOTE_PUBLISH_INTERVAL_MS);
  await reconcile(ctx, 'prod/chat');
  assert.ok(lastPeers()?.includes(REMOTE), 'after peerTimeout it may come back');

  // A member leaves: said once on the side channel, with this operator's identity.
  ctx.pods.delete('prod', 'b');
  await reconcile(ctx, 'prod/chat');
  assert.deepEqual(sent, [[sideChannel('chat'), encodeLeave('chat@10.0.0.2', 'test-operator')]]);
  // Junk on the side channel is counted, never acted on.
  side('{"v":1,"type":"leave","node":"no-at-sign","from":"x"}');
  assert.match(await ctx.env.metrics.registry.getSingleMetricAsString('pgcluster_invalid_payloads_total'), /problem="side-bad-node"\} 1/);
});

test('reconcile: a flood of new names and their leaves stays paced (a leave publishes at once only while leaves are few)', async () => {
  const { ctx, main, side, configMaps } = await harness();
  const before = configMaps().length;
  const seconds = 10;
  // Every 10 ms a new name, and a leave from "another operator" of the name heard 50 ms before, with a
  // reconcile after each: the table changes all the time, and every leave would publish it.
  const node = (t: number) => `flood${t}@192.0.2.${1 + ((t / 10) % 250)}`;
  for (let t = 0; t < seconds * 1000; t += 10) {
    main(node(t));
    await reconcile(ctx, 'prod/chat');
    if (t >= 50) side(encodeLeave(node(t - 50), 'someone'));
    await reconcile(ctx, 'prod/chat');
    ctx.clock.advance(10);
  }
  // New lists written (this harness's cache never catches up with a write, so one list may be written twice).
  const lists = configMaps().slice(before).filter((peers, i, all) => i === 0 || peers !== all[i - 1]).length;
  const bound = REMOTE_PUBLISH_BURST + seconds + LEAVE_PUBLISH_BURST + (seconds * 1000) / LEAVE_PUBLISH_INTERVAL_MS + 1;
  assert.ok(lists <= bound, `new peer lists written in ${seconds} s of names and leaves: ${lists} (at most ${bound})`);
});
