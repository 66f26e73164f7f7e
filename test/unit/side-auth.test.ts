// Signed side-channel messages (core/sideAuth.ts, README "Authenticated peers"): encoding, every refusal,
// the replay cache's bound; and what reconcile does with them when unsigned names are refused.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { reconcile } from '../../src/controller/reconcile.ts';
import type { EndpointPool } from '../../src/controller/endpointPool.ts';
import { REMOTE_PUBLISH_INTERVAL_MS } from '../../src/controller/runtime/publishPacing.ts';
import { encodeSigned, keyId, ReplayCache, SIGNED_WINDOW_MS, verifySigned, type SideKeys } from '../../src/core/sideAuth.ts';
import { encodeLeave, MAX_SIDE_PAYLOAD_BYTES, parseSideMessage, sideChannel, type SignedMessage } from '../../src/core/sideChannel.ts';
import type { PgClusterSpec } from '../../src/core/spec.ts';
import type { SecretObject } from '../../src/kube/resources.ts';
import { chatSpec, pgcluster, pod, testContext } from '../support/controllerKit.ts';

const K1 = Buffer.from('k1-0123456789abcdef0123456789abcdef');
const K2 = Buffer.from('k2-0123456789abcdef0123456789abcdef');
const SIDE = sideChannel('chat');
const T0 = Date.UTC(2026, 0, 1);
let nonces = 0;
const nextNonce = () => (++nonces).toString(16).padStart(32, '0');
const sign = (nodes: string[], o: { key?: Buffer; now?: number; channel?: string; type?: 'alive' | 'leave' } = {}) =>
  encodeSigned(o.type ?? 'alive', nodes, { channel: o.channel ?? SIDE, from: 'operator-a', key: o.key ?? K1, now: o.now ?? T0, nonce: nextNonce });

function check(payload: string, keys: SideKeys, now = T0, seen = new ReplayCache()): string {
  const p = parseSideMessage(payload);
  if (!p.ok) return p.problem;
  if (p.message.v !== 2) return 'v1';
  const v = verifySigned(p.message, SIDE, keys, now, seen);
  return v.ok ? `ok:${v.key}` : v.problem;
}

describe('signed messages: table', () => {
  const [good] = sign(['chat@10.0.0.1', 'chat@10.0.0.2']);
  const doc = JSON.parse(good!) as SignedMessage;
  const tampered = (patch: Partial<SignedMessage>) => JSON.stringify({ ...doc, ...patch });
  const cases: [string, string, SideKeys, number, string][] = [
    ['a good signature', good!, { current: K1 }, T0, 'ok:current'],
    ['a good signature, 29 s late', good!, { current: K1 }, T0 + SIGNED_WINDOW_MS - 1000, 'ok:current'],
    ['signed with the previous key (rotation)', good!, { current: K2, previous: K1 }, T0, 'ok:previous'],
    ['signed with another key', good!, { current: K2 }, T0, 'side-bad-signature'],
    ['a node added after signing', tampered({ nodes: [...doc.nodes, 'evil@6.6.6.6'] }), { current: K1 }, T0, 'side-bad-signature'],
    ['the timestamp moved', tampered({ ts: doc.ts + 1 }), { current: K1 }, T0, 'side-bad-signature'],
    ['the type changed', tampered({ type: 'leave' }), { current: K1 }, T0, 'side-bad-signature'],
    ['the sender changed', tampered({ from: 'operator-b' }), { current: K1 }, T0, 'side-bad-signature'],
    ['a signature cut short', tampered({ sig: doc.sig.slice(0, 62) }), { current: K1 }, T0, 'side-bad-envelope'],
    ['stale: older than the window', good!, { current: K1 }, T0 + SIGNED_WINDOW_MS + 1, 'side-stale'],
    ['from the future: beyond the window', good!, { current: K1 }, T0 - SIGNED_WINDOW_MS - 1, 'side-stale'],
    ['signed for another channel', sign(['chat@10.0.0.1'], { channel: sideChannel('other') })[0]!, { current: K1 }, T0, 'side-bad-signature'],
    ['not JSON', '{"v":2,', { current: K1 }, T0, 'side-not-json'],
    ['an unknown version', tampered({ v: 3 as 2 }), { current: K1 }, T0, 'side-unknown-version'],
    ['an unknown type', tampered({ type: 'join' as 'alive' }), { current: K1 }, T0, 'side-unknown-type'],
    ['a node name that fails the payload rules', tampered({ nodes: ['chat@10.0.0.1', 'no at sign'] }), { current: K1 }, T0, 'side-bad-node'],
    ['no nodes', tampered({ nodes: [] }), { current: K1 }, T0, 'side-bad-node'],
    ['no nonce', tampered({ nonce: undefined as unknown as string }), { current: K1 }, T0, 'side-bad-envelope'],
    ['a fractional timestamp', tampered({ ts: 1.5 }), { current: K1 }, T0, 'side-bad-envelope'],
    ['oversize: more than pg_notify carries', JSON.stringify({ ...doc, pad: 'x'.repeat(MAX_SIDE_PAYLOAD_BYTES) }), { current: K1 }, T0, 'side-too-long'],
    ['an unsigned v1 leave parses (the policy decides)', encodeLeave('chat@10.0.0.1', 'x'), { current: K1 }, T0, 'v1'],
  ];
  for (const [name, payload, keys, now, want] of cases) test(name, () => assert.equal(check(payload, keys, now), want));

  test('a replayed message is refused; the same content signed again (a new nonce) is not', () => {
    const seen = new ReplayCache();
    assert.equal(check(good!, { current: K1 }, T0, seen), 'ok:current');
    assert.equal(check(good!, { current: K1 }, T0 + 5000, seen), 'side-replay');
    assert.equal(check(sign(['chat@10.0.0.1', 'chat@10.0.0.2'])[0]!, { current: K1 }, T0, seen), 'ok:current');
  });

  test('a forged message does not take a place in the replay cache', () => {
    const seen = new ReplayCache();
    assert.equal(check(good!, { current: K2 }, T0, seen), 'side-bad-signature');
    assert.equal(seen.size, 0);
    assert.equal(check(good!, { current: K1 }, T0, seen), 'ok:current', 'the genuine message with that nonce is still accepted');
  });
});

