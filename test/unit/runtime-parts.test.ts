// The parts of a PgCluster's runtime (src/controller/runtime/), each on its own: publish pacing, taken output
// names, the Secret retry, the flood meter, the endpoint attachment, spec.auth applied to what is heard, and the registry that
// owns the runtimes. Pure or with fakes (no Postgres: the endpoint is a recording stand-in). Times are passed in.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EndpointAttachment } from '../../src/controller/runtime/attachment.ts';
import { FloodMeter, FLOOD_NAMES_PER_SECOND } from '../../src/controller/runtime/floodMeter.ts';
import { PublishPacing, REMOTE_PUBLISH_BURST, REMOTE_PUBLISH_INTERVAL_MS, LEAVE_PUBLISH_BURST, type PeerList } from '../../src/controller/runtime/publishPacing.ts';
import { RuntimeRegistry } from '../../src/controller/runtime/registry.ts';
import { SideChannelAuth } from '../../src/controller/runtime/sideChannelAuth.ts';
import { SecretRetry, SECRET_RETRY_MAX_MS } from '../../src/controller/runtime/secretRetry.ts';
import { TakenNames } from '../../src/controller/runtime/takenNames.ts';
import type { EndpointPool } from '../../src/controller/endpointPool.ts';
import type { FanOut } from '../../src/controller/write/fanout.ts';
import { PeerTable, type Peer } from '../../src/core/peerTable.ts';
import { encodeSigned } from '../../src/core/sideAuth.ts';
import { encodeLeave } from '../../src/core/sideChannel.ts';
import type { ParsedPgUrl } from '../../src/postgres/connstring.ts';
import type { PgEndpoint } from '../../src/postgres/endpoint.ts';

const list = (...nodes: string[]): PeerList => ({ peers: nodes.map((node): Peer => ({ node, host: node.split('@')[1]!, source: 'remote' })), dropped: 0 });

describe('PublishPacing', () => {
  test('a fresh list the first time; a change of members at once and free; remote-only changes paced by the bucket', () => {
    const p = new PublishPacing();
    const first = list('a@10.0.0.1');
    assert.equal(p.paced(first, 0), first);
    // Remote-only changes: the burst at once, then the earlier list until a token is there.
    let last = first;
    for (let i = 1; i <= REMOTE_PUBLISH_BURST; i++) {
      assert.equal(p.remoteChange(i, 'name'), 0);
      const next = list('a@10.0.0.1', `r@192.0.2.${i}`);
      assert.equal(p.paced(next, i), next, `change ${i} of the burst`);
      last = next;
    }
    const held = list('a@10.0.0.1', 'r@192.0.2.99');
    const wait = p.remoteChange(10, 'name');
    assert.ok(wait > 0 && wait <= REMOTE_PUBLISH_INTERVAL_MS, `waits ${wait} ms`);
    assert.equal(p.paced(held, 10), last, 'held back: the last list again');
    assert.equal(p.takeChange(), undefined, 'nothing published while held back');
    assert.equal(p.wakeAt(undefined), 10 + wait, 'wake when the token is there');
    assert.equal(p.wakeAt(5), 5, 'or at an earlier expiry');
    // A change of members goes out at once, with what was held.
    p.membersChanged(11);
    const withMember = list('a@10.0.0.1', 'a@10.0.0.2', 'r@192.0.2.99');
    assert.equal(p.paced(withMember, 11), withMember);
    assert.equal(p.takeChange(), 1, 'the earliest unpublished change');
    assert.equal(p.takeChange(), undefined, 'once');
    assert.equal(p.wakeAt(undefined), undefined);
  });

  test('an equal list is no change: it takes no token', () => {
    const p = new PublishPacing();
    p.paced(list('a@10.0.0.1'), 0);
    for (let t = 1; t <= 100; t++) assert.deepEqual(p.paced(list('a@10.0.0.1'), t), list('a@10.0.0.1'));
    for (let i = 1; i <= REMOTE_PUBLISH_BURST; i++) {
      const next = list('a@10.0.0.1', `r@192.0.2.${i}`);
      assert.equal(p.paced(next, 200), next, `remote change ${i} still in the burst`);
    }
  });

  test('leaves take from their own, larger bucket first', () => {
    const p = new PublishPacing();
    p.paced(list(), 0);
    const names: string[] = [];
    for (let i = 0; i < 20; i++) names.push(`r@192.0.2.${i}`);
    let current = list(...names);
    p.membersChanged(0);
    p.paced(current, 0);
    for (let i = 0; i < LEAVE_PUBLISH_BURST + REMOTE_PUBLISH_BURST; i++) {
      assert.equal(p.remoteChange(1, 'leave'), 0, `leave ${i}: a token at once`);
      const next = list(...names.slice(i + 1));
      assert.equal(p.paced(next, 1), next, `leave ${i} published`);
      current = next;
    }
    assert.ok(p.remoteChange(1, 'leave') > 0, 'both buckets empty');
    assert.equal(p.paced(list(...names.slice(LEAVE_PUBLISH_BURST + REMOTE_PUBLISH_BURST + 1)), 1), current);
  });
});

