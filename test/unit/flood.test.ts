// Remote changes coalesce to one publish per REMOTE_PUBLISH_INTERVAL_MS, and a rate of new remote names above
// FLOOD_NAMES_PER_SECOND is a flood (src/controller/runtime.ts). Pure: times are passed in.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClusterRuntime, FLOOD_NAMES_PER_SECOND, RateMeter, REMOTE_PUBLISH_INTERVAL_MS } from '../../src/controller/runtime.ts';

test('remote changes are published at most once per interval, members\' changes at once', () => {
  const rt = new ClusterRuntime('ns/a', 15_000, 1000);
  rt.table.setMembers([{ node: 'a@10.0.0.1', host: '10.0.0.1', pod: 'a-1' }], 0);
  assert.deepEqual(rt.peers(10_000).peers.map((p) => p.node), ['a@10.0.0.1']);
  assert.equal(rt.nextWake(), undefined, 'nothing held back, nothing to expire');
  assert.equal(rt.remoteChange(10_010), REMOTE_PUBLISH_INTERVAL_MS - 10, 'a remote change waits for the interval');
  rt.table.hear('r@192.0.2.1', '192.0.2.1', 10_010);
  // A reconcile meanwhile (say, the watch event of our own write) publishes the earlier list.
  assert.deepEqual(rt.peers(10_300).peers.map((p) => p.node), ['a@10.0.0.1']);
  assert.equal(rt.takeChange(), undefined, 'not published yet');
  assert.equal(rt.nextWake(), 10_000 + REMOTE_PUBLISH_INTERVAL_MS, 'reconcile again when the interval is over');
  assert.deepEqual(rt.peers(10_000 + REMOTE_PUBLISH_INTERVAL_MS).peers.map((p) => p.node), ['a@10.0.0.1', 'r@192.0.2.1']);
  assert.equal(rt.takeChange(), 10_010);
  assert.equal(rt.remoteChange(12_500), 0, 'a quiet interval later: at once');
  // A member's change is published at once, remote changes with it.
  rt.table.hear('r@192.0.2.2', '192.0.2.2', 12_500);
  rt.peers(12_600);
  rt.table.setMembers([{ node: 'a@10.0.0.1', host: '10.0.0.1', pod: 'a-1' }, { node: 'a@10.0.0.2', host: '10.0.0.2', pod: 'a-2' }], 12_700);
  rt.changed(12_700);
  assert.equal(rt.peers(12_700).peers.length, 4);
});

test('a flood: more than FLOOD_NAMES_PER_SECOND new names a second, reported once when it starts and once when it ends', () => {
  const rt = new ClusterRuntime('ns/a', 15_000, 1000);
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