describe('encodeSigned', () => {
  test('batches names into messages under the payload limit, in order, each signed', () => {
    const names = Array.from({ length: 2000 }, (_, i) => `chat@10.1.${i >> 8}.${i & 255}`);
    const msgs = sign(names);
    assert.ok(msgs.length > 1, `${msgs.length} messages`);
    const seen = new ReplayCache();
    const got: string[] = [];
    for (const m of msgs) {
      assert.ok(Buffer.byteLength(m) <= MAX_SIDE_PAYLOAD_BYTES, `${Buffer.byteLength(m)} bytes`);
      const p = parseSideMessage(m);
      assert.ok(p.ok && p.message.v === 2);
      assert.ok(verifySigned(p.message, SIDE, { current: K1 }, T0, seen).ok);
      got.push(...p.message.nodes);
    }
    assert.deepEqual(got, names);
  });
  test('the longest names, with characters JSON escapes, still fit one each at least', () => {
    const long = `${'"'.repeat(120)}@${'\\'.repeat(134)}`;
    assert.equal(Buffer.byteLength(long), 255);
    const msgs = sign([long, long, long, long, long, long, long, long, long, long, long, long, long, long, long, long]);
    for (const m of msgs) assert.ok(Buffer.byteLength(m) <= MAX_SIDE_PAYLOAD_BYTES);
    assert.equal(msgs.flatMap((m) => (JSON.parse(m) as SignedMessage).nodes).length, 16);
  });
  test('nothing to say: no message', () => assert.deepEqual(sign([]), []));
  test('keyId: stable, short, not the key', () => {
    assert.equal(keyId(K1), keyId(Buffer.from(K1)));
    assert.notEqual(keyId(K1), keyId(K2));
    assert.match(keyId(K1), /^[0-9a-f]{8}$/);
  });
});