test('TakenNames: believed taken until the recheck time, for that name only; past entries are forgotten', () => {
  const t = new TakenNames();
  assert.equal(t.has('configMap', 'chat-peers', 0), false);
  t.mark('configMap', 'chat-peers', 30_000);
  assert.equal(t.has('configMap', 'chat-peers', 29_999), true);
  assert.equal(t.has('configMap', 'other', 0), false, 'another name is free');
  assert.equal(t.has('service', 'chat-peers', 0), false, 'another output is free');
  t.mark('service', 'chat', 10_000);
  assert.equal(t.recheckAt(0), 10_000, 'the earliest recheck');
  assert.equal(t.recheckAt(10_000), 30_000, 'the service is past, forgotten');
  assert.equal(t.has('configMap', 'chat-peers', 30_000), false);
  assert.equal(t.recheckAt(30_000), undefined);
});

test('SecretRetry: an unusable Secret is read again from 1 s, doubling to 30 s; reconciles in between keep the time; success forgets', () => {
  const r = new SecretRetry(() => 0.999); // the top of each jittered range
  assert.equal(r.wakeAt(), undefined, 'nothing to retry');
  const due: number[] = [];
  let now = 0;
  for (let i = 0; i < 8; i++) {
    r.note(false, now);
    due.push(r.wakeAt()! - now);
    r.note(false, now + 1); // a pod changed meanwhile: not a retry
    assert.equal(r.wakeAt()! - now, due.at(-1), 'a reconcile before the retry is due does not push it on');
    now = r.wakeAt()!;
  }
  assert.deepEqual(due, [999, 1998, 3996, 7992, 15984, 29970, 29970, 29970]);
  assert.ok(Math.max(...due) <= SECRET_RETRY_MAX_MS);
  r.note(true, now);
  assert.equal(r.wakeAt(), undefined, 'usable: no retry');
  r.note(false, now);
  assert.equal(r.wakeAt()! - now, 999, 'the next failure starts from the base again');
});

test('FloodMeter: above FLOOD_NAMES_PER_SECOND is a flood, reported as a change once each way', () => {
  const f = new FloodMeter();
  for (let i = 0; i < FLOOD_NAMES_PER_SECOND; i++) f.hit(1000 + i);
  assert.deepEqual(f.read(1500), { perSecond: FLOOD_NAMES_PER_SECOND, flooding: false, changed: false }, 'at the threshold: no flood');
  f.hit(1600);
  assert.equal(f.read(1700).changed, true);
  assert.equal(f.read(1800).changed, false);
  assert.deepEqual(f.read(5000), { perSecond: 0, flooding: false, changed: true });
});

/** A stand-in endpoint and pool that record what is done to them. */
function fakePool() {
  const log: string[] = [];
  const endpoint = (url: string) => ({
    id: `ep-${url}`,
    subscribe: (channel: string) => { log.push(`subscribe ${url} ${channel}`); return { close: () => log.push(`unsubscribe ${url} ${channel}`) }; },
    setAnnouncer: (key: string, a: unknown) => log.push(`announcer ${url} ${key} ${a === null ? 'off' : 'on'}`),
    state: () => ({ phase: 'Listening' as const, since: 0 }),
  }) as unknown as PgEndpoint;
  const pool: Pick<EndpointPool, 'acquire' | 'release'> = {
    acquire: ({ key }, user: string) => { log.push(`acquire ${key} ${user}`); return endpoint(key); },
    release: (key: string, user: string) => void log.push(`release ${key} ${user}`),
  };
  return { pool, log };
}
const url = (u: string) => ({ key: u, url: u, parsed: {} as ParsedPgUrl });
const listeners = { onPayload: () => {}, onSide: () => {} };

test('EndpointAttachment: one attachment per URL and channel; a change replaces it; detach stops the announcer and releases', () => {
  const { pool, log } = fakePool();
  const a = new EndpointAttachment(pool, 'prod/chat');
  const first = a.attach(url('u1'), 'chat', listeners);
  assert.equal(a.attach(url('u1'), 'chat', listeners), first, 'the same URL and channel: kept');
  assert.match(first.side, /^chat_pgco_/, 'the side channel is derived');
  a.noteListening(true);
  assert.equal(a.everListening, true);
  a.attach(url('u2'), 'chat', listeners);
  assert.equal(a.everListening, false, 'a new endpoint has not been Listening yet');
  a.detach();
  a.detach();
  assert.equal(a.current, undefined);
  assert.deepEqual(log, [
    'acquire u1 prod/chat', 'subscribe u1 chat', `subscribe u1 ${first.side}`,
    'announcer u1 prod/chat off', 'unsubscribe u1 chat', `unsubscribe u1 ${first.side}`, 'release u1 prod/chat',
    'acquire u2 prod/chat', 'subscribe u2 chat', `subscribe u2 ${first.side}`,
    'announcer u2 prod/chat off', 'unsubscribe u2 chat', `unsubscribe u2 ${first.side}`, 'release u2 prod/chat',
  ]);
});

