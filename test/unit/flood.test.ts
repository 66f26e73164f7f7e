// Remote changes are published at once while few, then coalesce to one publish per REMOTE_PUBLISH_INTERVAL_MS
// (a token bucket), and a rate of new remote names above FLOOD_NAMES_PER_SECOND is a flood (src/controller/runtime/). Pure: times are passed in.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClusterRuntime } from '../../src/controller/runtime/clusterRuntime.ts';
import { FLOOD_NAMES_PER_SECOND } from '../../src/controller/runtime/floodMeter.ts';
import { LEAVE_PUBLISH_BURST, LEAVE_PUBLISH_INTERVAL_MS, REMOTE_PUBLISH_BURST, REMOTE_PUBLISH_INTERVAL_MS } from '../../src/controller/runtime/publishPacing.ts';
import { RateMeter } from '../../src/core/rateMeter.ts';
import { TokenBucket } from '../../src/core/tokenBucket.ts';

const nodes = (r: { peers: readonly { node: string }[] }) => r.peers.map((p) => p.node);

test('remote-only changes: a burst of REMOTE_PUBLISH_BURST at once, then one per interval; members\' changes at once and free', () => {
  const rt = new ClusterRuntime('ns/a', { peerTimeoutMs: 15_000, maxPeers: 1000 });
  rt.table.setMembers([{ node: 'a@10.0.0.1', host: '10.0.0.1', pod: 'a-1' }], 0);
  rt.changed(0);
  assert.deepEqual(nodes(rt.peers(10_000)), ['a@10.0.0.1']);
  assert.equal(rt.takeChange(), 0);
  assert.equal(rt.nextWake(), undefined, 'nothing held back, nothing to expire');
  // A few remote changes in quick succession: each published at once.
  for (let i = 1; i <= REMOTE_PUBLISH_BURST; i++) {
    const at = 10_000 + i * 10;
    assert.equal(rt.remoteChange(at), 0, `remote change ${i} of the burst: at once`);
    rt.table.hear(`r@192.0.2.${i}`, `192.0.2.${i}`, at);
    assert.equal(nodes(rt.peers(at)).length, 1 + i, `remote change ${i} published`);
    assert.equal(rt.takeChange(), at);
  }
  // The next one waits for a token (one per interval, counted from the burst's first).
  const at = 10_000 + (REMOTE_PUBLISH_BURST + 1) * 10;
  const wait = rt.remoteChange(at);
  assert.ok(wait > 0 && wait <= REMOTE_PUBLISH_INTERVAL_MS, `the change after the burst waits for a token: ${wait} ms`);
  rt.table.hear('r@192.0.2.99', '192.0.2.99', at);
  // A reconcile meanwhile (say, the watch event of our own write) publishes the earlier list.
  assert.equal(nodes(rt.peers(at + 1)).length, 1 + REMOTE_PUBLISH_BURST);
  assert.equal(rt.takeChange(), undefined, 'not published yet');
  assert.equal(rt.nextWake(), at + wait, 'reconcile again when the token is there');
  assert.ok(nodes(rt.peers(at + wait)).includes('r@192.0.2.99'));
  assert.equal(rt.takeChange(), at);
  // A member's change is published at once, remote changes with it, and takes no token.
  rt.table.hear('r@192.0.2.100', '192.0.2.100', at + wait);
  rt.table.setMembers([{ node: 'a@10.0.0.1', host: '10.0.0.1', pod: 'a-1' }, { node: 'a@10.0.0.2', host: '10.0.0.2', pod: 'a-2' }], at + wait);
  rt.changed(at + wait);
  assert.equal(rt.peers(at + wait).peers.length, 2 + REMOTE_PUBLISH_BURST + 2, 'two members, the burst, the held one and the new one');
});

test('reconciles that publish nothing new take no token: a remote change after a quiet spell of them is published at once', () => {
  const rt = new ClusterRuntime('ns/a', { peerTimeoutMs: 60_000, maxPeers: 1000 });
  rt.table.setMembers([{ node: 'a@10.0.0.1', host: '10.0.0.1', pod: 'a-1' }], 0);
  rt.changed(0);
  rt.peers(0);
  // Many reconciles with nothing remote to publish (watch events of our own writes, resyncs): no token used.
  for (let t = 1; t <= 50; t++) rt.peers(t * 10);
  for (let i = 1; i <= REMOTE_PUBLISH_BURST; i++) {
    assert.equal(rt.remoteChange(600), 0);
    rt.table.hear(`r@192.0.2.${i}`, `192.0.2.${i}`, 600);
    rt.table.expire(600);
    assert.ok(nodes(rt.peers(600)).includes(`r@192.0.2.${i}`), `remote change ${i} published at once`);
  }
});

