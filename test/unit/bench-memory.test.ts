// The benchmark's split of an operator's RSS by mapping (bench/lib/operator.ts), from a /proc/<pid>/smaps
// excerpt: the node executable's pages, other files, anonymous memory.
import assert from 'node:assert/strict';
import { readFileSync, readlinkSync } from 'node:fs';
import { test } from 'node:test';
import { memoryMapOf } from '../../bench/lib/operator.ts';

const SMAPS = `00400000-00c00000 r-xp 00000000 08:01 1234                               /usr/bin/node
Size:               8192 kB
Rss:                5000 kB
Pss:                5000 kB
00c00000-00d00000 r--p 00800000 08:01 1234                               /usr/bin/node
Rss:                 100 kB
01000000-02000000 rw-p 00000000 00:00 0                                  [heap]
Rss:                 300 kB
7f0000000000-7f0000100000 rw-p 00000000 00:00 0
Rss:                2000 kB
7f1000000000-7f1000100000 r-xp 00000000 08:01 99                         /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                 700 kB
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
Rss:                  40 kB
`;

test('memoryMapOf: Rss summed per mapping kind', () => {
  assert.deepEqual(memoryMapOf(SMAPS, '/usr/bin/node'), { nodeBinary: 5100 * 1024, otherFiles: 700 * 1024, anonymous: 2340 * 1024 });
});

test('memoryMapOf: this process, read live, adds up to its VmRSS within a few MB', () => {
  const m = memoryMapOf(readFileSync('/proc/self/smaps', 'utf8'), readlinkSync('/proc/self/exe'));
  const vmRss = Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]) * 1024;
  const sum = m.nodeBinary + m.otherFiles + m.anonymous;
  assert.ok(m.nodeBinary > 10 * 2 ** 20, `the node executable is mapped: ${m.nodeBinary} bytes`);
  assert.ok(Math.abs(sum - vmRss) < 8 * 2 ** 20, `sum ${sum} vs VmRSS ${vmRss}`);
});
