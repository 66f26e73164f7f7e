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

// sslrootcert=system in a Postgres URL reads the OS store (README, "TLS"); the slim base image has none.
test('the runtime image carries a CA bundle where SSL_CERT_FILE says', () => {
  const dockerfile = read('Dockerfile');
  const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
  assert.match(runtime, /^COPY --from=build \/etc\/ssl\/certs\/ca-certificates\.crt \/etc\/ssl\/certs\/ca-certificates\.crt$/m);
  assert.match(runtime, /^ENV SSL_CERT_FILE=\/etc\/ssl\/certs\/ca-certificates\.crt$/m);
});

test('npm start runs node with NODE_FLAGS', () => {
  const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
  assert.equal(pkg.scripts.start, ['node', ...NODE_FLAGS, 'src/main.ts'].join(' '));
});

// One version in one place: package.json's. The chart (version and appVersion, the default image tag), the
// kubectl install manifest rendered from it, and the CHANGELOG's latest release must agree with it.
test('package.json, Chart.yaml (version, appVersion), install.yaml and the CHANGELOG name one version', () => {
  const { version } = JSON.parse(read('package.json')) as { version: string };
  assert.match(version, /^\d+\.\d+\.\d+$/);
  const chart = read('charts/pgcluster-operator/Chart.yaml');
  assert.equal(/^version: (\S+)$/m.exec(chart)?.[1], version, 'Chart.yaml version');
  assert.equal(/^appVersion: "?([^"\s]+)"?$/m.exec(chart)?.[1], version, 'Chart.yaml appVersion (the default image tag)');
  const install = read('manifests/install.yaml');
  const charts = new Set([...install.matchAll(/helm\.sh\/chart: (\S+)/g)].map((m) => m[1]));
  assert.deepEqual([...charts], [`pgcluster-operator-${version}`], 'install.yaml rendered from this chart version (npm run manifests)');
  assert.equal(/^## \[(\d+\.\d+\.\d+)\]/m.exec(read('CHANGELOG.md'))?.[1], version, 'the CHANGELOG\'s latest release');
});