test('a flood of names and their leaves stays paced: publications within both buckets\' bursts and rates (a few a second)', () => {
  const rt = new ClusterRuntime('ns/a', { peerTimeoutMs: 60_000, maxPeers: 1000 });
  rt.table.setMembers([{ node: 'a@10.0.0.1', host: '10.0.0.1', pod: 'a-1' }], 0);
  rt.changed(0);
  let last = nodes(rt.peers(0)).join();
  let publications = 0;
  const seconds = 10;
  // Every 5 ms a new name and, 5 ms later, its leave (as another operator's "leave" would do), with a reconcile
  // after each: today's reconcile rate under a flood is far below this.
  for (let t = 5; t <= seconds * 1000; t += 5) {
    const node = `r@192.0.2.${t % 250}`;
    if (t % 10 === 5) {
      rt.table.hear(`${node}x${t}`, `192.0.2.${t % 250}`, t);
      rt.remoteChange(t);
    } else {
      rt.table.forget(`${node}x${t - 5}`, t);
      rt.remoteChange(t, 'leave');
    }
    const p = nodes(rt.peers(t)).join();
    if (p !== last) publications++; // a new list: an output write
    last = p;
  }
  const bound = REMOTE_PUBLISH_BURST + seconds + LEAVE_PUBLISH_BURST + (seconds * 1000) / LEAVE_PUBLISH_INTERVAL_MS;
  assert.ok(publications <= bound, `${publications} publications in ${seconds} s (at most ${bound})`);
  assert.ok(publications >= seconds - 1, `still published about once a second: ${publications}`);
});

test('another cluster\'s rolling update: a leave every 300 ms, each published at once', () => {
  const rt = new ClusterRuntime('ns/a', { peerTimeoutMs: 60_000, maxPeers: 1000 });
  rt.table.setMembers([{ node: 'a@10.0.0.1', host: '10.0.0.1', pod: 'a-1' }], 0);
  for (let i = 0; i < 40; i++) rt.table.hear(`b@10.1.0.${i}`, `10.1.0.${i}`, 0);
  rt.changed(0);
  rt.peers(0);
  for (let i = 0; i < 40; i++) {
    const t = 1000 + i * 300;
    rt.table.forget(`b@10.1.0.${i}`, t);
    assert.equal(rt.remoteChange(t, 'leave'), 0, `leave ${i}: a reconcile at once`);
    assert.equal(rt.peers(t).peers.length, 40 - i, `leave ${i} published at once`);
  }
});

test('a flood: more than FLOOD_NAMES_PER_SECOND new names a second, reported once when it starts and once when it ends', () => {
  const rt = new ClusterRuntime('ns/a', { peerTimeoutMs: 15_000, maxPeers: 1000 });
  assert.deepEqual(rt.flood(1000), { perSecond: 0, flooding: false, changed: false });
  for (let i = 0; i < 10; i++) rt.remoteChange(1000 + i * 50);
  assert.equal(rt.flood(1600).flooding, false, 'ten names a second are no flood');
  for (let i = 0; i <= FLOOD_NAMES_PER_SECOND; i++) rt.remoteChange(2100 + i);
  const f = rt.flood(2300);
  assert.ok(f.flooding && f.changed && f.perSecond > FLOOD_NAMES_PER_SECOND, JSON.stringify(f));
  assert.equal(rt.flood(2400).changed, false, 'reported once');
  const over = rt.flood(6000);
  assert.deepEqual(over, { perSecond: 0, flooding: false, changed: true });
});

test('RateMeter: the last complete second or the current one', () => {
  const m = new RateMeter();
  for (let i = 0; i < 50; i++) m.hit(1000 + i * 10);
  assert.equal(m.perSecond(1500), 50);
  assert.equal(m.perSecond(2000), 50, 'the second that just ended');
  assert.equal(m.perSecond(4000), 0, 'nothing for two seconds');
});

test('TokenBucket: starts full, one token per interval, never more than its capacity', () => {
  const b = new TokenBucket(3, 1000);
  assert.ok(b.take(5000) && b.take(5000) && b.take(5000), 'three at once');
  assert.equal(b.take(5000), false, 'the fourth waits');
  assert.equal(b.readyAt(5000), 6000);
  assert.equal(b.take(5999), false);
  assert.ok(b.take(6000));
  assert.equal(b.readyAt(6500), 7000, 'half a token at 6500');
  assert.equal(b.readyAt(60_000), 60_000, 'a full bucket after a quiet minute');
  assert.ok(b.take(60_000) && b.take(60_000) && b.take(60_000));
  assert.equal(b.take(60_000), false, 'capacity, not a minute\'s worth');
});
