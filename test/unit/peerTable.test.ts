import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PeerTable } from '../../src/core/peerTable.ts';

const m = (ip: string) => ({ node: `chat@${ip}`, host: ip, pod: `pod-${ip}` });
const names = (t: PeerTable) => t.peers().peers.map((p) => `${p.source}:${p.node}`);

describe('PeerTable', () => {
  test('members and remote peers, sorted', () => {
    const t = new PeerTable(15_000, 1000);
    assert.deepEqual(t.setMembers([m('10.0.0.2'), m('10.0.0.1')], 0), { added: ['chat@10.0.0.2', 'chat@10.0.0.1'], removed: [] });
    assert.equal(t.hear('ex@elixir-1', 'elixir-1', 0), 'new');
    assert.equal(t.hear('chat@10.0.0.1', '10.0.0.1', 0), 'member');
    assert.deepEqual(names(t), ['member:chat@10.0.0.1', 'member:chat@10.0.0.2', 'remote:ex@elixir-1']);
    // isMember answers the echo of our own heartbeat without parsing it; a remote name is not a member.
    assert.deepEqual(['chat@10.0.0.1', 'ex@elixir-1', 'chat@10.0.0.9'].map((n) => t.isMember(n)), [true, false, false]);
  });

  test('remote peers expire peerTimeout after last heard', () => {
    const t = new PeerTable(15_000, 1000);
    t.hear('ex@a', 'a', 0);
    assert.equal(t.hear('ex@a', 'a', 10_000), 'refreshed');
    assert.equal(t.nextExpiry(), 25_000);
    assert.deepEqual(t.expire(24_999), []);
    assert.deepEqual(t.expire(25_000), ['ex@a']);
    assert.deepEqual(names(t), []);
  });

  test('a departed member is removed at once and a late echo cannot bring it back', () => {
    const t = new PeerTable(15_000, 1000);
    t.setMembers([m('10.0.0.1'), m('10.0.0.2')], 0);
    assert.deepEqual(t.setMembers([m('10.0.0.1')], 1000).removed, ['chat@10.0.0.2']);
    assert.equal(t.hear('chat@10.0.0.2', '10.0.0.2', 1500), 'tombstoned');
    assert.deepEqual(names(t), ['member:chat@10.0.0.1']);
    // after peerTimeout, the name is free again (e.g. another operator now announces that IP)
    assert.equal(t.hear('chat@10.0.0.2', '10.0.0.2', 16_000), 'new');
  });

  test('a member that returns clears its tombstone', () => {
    const t = new PeerTable(15_000, 1000);
    t.setMembers([m('10.0.0.1')], 0);
    t.setMembers([], 1);
    assert.deepEqual(t.setMembers([m('10.0.0.1')], 2).added, ['chat@10.0.0.1']);
    t.setMembers([m('10.0.0.1')], 3);
    assert.deepEqual(names(t), ['member:chat@10.0.0.1']);
  });

  test('a remote name that becomes a member is listed once, as a member', () => {
    const t = new PeerTable(15_000, 1000);
    t.hear('chat@10.0.0.1', '10.0.0.1', 0);
    t.setMembers([m('10.0.0.1')], 1);
    assert.deepEqual(names(t), ['member:chat@10.0.0.1']);
  });

  test('nothing expires while paused; resume gives a fresh peerTimeout', () => {
    const t = new PeerTable(15_000, 1000);
    t.hear('ex@a', 'a', 0);
    t.pause(5000);
    assert.deepEqual(t.expire(60_000), []);
    assert.equal(t.nextExpiry(), undefined);
    t.resume(60_000);
    assert.deepEqual(t.expire(74_999), []);
    assert.deepEqual(t.expire(75_000), ['ex@a']);
  });

  test('maxPeers caps the outputs, members first, and counts what was dropped', () => {
    const t = new PeerTable(15_000, 3);
    t.setMembers([m('10.0.0.1'), m('10.0.0.2')], 0);
    assert.equal(t.hear('a@x', 'x', 0), 'new');
    assert.equal(t.hear('b@x', 'b', 0), 'over-limit');
    assert.equal(t.hear('c@x', 'c', 0), 'over-limit');
    const { peers, dropped } = t.peers();
    assert.equal(peers.length, 3);
    assert.equal(dropped, 2);
    // more members than maxPeers: members win, remote dropped
    t.setMembers([m('10.0.0.1'), m('10.0.0.2'), m('10.0.0.3'), m('10.0.0.4')], 1);
    assert.deepEqual(t.peers().peers.map((p) => p.source), ['member', 'member', 'member']);
  });

  test('10,000 distinct junk names hold bounded memory', () => {
    const t = new PeerTable(15_000, 100);
    for (let i = 0; i < 10_000; i++) t.hear(`junk${i}@h`, 'h', 0);
    assert.equal(t.peers().peers.length, 100);
    t.expire(15_000);
    assert.deepEqual(t.peers(), { peers: [], dropped: 0 });
  });

  test('seeded remote peers survive a restart and expire normally', () => {
    const t = new PeerTable(15_000, 1000);
    t.setMembers([m('10.0.0.1')], 0);
    t.seedRemote([{ node: 'ex@a', host: 'a' }, { node: 'chat@10.0.0.1', host: '10.0.0.1' }], 0);
    assert.deepEqual(names(t), ['member:chat@10.0.0.1', 'remote:ex@a']);
    assert.deepEqual(t.expire(15_000), ['ex@a']);
  });

  test('a name refused for maxPeers, heard again once there is room, then a member: no longer counted as left out', () => {
    const t = new PeerTable(15_000, 1);
    t.hear('ex@a', 'a', 0);
    assert.equal(t.hear('ex@b', 'b', 0), 'over-limit');
    t.forget('ex@a', 0);
    assert.equal(t.hear('ex@b', 'b', 1), 'new'); // now remote, and still remembered as refused
    t.setMembers([{ node: 'ex@b', host: 'b', pod: 'b-0' }], 2);
    assert.deepEqual(t.peers(), { peers: [{ node: 'ex@b', host: 'b', source: 'member', pod: 'b-0' }], dropped: 0 });
  });

  test('peers() is built once per version: after any sequence of changes it answers what a fresh build would', () => {
    // Every kind of change, at random (seeded), on a small universe of names so that they collide. After each,
    // the cached answer must equal that of a new table given the same changes (built from nothing), and an
    // unchanged version must hand back the same object.
    let seed = 7;
    const rand = (n: number) => { // mulberry32
      seed = (seed + 0x6d2b79f5) | 0;
      let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
      return (((x ^ (x >>> 14)) >>> 0) / 2 ** 32) * n | 0;
    };
    const ips = ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5'];
    const table = () => new PeerTable(1000, 4);
    const t = table();
    const ops: { what: string; apply(x: PeerTable): void }[] = [];
    let now = 0;
    let last = t.peers();
    for (let i = 0; i < 1500; i++) {
      const ip = ips[rand(ips.length)]!;
      const at = now;
      let op: (typeof ops)[number];
      switch (rand(8)) {
        case 0: {
          const members = ips.filter(() => rand(3) === 0).map((x) => ({ node: `chat@${x}`, host: rand(4) === 0 ? `h-${x}` : x, pod: `pod-${x}-${rand(2)}` }));
          op = { what: `setMembers ${members.map((x) => `${x.node}/${x.host}/${x.pod}`).join(',')}`, apply: (x) => x.setMembers(members, at) };
          break;
        }
        case 1: case 2: {
          const signed = rand(2) === 0;
          op = { what: `hear ex@${ip}${signed ? ' signed' : ''}`, apply: (x) => x.hear(`ex@${ip}`, ip, at, signed) };
          break;
        }
        case 3:
          op = { what: `forget ex@${ip}`, apply: (x) => x.forget(`ex@${ip}`, at) };
          break;
        case 4: {
          now += rand(800);
          const to = now;
          op = { what: `expire ${to}`, apply: (x) => x.expire(to) };
          break;
        }
        case 5:
          op = { what: 'dropUnsigned', apply: (x) => x.dropUnsigned() };
          break;
        case 6: {
          const max = 2 + rand(4);
          op = { what: `maxPeers ${max}`, apply: (x) => { x.maxPeers = max; } };
          break;
        }
        default:
          op = { what: `hear chat@${ip}`, apply: (x) => x.hear(`chat@${ip}`, ip, at) };
      }
      ops.push(op);
      const before = t.version;
      op.apply(t);
      const answer = t.peers();
      const fresh = table();
      for (const o of ops) o.apply(fresh);
      assert.deepEqual(answer, fresh.peers(), `after: ${ops.slice(-6).map((o) => o.what).join(' | ')}`);
      if (t.version === before) assert.equal(answer, last, 'an unchanged version answers the same object');
      last = answer;
    }
  });
});
