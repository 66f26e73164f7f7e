// The benchmark runs end to end: `node bench/run.ts --smoke join steady pgload` against the test stack (tiny
// sizes) prints its table and writes its JSON with the expected keys and sane numbers, and next to it the SVG
// plots (well-formed XML naming their series). Not a timing test: the figures of a smoke run mean nothing,
// only that they are there and plausible.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DOMParser } from '@xmldom/xmldom';
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

test('npm run bench -- --smoke join steady pgload: a table, a JSON with every figure, and its plots', async () => {
  const r = await runBench(['--smoke', '--out', out, 'join', 'steady', 'pgload']);
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
  assert.deepEqual(doc.scenarios, ['join', 'steady', 'pgload']);
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
  // The floor taken between the rounds, and the tail against it (issue 13 item 5).
  assert.ok(value('join.floor_during_p99_ms') >= value('join.floor_during_p50_ms') && value('join.floor_during_p50_ms') > 0);
  assert.ok(value('join.join_p99_vs_floor') > 0 && value('join.leave_p99_vs_floor') > 0);
  assert.equal(row('join.join_p99_vs_floor').target, '<= 1.5 x');
  assert.equal(value('join.libcluster_k8s_poll_mean_ms'), 2500);

  // Steady state: no Kubernetes writes, about one commit per interval, plausible CPU and RSS.
  assert.equal(value('steady.kube_writes_per_min'), 0, 'a steady heartbeat makes no Kubernetes write');
  const commits = value('steady.pg_commits_per_interval');
  assert.ok(commits >= 0.5 && commits <= 2, `commits per interval: ${commits}`);
  assert.ok(value('steady.cpu_percent') >= 0 && value('steady.cpu_percent') < 100);
  assert.ok(value('steady.rss_mb') > 10 && value('steady.rss_mb') < 4096);
  // The idle RSS split by mapping adds up to about the idle RSS (issue 13: what holds the footprint).
  const parts = value('steady.idle_rss_node_binary_mb') + value('steady.idle_rss_files_mb') + value('steady.idle_rss_anon_mb');
  assert.ok(value('steady.idle_rss_node_binary_mb') > 10 && Math.abs(parts - value('steady.idle_rss_mb')) < 16, `idle RSS ${value('steady.idle_rss_mb')} MB, its parts ${parts} MB`);
  assert.ok(doc.details.join && doc.details.steady && doc.details.pgload, 'details per scenario');
  // pgload: the operator holds its two connections; libcluster_postgres two per member.
  assert.equal(value('pgload.operator_10_connections'), 2);
  assert.equal(value('pgload.libcluster_10_connections'), 20);

  // The plots: next to the JSON, named after it, printed, well-formed, with their series and labels.
  const stem = files[0]!.replace(/\.json$/, '');
  const svgs = readdirSync(out).filter((f) => f.endsWith('.svg')).sort();
  assert.deepEqual(svgs, [`${stem}-fleet-footprint.svg`, `${stem}-latency-cdf.svg`, `${stem}-postgres-load.svg`]);
  for (const f of svgs) assert.ok(r.stdout.includes(`plot: ${join(out, f)}\n`), `${f} printed`);
  const texts = (file: string): string[] => {
    const errors: string[] = [];
    const svg = new DOMParser({ onError: (level, msg) => { errors.push(`${level}: ${msg}`); } }).parseFromString(readFileSync(join(out, file), 'utf8'), 'image/svg+xml');
    assert.deepEqual(errors, [], `${file} parses as XML`);
    assert.equal(svg.documentElement?.nodeName, 'svg', file);
    assert.ok(svg.getElementsByTagName('path').length > 10, `${file} draws something`);
    return Array.from(svg.getElementsByTagName('text')).map((t) => t.textContent ?? '');
  };
  const has = (file: string, want: (string | RegExp)[]) => {
    const t = texts(file);
    for (const w of want) assert.ok(t.some((x) => (typeof w === 'string' ? x === w : w.test(x))), `${file}: ${w} among ${JSON.stringify(t)}`);
  };
  has(`${stem}-latency-cdf.svg`, ['join', 'leave', 'annotations in the API (5 pods)', 'ConfigMap in the API', /^fan-out floor \(5 PATCHes\): \d+ ms$/, 'fraction of events']);
  has(`${stem}-postgres-load.svg`, ['libcluster_postgres', 'operator', 'connections held', 'NOTIFY commits/s', 'OLTP throughput kept (% of no discovery)', '10 members', '20', '2']);
  has(`${stem}-fleet-footprint.svg`, ['operator RSS', 'operator CPU', 'RSS, steady window', 'CPU, steady window', 'steady, 9 pods']);
});

