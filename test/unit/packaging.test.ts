// The operator runs with the same V8 flags however it is started: the image and `npm start` spell them out
// literally, so they are checked against src/nodeFlags.ts here.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { NODE_FLAGS } from '../../src/nodeFlags.ts';

const read = (f: string) => readFileSync(new URL(`../../${f}`, import.meta.url), 'utf8');

test('the Dockerfile ENTRYPOINT runs node with NODE_FLAGS', () => {
  const line = read('Dockerfile').split('\n').find((l) => l.startsWith('ENTRYPOINT'));
  assert.ok(line, 'the Dockerfile has an ENTRYPOINT');
  assert.deepEqual(JSON.parse(line.slice('ENTRYPOINT'.length)), ['node', ...NODE_FLAGS, 'dist/src/main.js']);
});

test('npm start runs node with NODE_FLAGS', () => {
  const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
  assert.equal(pkg.scripts.start, ['node', ...NODE_FLAGS, 'src/main.ts'].join(' '));
});
