// The Kubernetes adapter's pure parts: which resource an API path names (the label of the request metrics),
// how long a 429 asks to wait, and a rotated token file; and how the client waits out a 429.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeApiError, KubeClient, MAX_RETRY_AFTER_MS, MAX_THROTTLED_RETRIES, resourceOf, retryAfterMs } from '../../src/kube/client.ts';
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

// The 429 path of KubeClient.request against a loopback HTTP server that answers as API Priority and Fairness
// does (no API server can be made to reject on cue): each retry comes no sooner than the Retry-After asked,
// and a request still refused after MAX_THROTTLED_RETRIES goes to its caller. The bounds are lower bounds on
// waits, which a busy machine only lengthens.
async function throttlingServer(refusals: number, retryAfter: string): Promise<{ client: KubeClient; arrivals: number[]; retries: string[]; close(): Promise<void> }> {
  const arrivals: number[] = [];
  const server = createServer((_req, res) => {
    arrivals.push(performance.now());
    if (arrivals.length <= refusals) {
      res.writeHead(429, { 'Retry-After': retryAfter, 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', reason: 'TooManyRequests', message: 'too many requests' }));
    } else {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{"kind":"ConfigMap"}');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'x' }], contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x',
  });
  const retries: string[] = [];
  const client = new KubeClient(kc, { onRetry: (reason) => retries.push(reason) });
  return { client, arrivals, retries, close: async () => { await client.close(); await new Promise<void>((resolve) => server.close(() => resolve())); } };
}

test('a 429 is retried after its Retry-After, as often as it is sent', async () => {
  const s = await throttlingServer(2, '1');
  try {
    assert.deepEqual(await s.client.get('/api/v1/namespaces/prod/configmaps/chat-peers'), { kind: 'ConfigMap' });
    assert.equal(s.arrivals.length, 3, 'two refusals, then the answer');
    assert.deepEqual(s.retries, ['throttled', 'throttled'], 'each retry reported (pgcluster_kube_request_retries_total)');
    for (let i = 1; i < s.arrivals.length; i++) {
      const gap = s.arrivals[i]! - s.arrivals[i - 1]!;
      assert.ok(gap >= 950, `attempt ${i + 1} came ${gap.toFixed(0)} ms after the refusal that asked for 1 s`);
    }
  } finally {
    await s.close();
  }
});

test('a request refused more than MAX_THROTTLED_RETRIES times goes to its caller as a 429', async () => {
  const s = await throttlingServer(1_000, '0');
  try {
    await assert.rejects(s.client.get('/api/v1/namespaces/prod/configmaps/chat-peers'), (err: unknown) => err instanceof KubeApiError && err.status === 429);
    assert.equal(s.arrivals.length, MAX_THROTTLED_RETRIES + 1, 'the first try and its retries, no more');
    const span = s.arrivals.at(-1)! - s.arrivals[0]!;
    assert.ok(span >= MAX_THROTTLED_RETRIES * 95, `'Retry-After: 0' still waits 100 ms each time (${span.toFixed(0)} ms for ${MAX_THROTTLED_RETRIES})`);
  } finally {
    await s.close();
  }
});
