// The Kubernetes adapter's pure parts: which resource an API path names (the label of the request metrics),
// how long a 429 asks to wait, and a rotated token file.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { MAX_RETRY_AFTER_MS, resourceOf, retryAfterMs } from '../../src/kube/client.ts';
import { TokenFile } from '../../src/kube/transport.ts';

const cases: [string, string][] = [
  ['/api/v1/namespaces/prod/pods', 'pods'],
  ['/api/v1/namespaces/prod/pods/chat-0', 'pods'],
  ['/api/v1/namespaces/prod/configmaps/chat-peers?fieldManager=pgcluster-operator', 'configmaps'],
  ['/api/v1/namespaces/prod', 'namespaces'],
  ['/api/v1/pods', 'pods'],
  ['/apis/pgcluster.io/v1alpha1/namespaces/prod/pgclusters/chat/status', 'pgclusters/status'],
  ['/apis/pgcluster.io/v1alpha1/pgclusters', 'pgclusters'],
  ['/apis/coordination.k8s.io/v1/namespaces/pgcluster-system/leases/pgcluster-operator', 'leases'],
  ['/apis/apiextensions.k8s.io/v1/customresourcedefinitions/pgclusters.pgcluster.io', 'customresourcedefinitions'],
  ['/apis/discovery.k8s.io/v1/namespaces/prod/endpointslices', 'endpointslices'],
  ['/version', 'unknown'],
];
for (const [path, resource] of cases) {
  test(`resourceOf ${path}`, () => assert.equal(resourceOf(path), resource));
}

// Retry-After as API Priority and Fairness sends it (seconds), or as an HTTP date; anything else waits 1 s.
const NOW = Date.parse('2026-12-03T12:00:00Z');
const retryCases: [string | null, number][] = [
  ['1', 1000], ['5', 5000], ['0', 100], ['', 1000], [null, 1000], ['soon', 1000], ['-3', 1000],
  ['3600', MAX_RETRY_AFTER_MS], [new Date(NOW + 7000).toUTCString(), 7000], [new Date(NOW - 7000).toUTCString(), 1000],
];
for (const [header, ms] of retryCases) {
  test(`retryAfterMs(${JSON.stringify(header)}) = ${ms}`, () => assert.equal(retryAfterMs(header, NOW), ms));
}

test('TokenFile: read once, kept, read again after a refusal (and says whether it changed)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgco-token-'));
  const file = join(dir, 'token');
  writeFileSync(file, 'token-a\n');
  const t = new TokenFile(file);
  assert.equal(await t.token(), 'token-a');
  writeFileSync(file, 'token-b\n');
  assert.equal(await t.token(), 'token-a', 'kept until a refusal or a minute');
  assert.equal(await t.refused(), true, 'a new token in the file');
  assert.equal(await t.token(), 'token-b');
  assert.equal(await t.refused(), false, 'the same token: no point trying again');
  rmSync(dir, { recursive: true });
});