describe('ReplayCache', () => {
  test('forgets nonces once their timestamp is out of the window', () => {
    const c = new ReplayCache(1000, SIGNED_WINDOW_MS);
    for (let i = 0; i < 100; i++) assert.ok(c.remember(`n${i}`, T0, T0));
    assert.equal(c.size, 100);
    assert.ok(c.remember('later', T0 + SIGNED_WINDOW_MS + 1, T0 + SIGNED_WINDOW_MS + 1));
    assert.equal(c.size, 1);
  });
  test('bounded: beyond its size the oldest go, and nothing at or before their time is accepted again', () => {
    const c = new ReplayCache(3);
    assert.ok(c.remember('a', T0, T0));
    assert.ok(c.remember('b', T0 + 1, T0));
    assert.ok(c.remember('c', T0 + 2, T0));
    assert.ok(c.remember('d', T0 + 3, T0));
    assert.equal(c.size, 3);
    assert.equal(c.remember('a', T0, T0), false, 'a forgotten nonce is still refused (its time is at the floor)');
    assert.equal(c.remember('e', T0, T0), false, 'so is any message that old');
    assert.ok(c.remember('f', T0 + 4, T0));
  });
});

test('reconcile with acceptUnsigned false: own members and signed peers are published, bare names and unsigned leaves are refused and counted; a signed leave drops a peer; members are said signed', async () => {
  const url = 'postgres://u:p@127.0.0.1:5432/db';
  const b64 = (v: string | Buffer) => Buffer.from(v).toString('base64');
  const secret = { metadata: { name: 'db', namespace: 'prod' }, data: { url: b64(url), key: b64(`${K1.toString()}\n`) } } as unknown as SecretObject;
  const spec: PgClusterSpec = { ...chatSpec, auth: { secretRef: { name: 'db' }, acceptUnsigned: false } };
  const ctx = testContext({ pgclusters: [pgcluster('chat', spec)], pods: [pod('a', { labels: { app: 'chat' }, ip: '10.0.0.1' })], secrets: { 'prod/db': secret } });
  const subs = new Map<string, (payload: string) => void>();
  let announcer: { side?: { channel: string; sign(names: readonly string[], now: number): string[] } } | null = null;
  const sent: [string, string][] = [];
  const endpoint = {
    id: 'ep1',
    subscribe: (channel: string, cb: (payload: string) => void) => { subs.set(channel, cb); return { close: () => {} }; },
    state: () => ({ phase: 'Listening' as const, since: 0 }),
    setAnnouncer: (_key: string, a: typeof announcer) => { announcer = a; },
    notifyOnce: (channel: string, payload: string) => { sent.push([channel, payload]); },
  };
  ctx.pool = { acquire: () => endpoint, release: () => {} } as unknown as EndpointPool;
  const lastPeers = () => ctx.writer.calls.flatMap((c) => (c.verb === 'createConfigMap' || c.verb === 'patchConfigMap') && typeof c.data.peers === 'string' ? [c.data.peers] : []).at(-1);
  const refused = async (problem: string) => {
    const m = new RegExp(`problem="${problem}"\\} (\\d+)`).exec(await ctx.env.metrics.registry.getSingleMetricAsString('pgcluster_invalid_payloads_total'));
    return Number(m?.[1] ?? 0);
  };
  const publishAfter = async () => {
    ctx.clock.advance(REMOTE_PUBLISH_INTERVAL_MS);
    await reconcile(ctx, 'prod/chat');
  };
  await reconcile(ctx, 'prod/chat');
  const main = subs.get('chat')!;
  const side = subs.get(SIDE)!;

  // This operator's members go out signed with every heartbeat, verifiable with the key (trailing newline trimmed).
  const own = announcer!.side!.sign(['chat@10.0.0.1'], ctx.clock.now());
  assert.equal(announcer!.side!.channel, SIDE);
  assert.equal(check(own[0]!, { current: K1 }, ctx.clock.now()), 'ok:current');

  main('evil@6.6.6.6');
  await publishAfter();
  assert.equal(lastPeers(), 'chat@10.0.0.1\n', 'a bare name is not published');
  assert.equal(await refused('unsigned-refused'), 1);

  const at = () => ctx.clock.now();
  side(sign(['elixir@192.0.2.9'], { now: at() })[0]!);
  await publishAfter();
  assert.equal(lastPeers(), 'chat@10.0.0.1\nelixir@192.0.2.9\n', 'a signed name is');
  main('elixir@192.0.2.9');
  assert.equal(await refused('unsigned-refused'), 1, 'the bare heartbeat of a signed peer is not a refusal');

  side(sign(['evil@6.6.6.6'], { now: at(), key: K2 })[0]!);
  side(encodeLeave('elixir@192.0.2.9', 'someone'));
  await publishAfter();
  assert.equal(lastPeers(), 'chat@10.0.0.1\nelixir@192.0.2.9\n', 'a wrong key, an unsigned leave: nothing changes');
  assert.equal(await refused('side-bad-signature'), 1);
  assert.equal(await refused('side-unsigned-refused'), 1);

  // Bare heartbeats do not keep a signed peer alive: only signed ones do.
  for (let i = 0; i < 16; i++) {
    main('elixir@192.0.2.9');
    await publishAfter();
  }
  assert.equal(lastPeers(), 'chat@10.0.0.1\n', 'expired after peerTimeout without a signed alive');
  side(sign(['elixir@192.0.2.9'], { now: at() })[0]!);
  await publishAfter();
  assert.equal(lastPeers(), 'chat@10.0.0.1\nelixir@192.0.2.9\n');
  side(sign(['elixir@192.0.2.9'], { now: at(), type: 'leave' })[0]!);
  await reconcile(ctx, 'prod/chat');
  assert.equal(lastPeers(), 'chat@10.0.0.1\n', 'a signed leave takes it out at once');

  // A member that leaves is said signed.
  ctx.pods.delete('prod', 'a');
  await reconcile(ctx, 'prod/chat');
  assert.equal(sent.length, 1);
  const leave = JSON.parse(sent[0]![1]) as SignedMessage;
  assert.deepEqual([sent[0]![0], leave.v, leave.type, leave.nodes], [SIDE, 2, 'leave', ['chat@10.0.0.1']]);
  const status = ctx.writer.calls.filter((c) => c.verb === 'patchStatus').at(-1);
  assert.ok(status?.verb === 'patchStatus');
  const authCond = status.status.conditions?.find((c) => c.type === 'Authenticated');
  assert.equal(authCond?.status, 'True');
  assert.match(authCond?.message ?? '', new RegExp(`signed with key ${keyId(K1)} .*only members and signed peers are published`));
  assert.ok(!JSON.stringify(ctx.writer.calls).includes(K1.toString()), 'the key is never written anywhere');
});

