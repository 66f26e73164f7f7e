// The real node's own network plumbing, as pods need it.
//
// A pod whose network namespace was made before a
// host outside Kubernetes joined the bridge (`ip netns add`, which bind-mounts /run/netns on first use) must
// still go away when deleted. Before the node made /run/netns a shared mount point itself, that bind mount came
// down over the pod's namespace mount and the kubelet failed its teardown for ever ("remove netns: device or
// resource busy"): pods stuck Terminating, seen in CI as a bench round waiting on "rn-000 gone".
//
// The bridge keeps one MAC address while ports come and go. A Linux bridge without an address of its own takes
// the lowest of its ports'; when that port left (a pod deleted, a test host removed), pods that had learnt the
// old address for the gateway sent their datagrams to nobody until their ARP entry was revalidated, up to
// ~45 s: seen in CI as a pod's resolver answering no address for 40 s after a pod was deleted or added.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { BRIDGE, BUSYBOX_IMAGE, CLUSTER_DOMAIN, createTestHost, KUBERNETES_SERVICE_IP, sh, TEST_HOST_IPS, type TestHost } from '../../harness/realnode.ts';
import { onRealNode } from '../../harness/apps.ts';
import { isReady } from '../../harness/kube.ts';
import { createNamespace, kubectl, requireRealNode, runBin, waitFor } from '../../support/env.ts';
import { testKube } from '../../support/operator.ts';
import { runCommand } from '../../harness/proc.ts';

const kube = testKube();
let ns: { name: string; cleanup(): Promise<void> } | undefined;
let host: TestHost | undefined;
/** A veth pair whose bridge end has the lowest MAC address there is (test 2). */
const LOW_PORT = `pgcolow${process.pid % 100000}`;
const LOW_MAC = '00:00:00:00:00:01';

before(async () => {
  requireRealNode();
  ns = await createNamespace('node-network');
});

after(async () => {
  await runCommand('ip', ['link', 'del', LOW_PORT]);
  await host?.remove();
  await ns?.cleanup();
});

/** /run/netns in this process's mount table: its propagation (e.g. "shared:10"), or undefined when it is no mount point. */
function netnsDirMount(): string | undefined {
  const line = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === '/run/netns');
  return line ? line.split(' - ')[0]!.split(' ').slice(6).join(' ') : undefined;
}

/** Starts a busybox pod that sleeps, on the real node; waits for it Ready. */
async function sleeperPod(name: string): Promise<void> {
  await kubectl(['apply', '-f', '-'], { ns: ns!.name, input: JSON.stringify({
    apiVersion: 'v1', kind: 'Pod', metadata: { name },
    spec: { ...onRealNode, containers: [{ name: 'sleep', image: BUSYBOX_IMAGE, imagePullPolicy: 'Never', command: ['sleep', '3600'] }] },
  }) });
  await waitFor(async () => isReady(await kube.getOptional(`/api/v1/namespaces/${ns!.name}/pods/${name}`)), { timeoutMs: 60_000, message: `pod ${name} Ready` });
}

test('a pod started before a test host joined the bridge is torn down when deleted', async () => {
  assert.match(netnsDirMount() ?? 'no mount point', /shared:/, 'the node keeps /run/netns a shared mount point while it runs');
  await sleeperPod('early');
  const path = `/api/v1/namespaces/${ns!.name}/pods/early`;
  // Now a host outside Kubernetes: `ip netns add` after the pod's namespace exists.
  host = await createTestHost(TEST_HOST_IPS[1]!);
  await kubectl(['delete', 'pod', 'early', '--wait=false'], { ns: ns!.name });
  await waitFor(async () => (await kube.getOptional(path)) === undefined, {
    timeoutMs: 60_000,
    message: 'pod early gone after its deletion (the kubelet log says "remove netns: ... device or resource busy" when its namespace mount was hidden)',
  });
});

test('the bridge keeps its MAC address as ports come and go, so a pod still reaches the cluster DNS on it', async () => {
  const bridgeMac = () => readFileSync(`/sys/class/net/${BRIDGE}/address`, 'utf8').trim();
  /** One lookup from inside the pod through its resolv.conf (busybox nslookup gives up after 5 s). */
  const lookup = (pod: string) => runBin('kubectl', ['-n', ns!.name, 'exec', pod, '--', 'nslookup', '-type=a', `kubernetes.default.svc.${CLUSTER_DOMAIN}.`], { allowFail: true });
  const answered = new RegExp(`Address: ${KUBERNETES_SERVICE_IP.replace(/\./g, '\\.')}$`, 'm');
  const before = bridgeMac();
  // A port with the lowest MAC there is joins; then a pod starts and talks to the DNS, learning the gateway's
  // MAC as it is now ...
  await sh('ip', ['link', 'add', LOW_PORT, 'address', LOW_MAC, 'type', 'veth', 'peer', 'name', `${LOW_PORT}p`], 'adding a port with the lowest MAC');
  await sh('ip', ['link', 'set', LOW_PORT, 'master', BRIDGE, 'up'], 'attaching it to the bridge');
  assert.equal(bridgeMac(), before, 'the bridge\'s MAC address after a port with a lower one joined');
  await sleeperPod('resolver');
  const first = await lookup('resolver');
  assert.match(first.stdout, answered, `the pod resolves the kubernetes Service: ${first.stdout}${first.stderr}`);
  // ... and leaves: the pod's next datagram to the DNS must still arrive.
  await sh('ip', ['link', 'del', LOW_PORT], 'removing that port');
  assert.equal(bridgeMac(), before, 'the bridge\'s MAC address after that port left');
  const second = await lookup('resolver');
  assert.match(second.stdout, answered, `right after the port left, the pod still resolves the kubernetes Service: ${second.stdout}${second.stderr}`);
});
