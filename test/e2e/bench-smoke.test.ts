// The benchmark runs end to end: `node bench/run.ts --smoke join steady` against the test stack (tiny sizes)
// prints its table and writes its JSON with the expected keys and sane numbers. Not a timing test: the
// figures of a smoke run mean nothing, only that they are there and plausible.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { requireEnv } from '../support/env.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const out = mkdtempSync(join(tmpdir(), 'pgco-bench-smoke-'));
after(() => rmSync(out, { recursive: true, force: true }));

interface Row { scenario: string; key: string; metric: string; value: number | null; unit: string; target: string; status: string }

function runBench(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  requireEnv(); // the bench reuses the stack named by the environment
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [join(repoRoot, 'bench/run.ts'), ...args], { cwd: repoRoot, env: process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    child.on('error', rej);
    child.on('exit', (code) => res({ code: code ?? 1, stdout, stderr }));
  });
}

test('npm run bench -- --smoke join steady: a table and a JSON with every figure', async () => {
  const r = await runBench(['--smoke', '--out', out, 'join', 'steady']);
  assert.equal(r.code, 0, `bench exited ${r.code}:\n${r.stdout}\n${r.stderr.slice(-4000)}`);

  // The table: a header, the scenarios' rows, where the JSON went.
  assert.match(r.stdout, /^scenario\s+metric\s+value\s+target\s+result$/m);
  assert.match(r.stdout, /^join\s+join latency p99\s+[\d,.]+ ms\s+<= 250 ms\s+(pass|miss)$/m);
  assert.match(r.stdout, /^steady\s+Kubernetes writes per minute/m);
  assert.match(r.stdout, /^results: .*-smoke\.json$/m);

  const files = readdirSync(out).filter((f) => f.endsWith('-smoke.json'));
  assert.equal(files.length, 1, `one JSON file in ${out}: ${files.join(', ')}`);
  assert.ok(!files.includes('latest.json'), 'a smoke run never becomes latest.json');
  const doc = JSON.parse(readFileSync(join(out, files[0]!), 'utf8')) as {
    mode: string; scenarios: string[]; machine: { cpus: number }; rows: Row[]; errors: Record<string, string>; details: Record<string, Record<string, unknown>>;
  };
  assert.equal(doc.mode, 'smoke');
  assert.deepEqual(doc.scenarios, ['join', 'steady']);
  assert.deepEqual(doc.errors, {});
  assert.ok(doc.machine.cpus >= 1);
  const row = (key: string): Row => {
    const found = doc.rows.find((x) => x.key === key);
    assert.ok(found, `row ${key} in ${doc.rows.map((x) => x.key).join(', ')}`);
    return found;
  };
  const value = (key: string) => {
    const v = row(key).value;
    assert.equal(typeof v, 'number', `${key} has a value`);
    return v as number;
  };
  for (const r0 of doc.rows) assert.match(r0.status, /^(pass|miss|info)$/, r0.key);

  // Latencies: positive, ordered, and not absurd (a join is published within the 30 s the bench waits).
  for (const kind of ['join', 'leave']) {
    const p50 = value(`join.${kind}_p50_ms`);
    const p99 = value(`join.${kind}_p99_ms`);
    assert.ok(p50 > 0 && p50 <= p99 && p99 <= value(`join.${kind}_max_ms`) && p99 < 30_000, `${kind}: p50 ${p50} p99 ${p99}`);
  }
  assert.equal(row('join.join_p99_ms').target, '<= 250 ms');
  // The floors sit below what they are floors of.
  assert.ok(value('join.floor_notify_p50_ms') > 0 && value('join.floor_notify_p50_ms') < 1000);
  assert.ok(value('join.floor_patch_p50_ms') > 0 && value('join.floor_patch_p50_ms') < 10_000);
  assert.ok(value('join.floor_fanout_p50_ms') > 0 && value('join.floor_fanout_p50_ms') < 30_000);
  assert.equal(value('join.libcluster_k8s_poll_mean_ms'), 2500);

  // Steady state: no Kubernetes writes, about one commit per interval, plausible CPU and RSS.
  assert.equal(value('steady.kube_writes_per_min'), 0, 'a steady heartbeat makes no Kubernetes write');
  const commits = value('steady.pg_commits_per_interval');
  assert.ok(commits >= 0.5 && commits <= 2, `commits per interval: ${commits}`);
  assert.ok(value('steady.cpu_percent') >= 0 && value('steady.cpu_percent') < 100);
  assert.ok(value('steady.rss_mb') > 10 && value('steady.rss_mb') < 4096);
  assert.ok(doc.details.join && doc.details.steady, 'details per scenario');
});