const published = (table: PeerTable) => table.peers().peers.map((p) => p.node);

describe('SideChannelAuth', () => {
  const key = Buffer.alloc(32, 7);
  const setup = () => {
    const table = new PeerTable(60_000, 1000);
    table.setMembers([{ node: 'a@10.0.0.1', host: '10.0.0.1', pod: 'a-1' }], 0);
    return { table, auth: new SideChannelAuth(table) };
  };

  test('off: names and unsigned leaves are accepted', () => {
    const { table, auth } = setup();
    assert.equal(auth.receive('a@10.0.0.1', 0).outcome, 'unchanged', 'our own echo');
    assert.equal(auth.receive('b@10.0.0.2', 0).outcome, 'changed');
    assert.equal(auth.receive('not a name', 0).outcome, 'invalid');
    assert.equal(auth.receiveSide(encodeLeave('b@10.0.0.2', 'other'), undefined, 0, 1).outcome, 'left');
    assert.deepEqual(published(table), ['a@10.0.0.1']);
  });

  test('strict: a bare name is refused, an unsigned leave dropped; switching to strict drops the bare peers', () => {
    const { table, auth } = setup();
    auth.receive('b@10.0.0.2', 0);
    assert.deepEqual(auth.set({ keys: { current: key }, acceptUnsigned: false }), ['b@10.0.0.2']);
    assert.equal(auth.strict, true);
    assert.equal(auth.signingKey, key);
    assert.deepEqual(auth.receive('c@10.0.0.3', 1), { outcome: 'refused', problem: 'unsigned-refused' });
    assert.deepEqual(auth.receiveSide(encodeLeave('a@10.0.0.9', 'other'), 'side', 0, 1), { outcome: 'dropped', problem: 'side-unsigned-refused' });
    assert.deepEqual(published(table), ['a@10.0.0.1']);
  });

  test('strict: a signed alive adds its names, a signed leave takes them out; a wrong key is dropped', () => {
    const { table, auth } = setup();
    auth.set({ keys: { current: key }, acceptUnsigned: false });
    const [alive] = encodeSigned('alive', ['b@10.0.0.2'], { channel: 'side', from: 'other', key, now: 1_000 });
    assert.equal(auth.receiveSide(alive!, 'side', 1_000, 1).outcome, 'changed');
    assert.deepEqual(published(table), ['a@10.0.0.1', 'b@10.0.0.2']);
    const [forged] = encodeSigned('leave', ['b@10.0.0.2'], { channel: 'side', from: 'other', key: Buffer.alloc(32, 8), now: 1_000 });
    assert.equal(auth.receiveSide(forged!, 'side', 1_000, 2).outcome, 'dropped');
    const [leave] = encodeSigned('leave', ['b@10.0.0.2'], { channel: 'side', from: 'other', key, now: 1_000 });
    assert.equal(auth.receiveSide(leave!, 'side', 1_000, 3).outcome, 'left');
    assert.deepEqual(published(table), ['a@10.0.0.1']);
  });
});

test('RuntimeRegistry: one runtime per key, limits follow the spec, forget stops it; runtimes found by endpoint', async () => {
  const { pool, log } = fakePool();
  const stopped: string[] = [];
  const fanOut = (key: string) => ({ stop: async () => void stopped.push(key), rejected: () => [] }) as unknown as FanOut;
  const reg = new RuntimeRegistry(pool, fanOut);
  const rt = reg.ensure('prod/chat', { peerTimeoutMs: 15_000, maxPeers: 10 });
  assert.equal(reg.ensure('prod/chat', { peerTimeoutMs: 20_000, maxPeers: 5 }), rt, 'the same runtime');
  assert.equal(rt.table.maxPeers, 5, 'with the new limits');
  assert.equal(rt.table.peerTimeoutMs, 20_000);
  rt.endpoint.attach(url('u1'), 'chat', listeners);
  reg.ensure('prod/other', { peerTimeoutMs: 15_000, maxPeers: 10 });
  assert.deepEqual([...reg.attachedTo('ep-u1')].map((r) => r.key), ['prod/chat']);
  assert.equal(reg.forget('prod/chat'), true);
  assert.equal(reg.forget('prod/chat'), false, 'once');
  assert.equal(reg.get('prod/chat'), undefined);
  await Promise.resolve();
  assert.deepEqual(stopped, ['prod/chat'], 'its fan-out stopped');
  assert.ok(log.includes('release u1 prod/chat'), 'its endpoint released');
  assert.equal(reg.size, 1);
});
