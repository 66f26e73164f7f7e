// The gate benchmark runs end to end on the test stack's real node: `node bench/run.ts --smoke gate` (3 real
// BEAM pods rolled once without the readiness gate, once with it) prints, per rollout, the time some Ready pod
// was not connected to another and the rollout's duration, and writes its JSON. Not a timing test: only that
// every figure is there and sane.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { runCommand } from '../../harness/proc.ts';
import { requireRealNode } from '../../support/env.ts';

const repoRoot = join(import.meta.dirname, '..', '..', '..');
const out = mkdtempSync(join(tmpdir(), 'pgco-bench-gate-'));
after(() => rmSync(out, { recursive: true, force: true }));

interface Row { key: string; value: number | null }

test('npm run bench -- --smoke gate: per rollout, without and with the gate, the time not connected and the duration', { timeout: 900_000 }, async () => {
  requireRealNode(); // the bench reuses this stack and its real node
  const r = await runCommand(process.execPath, [join(repoRoot, 'bench/run.ts'), '--smoke', '--out', out, 'gate'], { cwd: repoRoot });
  assert.equal(r.code, 0, `bench exited ${r.code}:\n${r.stdout}\n${r.stderr.slice(-4000)}`);
  assert.match(r.stdout, /^gate\s+with the gate, rollout 1: time some Ready pod was not connected to another\s+[\d,.]+ ms$/m);

  const [file] = readdirSync(out).filter((f) => f.endsWith('-smoke.json'));
  assert.ok(file, `a JSON in ${out}`);
  const doc = JSON.parse(readFileSync(join(out, file), 'utf8')) as { errors: Record<string, string>; rows: Row[]; details: { gate: { figures: { variant: string; durationMs: number; disconnectedMs: number; settledMs: number }[] } } };
  assert.deepEqual(doc.errors, {});
  for (const key of ['without_1_disconnected_ms', 'with_1_disconnected_ms', 'without_1_duration_s', 'with_1_duration_s']) {
    const row = doc.rows.find((x) => x.key === `gate.${key}`);
    assert.ok(row && typeof row.value === 'number' && row.value >= 0, `row gate.${key} with a value`);
  }
  const figures = doc.details.gate.figures;
  assert.deepEqual(figures.map((f) => f.variant), ['without', 'with']);
  // Each rollout replaced 3 pods, one at a time: not instant; the time not connected fits in the window measured.
  for (const f of figures) assert.ok(f.durationMs > 0 && f.disconnectedMs <= f.settledMs && f.durationMs <= f.settledMs, JSON.stringify(f));
});
