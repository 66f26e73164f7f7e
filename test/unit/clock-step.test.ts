// Remote peers expire on monotonic time (docs/architecture.md, "Time"): a wall-clock step of an hour (NTP, a
// resumed VM) must not expire every remote peer at once, while peerTimeout of monotonic silence still does.
// A reconcile scenario with a Listening endpoint stand-in: no Postgres here, only what reconcile reads of an
// endpoint (subscribe, state, setAnnouncer).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { reconcile } from '../../src/controller/reconcile.ts';
import type { EndpointPool } from '../../src/controller/endpointPool.ts';
import { REMOTE_PUBLISH_INTERVAL_MS } from '../../src/controller/runtime/publishPacing.ts';
import type { SecretObject } from '../../src/kube/resources.ts';
import { chatSpec, pgcluster, pod, testContext } from '../support/controllerKit.ts';

const REMOTE = 'elixir@192.0.2.9';

test('a wall-clock step of an hour keeps remote peers; peerTimeout of monotonic silence expires them', async () => {
  const url = 'postgres://u:p@127.0.0.1:5432/db';
  const secret = { metadata: { name: 'db', namespace: 'prod' }, data: { url: Buffer.from(url).toString('base64') } } as unknown as SecretObject;
  const ctx = testContext({ pgclusters: [pgcluster('chat', chatSpec)], pods: [pod('a', { labels: { app: 'chat' }, ip: '10.0.0.1' })], secrets: { 'prod/db': secret } });
  const subs = new Map<string, (payload: string) => void>();
  const endpoint = {
    id: 'ep1',
    subscribe: (channel: string, cb: (payload: string) => void) => { subs.set(channel, cb); return { close: () => {} }; },
    state: () => ({ phase: 'Listening' as const, since: 0 }),
    setAnnouncer: () => {},
  };
  ctx.pool = { acquire: () => endpoint, release: () => {} } as unknown as EndpointPool;
  // The peers of every ConfigMap write since the last call (the test caches do not follow writes, so a later
  // pass may write the same content again: what matters is what is written).
  const written = () => {
    const peers = ctx.writer.calls.flatMap((c) => (c.verb === 'createConfigMap' || c.verb === 'patchConfigMap') && typeof c.data.peers === 'string' ? [c.data.peers] : []);
    ctx.writer.calls = [];
    return peers;
  };

  await reconcile(ctx, 'prod/chat');
  const hear = subs.get('chat');
  assert.ok(hear, 'reconcile subscribed to the channel');
  hear(REMOTE);
  ctx.clock.advance(REMOTE_PUBLISH_INTERVAL_MS); // remote-only changes are published at most once per interval
  await reconcile(ctx, 'prod/chat');
  assert.ok(written().some((p) => p.includes(REMOTE)), 'the remote peer is published');

  ctx.clock.stepWall(60 * 60_000);
  ctx.clock.advance(1000);
  await reconcile(ctx, 'prod/chat');
  for (const p of written()) assert.ok(p.includes(REMOTE), `an hour's wall-clock step dropped the remote peer: ${JSON.stringify(p)}`);

  ctx.clock.advance(15_000); // the default peerTimeout of monotonic silence
  await reconcile(ctx, 'prod/chat');
  const after = written();
  assert.ok(after.length > 0 && after.every((p) => !p.includes(REMOTE)), `the remote peer expires after peerTimeout: ${JSON.stringify(after)}`);
});