test('npm run bench -- --smoke bystanders: the pod cache holds only the clustered pods among bystanders', async () => {
  const dir = mkdtempSync(join(out, 'bystanders-'));
  const r = await runBench(['--smoke', '--out', dir, 'bystanders']);
  assert.equal(r.code, 0, `bench exited ${r.code}:\n${r.stdout}\n${r.stderr.slice(-4000)}`);
  const file = readdirSync(dir).find((f) => f.endsWith('-smoke.json'));
  assert.ok(file, `a JSON file in ${dir}`);
  const doc = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { scenarios: string[]; rows: Row[]; errors: Record<string, string> };
  assert.deepEqual(doc.scenarios, ['bystanders']);
  assert.deepEqual(doc.errors, {});
  const value = (key: string): number => {
    const v = doc.rows.find((x) => x.key === key)?.value;
    assert.equal(typeof v, 'number', `row ${key} has a value`);
    return v as number;
  };
  assert.equal(value('bystanders.bystander_pods'), 60);
  assert.equal(value('bystanders.cached_pods_among'), 20, 'only the 20 clustered pods are cached, none of the 60 bystanders');
  for (const k of ['rss_alone_mb', 'rss_among_mb', 'rss_ratio', 'cpu_alone_percent', 'cpu_among_percent', 'publish_alone_s', 'publish_among_s', 'publish_ratio']) {
    assert.ok(value(`bystanders.${k}`) >= 0, k);
  }
});

test('npm run bench -- --smoke churn rollout: the churn tail against its floor, and the rollout: annotation format list/version, libcluster polling beside it', async () => {
  const dir = mkdtempSync(join(out, 'rollout-'));
  const r = await runBench(['--smoke', '--out', dir, 'churn', 'rollout']);
  assert.equal(r.code, 0, `bench exited ${r.code}:\n${r.stdout}\n${r.stderr.slice(-4000)}`);
  const file = readdirSync(dir).find((f) => f.endsWith('-smoke.json'));
  assert.ok(file, `a JSON file in ${dir}`);
  const doc = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { scenarios: string[]; rows: Row[]; errors: Record<string, string>; details: Record<string, Record<string, unknown>> };
  assert.deepEqual(doc.scenarios, ['churn', 'rollout']);
  assert.deepEqual(doc.errors, {});
  const value = (key: string): number => {
    const v = doc.rows.find((x) => x.key === key)?.value;
    assert.equal(typeof v, 'number', `${key} has a value among ${doc.rows.map((x) => x.key).join(', ')}`);
    return v as number;
  };
  assert.ok(value('churn.floor_fanout_p50_ms') > 0);
  assert.ok(value('churn.join_p99_vs_floor') > 0);
  assert.equal(doc.rows.find((x) => x.key === 'churn.join_p99_vs_floor')?.target, '<= 2 x');
  for (const k of ['list', 'version']) {
    assert.ok(value(`rollout.${k}_rollout_s`) > 0, k);
    assert.ok(value(`rollout.${k}_converged_s`) >= value(`rollout.${k}_rollout_s`) * 0.5, k);
    // The operator patched every new pod at least once, and wrote the ConfigMap.
    assert.ok(value(`rollout.${k}_annotation_writes`) >= 6 && value(`rollout.${k}_kube_writes`) > value(`rollout.${k}_annotation_writes`), k);
    assert.ok(value(`rollout.${k}_control_plane_cpu_s`) > 0 && value(`rollout.${k}_requests_per_s`) > 0, k);
    // From the operator's pgcluster_kube_request_duration_seconds and reconcile histograms.
    assert.ok(value(`rollout.${k}_cm_patch_mean_ms`) > 0 && value(`rollout.${k}_pod_patch_mean_ms`) > 0 && value(`rollout.${k}_reconcile_mean_ms`) > 0, k);
    const p50 = value(`rollout.${k}_join_p50_ms`);
    assert.ok(p50 > 0 && p50 <= value(`rollout.${k}_join_p99_ms`) && value(`rollout.${k}_join_p99_ms`) < 300_000, k);
    assert.ok(value(`rollout.${k}_cm_join_p99_ms`) <= value(`rollout.${k}_join_p99_ms`), k);
    // One full pass at rest, after the rollout: the anchor of the join tail (issue 24).
    assert.ok(value(`rollout.${k}_rest_pass_ms`) > 0 && value(`rollout.${k}_rest_leave_ms`) > 0, k);
  }
  for (const k of ['target_cpu_ratio', 'target_list_join_p99_vs_pass', 'target_version_join_p99_ms', 'target_version_reconcile_mean_ms', 'operator_steady_cpu_s_per_min', 'operator_steady_requests_per_s']) assert.ok(value(`rollout.${k}`) >= 0, k);
  // Six members polling every 5 s, over a 5 s window: about 1.2 requests a second on top of everything else.
  const pollRate = value('rollout.libcluster_6_steady_requests_per_s');
  assert.ok(pollRate >= 1, `the simulated members' GETs reach the API server: ${pollRate} requests/s`);
  for (const k of ['steady_cpu_s_per_min', 'rollout_cpu_s_per_min', 'rollout_requests_per_s']) assert.ok(value(`rollout.libcluster_6_${k}`) > 0, k);
  const lc = (doc.details.rollout?.libcluster as { simErrors: number; simRequests: number }[] | undefined)?.[0];
  assert.ok(lc && lc.simErrors === 0 && lc.simRequests >= 6, `the simulator's GETs succeed: ${JSON.stringify(lc)}`);
});
