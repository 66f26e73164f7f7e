// WriteMemo: a write is read back until the cache shows a newer version; forgotten entries expire (FakeClock).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WriteMemo } from '../../src/controller/write/writeMemo.ts';
import type { KubeObject } from '../../src/kube/client.ts';
import { FakeClock } from '../support/fakeClock.ts';

const obj = (rv: string, v: string): KubeObject & { v: string } => ({ metadata: { name: 'x', resourceVersion: rv }, v });

test('our write stands in for the stale cache, until the cache moves past it', () => {
  const memo = new WriteMemo(new FakeClock());
  memo.record('k', obj('1', 'old'), obj('2', 'new'));
  assert.equal(memo.observe('k', obj('1', 'old'))?.v, 'new', 'the cache still shows the version we wrote over');
  assert.equal(memo.observe('k', obj('2', 'new'))?.v, 'new', 'the cache caught up');
  assert.equal(memo.size, 0, 'and the entry is gone');
  assert.equal(memo.observe('k', obj('1', 'old'))?.v, 'old');
});

test('a cache that moved, but not yet to our write (another writer came first), still reads as our write', () => {
  const memo = new WriteMemo(new FakeClock());
  memo.record('k', obj('10', 'old'), obj('12', 'ours'));
  assert.equal(memo.observe('k', obj('11', 'kubelet'))?.v, 'ours', 'version 11 is older than our 12');
  assert.equal(memo.observe('k', obj('12', 'ours'))?.v, 'ours');
  assert.equal(memo.size, 0);
  memo.record('k', obj('10', 'old'), obj('12', 'ours'));
  assert.equal(memo.observe('k', obj('13', 'newer'))?.v, 'newer', 'past our write: the cache');
  memo.record('o', obj('a', 'old'), obj('c', 'ours'));
  assert.equal(memo.observe('o', obj('b', 'other'))?.v, 'other', 'versions that are not numbers cannot be ordered: the cache');
});

test('entries nobody looks at again are swept after 60 s', () => {
  const clock = new FakeClock();
  const memo = new WriteMemo(clock);
  memo.record('gone', obj('1', 'a'), obj('2', 'b'));
  clock.advance(60_001);
  memo.record('other', obj('1', 'a'), obj('2', 'b'));
  assert.equal(memo.size, 1);
});
