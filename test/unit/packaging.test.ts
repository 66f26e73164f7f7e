// The operator runs with the same V8 flags however it is started: the image and `npm start` spell them out
// literally, so they are checked against src/nodeFlags.ts here. And a release names one version everywhere.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { NODE_FLAGS } from '../../src/nodeFlags.ts';
import { defaultChartRepository, mergeReleases, pickPreviousRelease, recordedReleases, versionProblems } from '../harness/release.ts';

const read = (f: string) => readFileSync(new URL(`../../${f}`, import.meta.url), 'utf8');

test('the Dockerfile ENTRYPOINT runs node with NODE_FLAGS', () => {
  const line = read('Dockerfile').split('\n').find((l) => l.startsWith('ENTRYPOINT'));
  assert.ok(line, 'the Dockerfile has an ENTRYPOINT');
  assert.deepEqual(JSON.parse(line.slice('ENTRYPOINT'.length)), ['node', ...NODE_FLAGS, 'dist/src/main.js']);
});

// sslrootcert=system in a Postgres URL reads the OS store (docs/postgres.md, "TLS"); the slim base image has none.
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
  // The same check `npm run release` makes before it builds anything.
  assert.deepEqual(versionProblems(version, read('charts/pgcluster-operator/Chart.yaml'), read('CHANGELOG.md')), []);
  const install = read('manifests/install.yaml');
  const charts = new Set([...install.matchAll(/helm\.sh\/chart: (\S+)/g)].map((m) => m[1]));
  assert.deepEqual([...charts], [`pgcluster-operator-${version}`], 'install.yaml rendered from this chart version (npm run manifests)');
});

test('versionProblems names each disagreement', () => {
  const chart = (v: string, a: string) => `name: pgcluster-operator\nversion: ${v}\nappVersion: "${a}"\n`;
  const log = (v: string) => `# Changelog\n\n## [Unreleased]\n\n## [${v}]\n`;
  assert.deepEqual(versionProblems('0.2.0', chart('0.2.0', '0.2.0'), log('0.2.0')), []);
  assert.equal(versionProblems('0.2.0', chart('0.1.0', '0.2.0'), log('0.2.0')).length, 1);
  assert.match(versionProblems('0.2.0', chart('0.2.0', '0.1.0'), log('0.2.0'))[0]!, /appVersion/);
  assert.match(versionProblems('0.2.0', chart('0.2.0', '0.2.0'), log('0.1.0'))[0]!, /CHANGELOG's latest release is 0\.1\.0/);
  assert.match(versionProblems('0.2', chart('0.2', '0.2'), log('0.2.0'))[0]!, /not x\.y\.z/);
});

test('the previous release: the highest v<x.y.z> tag on an ancestor of HEAD, not on HEAD itself', () => {
  const t = (tag: string, commit: string) => ({ tag, version: tag.slice(1), commit });
  const ancestors = new Set(['a1', 'a2', 'a3', 'head']);
  const pick = (tags: ReturnType<typeof t>[]) => pickPreviousRelease(tags, 'head', (c) => ancestors.has(c))?.tag;
  assert.equal(pick([t('v0.1.0', 'a1')]), 'v0.1.0');
  assert.equal(pick([t('v0.1.0', 'a1'), t('v0.10.0', 'a3'), t('v0.9.1', 'a2')]), 'v0.10.0', 'by version, not by name');
  assert.equal(pick([t('v0.1.0', 'a1'), t('v0.2.0', 'head')]), 'v0.1.0', 'the tag on HEAD is the release being made');
  assert.equal(pick([t('v0.1.0', 'a1'), t('v0.3.0', 'elsewhere')]), 'v0.1.0', 'a tag on another branch is not where HEAD came from');
  assert.equal(pick([t('v0.1.0-rc1', 'a1'), t('vnext', 'a2')]), undefined, 'only v<x.y.z>');
  assert.equal(pick([]), undefined);
});

test('a clone without tags finds the releases the CHANGELOG records with their commit', () => {
  const a = 'a'.repeat(40);
  const b = 'b'.repeat(40);
  const log = `# Changelog\n\n## [0.3.0] — 2026-12-09\n\nReleased as commit ${b}.\n\n## [0.2.0] — 2026-12-03\n\n### Added\n- Released as commit ${a} (not the section's first line)\n\n## [0.1.0] — 2026-11-30\n\nReleased as commit ${a}.\n`;
  assert.deepEqual(recordedReleases(log), [{ tag: 'v0.3.0', version: '0.3.0', commit: b }, { tag: 'v0.1.0', version: '0.1.0', commit: a }]);
  assert.deepEqual(recordedReleases('## [0.1.0]\n\nReleased as commit 2722d05.\n'), [], 'only a full commit id');
  const tag = { tag: 'v0.1.0', version: '0.1.0', commit: 'c'.repeat(40) };
  assert.deepEqual(mergeReleases([tag], recordedReleases(log)).map((r) => `${r.tag} ${r.commit[0]}`), ['v0.1.0 c', 'v0.3.0 b'], 'a tag wins over the record of its version');
});

test('the repository\'s own CHANGELOG records the previous release', () => {
  const recorded = recordedReleases(read('CHANGELOG.md'));
  assert.ok(recorded.some((r) => r.tag === 'v0.1.0'), 'CHANGELOG.md: "Released as commit <sha>." under ## [0.1.0]');
});

test('the chart repository defaults to charts/ beside the image', () => {
  assert.equal(defaultChartRepository('registry.example.com/acme/pgcluster-operator'), 'oci://registry.example.com/acme/charts');
  assert.equal(defaultChartRepository('ghcr.io/pgcluster-operator'), 'oci://ghcr.io/charts');
});
