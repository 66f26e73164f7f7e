// The shape of src/ (docs/architecture.md, "The shape"): dependencies point inwards (core uses nothing of
// kube, postgres or controller; kube and postgres never use controller), no module imports itself back
// through others, and no file grows past 300 lines without saying why in its header.
import assert from 'node:assert/strict';
import { readFileSync, globSync } from 'node:fs';
import { dirname, join, normalize, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const files = globSync('src/**/*.ts', { cwd: root }).map(normalize).sort();
// Every way a module loads another: `import … from`, `export … from`, a bare `import './x.ts'` (for its side
// effects), and `import('./x.ts')` (main.ts loads the operator so).
const IMPORT = /(?:^|\n)\s*(?:import|export)\s*(?:[^'"]*?\bfrom\s+)?'(\.[^']+)'|\bimport\(\s*'(\.[^']+)'\s*\)/g;

function importsOf(file: string): string[] {
  const text = readFileSync(join(root, file), 'utf8');
  return [...text.matchAll(IMPORT)].map((m) => normalize(join(dirname(file), (m[1] ?? m[2])!)));
}
const graph = new Map(files.map((f) => [f, importsOf(f)]));

test('every relative import names a file that exists', () => {
  const missing = [...graph].flatMap(([f, deps]) => deps.filter((d) => !graph.has(d)).map((d) => `${f} -> ${d}`));
  assert.deepEqual(missing, []);
});

test('dependencies point inwards: core <- kube, postgres <- controller', () => {
  const layer = (f: string) => f.split('/')[1] ?? '';
  const allowed: Record<string, string[]> = { core: ['core'], kube: ['core', 'kube'], postgres: ['core', 'postgres'] };
  const wrong = [...graph].flatMap(([f, deps]) => {
    const ok = allowed[layer(f)];
    return ok ? deps.filter((d) => d.startsWith('src/') && d.split('/').length > 2 && !ok.includes(layer(d))).map((d) => `${f} -> ${d}`) : [];
  });
  assert.deepEqual(wrong, []);
});

test('no import cycle under src/', () => {
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (f: string): void => {
    state.set(f, 'open');
    path.push(f);
    for (const d of graph.get(f) ?? []) {
      if (state.get(d) === 'open') cycles.push([...path.slice(path.indexOf(d)), d].map((p) => relative('src', p)).join(' -> '));
      else if (!state.has(d)) visit(d);
    }
    path.pop();
    state.set(f, 'done');
  };
  for (const f of files) if (!state.has(f)) visit(f);
  assert.deepEqual(cycles, []);
});

test('no file over 300 lines unless its header says why', () => {
  const long = files.filter((f) => {
    const text = readFileSync(join(root, f), 'utf8');
    const lines = text.split('\n').length;
    const header = text.split('\n').slice(0, 12).join('\n');
    return lines > 300 && !/over 300 lines/i.test(header);
  });
  assert.deepEqual(long, []);
});
