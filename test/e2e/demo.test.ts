// The demo (`npm run demo`) runs for a bounded time and shows what a newcomer should see.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';

test('npm run demo -- --duration 20 shows peers joining and leaving, then cleans up', () => {
  const r = spawnSync(process.execPath, ['scripts/demo.ts', '--duration', '20'], { encoding: 'utf8', timeout: 180_000 });
  const out = `${r.stdout}\n${r.stderr}`;
  assert.equal(r.status, 0, out.slice(-3000));
  // kubectl get pgclusters shows the columns and the members.
  assert.match(out, /NAME\s+CHANNEL\s+MEMBERS\s+PEERS\s+READY\s+AGE\s+HEARTBEAT\s+REASON/);
  assert.match(out, /chat\s+chat_cluster\s+3\s+3\s+True/);
  // The Elixir node shows up as a peer (3 members + 1 remote), then the 4th pod.
  assert.match(out, /chat\s+chat_cluster\s+3\s+4\s+True/);
  assert.match(out, /elixir@192\.0\.2\.10/);
  assert.match(out, /chat\s+chat_cluster\s+4\s+5\s+True/);
  // Pods carry the annotation; the Elixir node heard our pods' bare names.
  assert.match(out, /chat-0\s+10\.\d+\.\d+\.\d+\s+chat@10\.\d+\.\d+\.\d+,chat@/);
  assert.match(out, /heard chat@10\.\d+\.\d+\.\d+ on chat_cluster/);
  assert.match(out, /source \/\S+\/env/, 'says how to point kubectl at it');
  assert.match(out, /removed \/\S+pgco-demo-/, 'cleans up');
});