test('reconcile: a Secret without the key is a False Authenticated condition; heartbeats go on unsigned and the remote peers are held', async () => {
  const url = 'postgres://u:p@127.0.0.1:5432/db';
  const secret = { metadata: { name: 'db', namespace: 'prod' }, data: { url: Buffer.from(url).toString('base64') } } as unknown as SecretObject;
  const spec: PgClusterSpec = { ...chatSpec, auth: { secretRef: { name: 'db' }, acceptUnsigned: false } };
  const ctx = testContext({ pgclusters: [pgcluster('chat', spec, { status: { conditions: [] } })], pods: [pod('a', { labels: { app: 'chat' }, ip: '10.0.0.1' })], secrets: { 'prod/db': secret } });
  let names: readonly string[] = [];
  let side: unknown;
  const endpoint = {
    id: 'ep1', subscribe: () => ({ close: () => {} }), state: () => ({ phase: 'Listening' as const, since: 0 }),
    setAnnouncer: (_k: string, a: { names: readonly string[]; side?: unknown }) => { names = a.names; side = a.side; },
    notifyOnce: () => {},
  };
  ctx.pool = { acquire: () => endpoint, release: () => {} } as unknown as EndpointPool;
  await reconcile(ctx, 'prod/chat');
  assert.deepEqual(names, ['chat@10.0.0.1'], 'still announced');
  assert.equal(side, undefined, 'nothing signed');
  assert.ok(ctx.runtimes.get('prod/chat')!.table.paused, 'remote peers are held, not expired');
  const status = ctx.writer.calls.filter((c) => c.verb === 'patchStatus').at(-1);
  assert.ok(status?.verb === 'patchStatus');
  const authCond = status.status.conditions?.find((c) => c.type === 'Authenticated');
  assert.equal(authCond?.reason, 'SecretKeyMissing');
  assert.match(authCond?.message ?? '', /Secret prod\/db has no key "key": add it, or set spec.auth.secretRef.key/);
  assert.ok(ctx.writer.calls.some((c) => c.verb === 'createEvent' && c.event.reason === 'SecretKeyMissing'), 'a Warning Event');
});
