// The real node's own plumbing, as a pod's life needs it: a pod whose network namespace was made before a
// host outside Kubernetes joined the bridge (`ip netns add`, which bind-mounts /run/netns on first use) must
// still go away when deleted. Before the node made /run/netns a shared mount point itself, that bind mount came
// down over the pod's namespace mount and the kubelet failed its teardown for ever ("remove netns: device or
// resource busy"): pods stuck Terminating, seen in CI as a bench round waiting on "rn-000 gone".
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { BUSYBOX_IMAGE, createTestHost, TEST_HOST_IPS, type TestHost } from '../../../scripts/stack/realnode.ts';
import { onRealNode } from '../../../scripts/stack/apps.ts';
import { isReady } from '../../../scripts/stack/kube.ts';
import { createNamespace, kubectl, requireRealNode, waitFor } from '../../support/env.ts';
import { testKube } from '../../support/operator.ts';

const kube = testKube();
let ns: { name: string; cleanup(): Promise<void> } | undefined;
let host: TestHost | undefined;

before(async () => {
  requireRealNode();
  ns = await createNamespace('node-netns');
});

after(async () => {
  await host?.remove();
  await ns?.cleanup();
});

/** /run/netns in this process's mount table: its propagation (e.g. "shared:10"), or undefined when it is no mount point. */
function netnsDirMount(): string | undefined {
  const line = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === '/run/netns');
  return line ? line.split(' - ')[0]!.split(' ').slice(6).join(' ') : undefined;
}

test('a pod started before a test host joined the bridge is torn down when deleted', async () => {
  assert.match(netnsDirMount() ?? 'no mount point', /shared:/, 'the node keeps /run/netns a shared mount point while it runs');
  await kubectl(['apply', '-f', '-'], { ns: ns!.name, input: JSON.stringify({
    apiVersion: 'v1', kind: 'Pod', metadata: { name: 'early' },
    spec: { ...onRealNode, containers: [{ name: 'sleep', image: BUSYBOX_IMAGE, imagePullPolicy: 'Never', command: ['sleep', '3600'] }] },
  }) });
  const path = `/api/v1/namespaces/${ns!.name}/pods/early`;
  await waitFor(async () => isReady(await kube.getOptional(path)), { timeoutMs: 60_000, message: 'pod early Ready' });
  // Now a host outside Kubernetes: `ip netns add` after the pod's namespace exists.
  host = await createTestHost(TEST_HOST_IPS[1]!);
  await kubectl(['delete', 'pod', 'early', '--wait=false'], { ns: ns!.name });
  await waitFor(async () => (await kube.getOptional(path)) === undefined, {
    timeoutMs: 60_000,
    message: 'pod early gone after its deletion (the kubelet log says "remove netns: ... device or resource busy" when its namespace mount was hidden)',
  });
});
