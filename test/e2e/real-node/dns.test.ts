// The DNS output with a real DNS server (issue 14, item 1): CoreDNS with its kubernetes plugin serves the
// cluster domain on the real node (test/harness/realnode.ts), and real pods ask it for the PgCluster's
// headless Service as Phoenix's dns_cluster and libcluster's DNSPoll do. Every member pod's IP and a remote
// peer's are answered, each within a bound measured from the change (pod Ready, the remote's NOTIFY, a pod
// deleted, a remote gone quiet); a pod that leaves drops out of the answer.
//
// The pods resolve through their own resolv.conf (the kubelet's clusterDNS), with busybox's nslookup every
// 100 ms; each logs the answer when it changes (test/harness/apps.ts, dnsWatcherContainer).
import assert from 'node:assert/strict';
import { after, before, test, type TestContext } from 'node:test';
import pg from 'pg';
import { dnsWatcherContainer, onRealNode, parseDnsWatcherLine } from '../../harness/apps.ts';
import { isReady } from '../../harness/kube.ts';
import { startLibclusterNode, type LibclusterNode } from '../../harness/libcluster-node.ts';
import { CLUSTER_DNS_TTL_SECONDS, CLUSTER_DOMAIN, TEST_HOST_IPS } from '../../harness/realnode.ts';
import { kubectl, requireRealNode, runBin, waitFor, type RealNodeEnv } from '../../support/env.ts';
import { createPgCluster, operatorInNamespace, testKube, type OperatorProcess } from '../../support/operator.ts';
import { paths, type EndpointSliceObject } from '../../../src/kube/resources.ts';
import type { KubeClient } from '../../../src/kube/client.ts';

const CLUSTER = 'chat';
const SERVICE = `${CLUSTER}-peers`;
/**
 * The remote node's address: a test-host address of the stack on the pods' bridge (routable from the pods,
 * as the README asks of remote IPs, and nowhere off this machine). Resolving it sends it nothing.
 */
const REMOTE_IP = TEST_HOST_IPS.at(-1)!;
const REMOTE = `far@${REMOTE_IP}`;
const PEER_TIMEOUT_S = 4;
/**
 * From the change to every pod's resolver: the operator's slice write and CoreDNS's informer (well under a
 * second on a quiet machine), at most one cache lifetime (CoreDNS serves a cached answer until its TTL,
 * CLUSTER_DNS_TTL_SECONDS, runs out), and the pods' 100 ms poll; 5 s of slack for two cores shared with the
 * other real-node tests (beside the realnode benchmark a leave once took 8.3 s). README "DNS output" has the
 * measured figures.
 */
const DNS_BOUND_MS = (CLUSTER_DNS_TTL_SECONDS + 5) * 1000;

interface PodJson {
  metadata: { name: string; deletionTimestamp?: string };
  status: { podIP?: string; conditions?: { type: string; status: string }[] };
}

let env: RealNodeEnv;
let kube: KubeClient;
let ns: { name: string; cleanup(): Promise<void> } | undefined;
let op: OperatorProcess | undefined;
let remote: LibclusterNode | undefined;
let channel: string;
let query: string;
const podIp = new Map<string, string>();
const samples: Record<'join' | 'remote' | 'leave' | 'expire', { slice: number; dns: number[] }[]> = { join: [], remote: [], leave: [], expire: [] };

before(async () => {
  env = requireRealNode();
  kube = testKube();
  ({ ns, op } = await operatorInNamespace(kube, 'dns-real', env.databaseUrl));
  channel = `${ns.name.replace(/-/g, '_')}_${CLUSTER}`;
  // Fully qualified (trailing dot): the exact name an app puts in DNS_CLUSTER_QUERY, no search-list expansion.
  query = `${SERVICE}.${ns.name}.svc.${CLUSTER_DOMAIN}.`;
  await createPgCluster(kube, ns.name, CLUSTER, {
    selector: { matchLabels: { app: CLUSTER } }, postgres: { urlSecretRef: { name: 'db' } }, channel,
    heartbeatInterval: '1s', peerTimeout: `${PEER_TIMEOUT_S}s`, output: { service: {} },
  });
});

after(async () => {
  await remote?.stop();
  if (ns) await kubectl(['delete', 'pod', '--all', '--wait=false'], { ns: ns.name }).catch(() => {});
  await op?.stop();
  if (ns) await kubectl(['patch', 'pgcluster', CLUSTER, '--type=merge', '-p', '{"metadata":{"finalizers":null}}'], { ns: ns.name }).catch(() => {});
  await ns?.cleanup();
});

async function startPod(name: string): Promise<void> {
  await kubectl(['apply', '-f', '-'], { ns: ns!.name, input: JSON.stringify({
    apiVersion: 'v1', kind: 'Pod', metadata: { name, labels: { app: CLUSTER } },
    spec: { ...onRealNode, containers: [dnsWatcherContainer('app', query, 0.1)] },
  }) });
}

/** Waits for the pod Ready with an IP; returns when the test saw it (a 50 ms poll). */
async function readyAt(name: string): Promise<number> {
  const pod = await waitFor(async () => {
    const p = await kube.getOptional<PodJson>(`/api/v1/namespaces/${ns!.name}/pods/${name}`);
    return p && isReady(p) && p.status.podIP ? p : false;
  }, { timeoutMs: 60_000, intervalMs: 50, message: `pod ${name} Ready with an IP` });
  podIp.set(name, pod.status.podIP!);
  return Date.now();
}

/** The addresses in the Service's EndpointSlices, through the API. */
async function sliceAddresses(): Promise<string[]> {
  const list = await kube.list<EndpointSliceObject>(paths.endpointSlices(ns!.name), { labelSelector: `kubernetes.io/service-name=${SERVICE}` });
  return list.items.flatMap((s) => (s.endpoints ?? []).flatMap((e) => e.addresses)).sort();
}

/** A pod's resolver answers, in order: when (wall-clock ms) and the addresses (sorted by the parser). */
async function answers(pod: string): Promise<{ at: number; addresses: string[] }[]> {
  const log = await kubectl(['logs', pod], { ns: ns!.name });
  return log.split('\n').flatMap((l) => parseDnsWatcherLine(l) ?? []);
}

const key = (ips: readonly string[]) => [...ips].sort().join(',');

/**
 * Waits until every pod's latest answer is exactly `want`, and returns, per pod, when its resolver first
 * gave an answer that `changed` accepts at or after `since` (the change the caller timed); and when the
 * EndpointSlices first did (a 50 ms poll of the API beside it), to tell the operator's part from the DNS's.
 */
async function expectAnswers(what: string, pods: string[], want: string[], since: number, changed: (addresses: string[]) => boolean): Promise<{ slice: number; seen: Map<string, number> }> {
  let detail = '';
  let failingPod: string | undefined;
  let slice = NaN;
  let polling = true;
  const slicePoll = (async () => {
    while (polling && Number.isNaN(slice)) {
      if (changed(await sliceAddresses().catch(() => []))) slice = Date.now();
      else await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const seen = await waitFor(async () => {
    const seen = new Map<string, number>();
    for (const p of pods) {
      const a = await answers(p);
      const last = a.at(-1);
      if (key(last?.addresses ?? []) !== key(want)) {
        detail = `${p} answers [${last?.addresses.join(',') ?? 'nothing yet'}], wants [${key(want)}]; its answers: ${a.slice(-6).map((x) => `[${x.addresses.join(',')}]`).join(' ')}`;
        failingPod = p;
        return false;
      }
      // The app's first answer may predate `since` by the 10 ms of /proc/uptime's resolution.
      const first = a.find((x) => x.at >= since - 10 && changed(x.addresses));
      seen.set(p, first ? Math.max(first.at, since) : last!.at);
    }
    return seen;
  }, { timeoutMs: DNS_BOUND_MS + 30_000, intervalMs: 200, message: `${what}: every pod's resolver answers ${query} with exactly [${key(want)}]` })
    .catch(async (e: Error) => {
      // Ask once more from inside the pod, by hand, to tell a stuck watcher from a resolver that fails.
      const asked = failingPod ? await runBin('kubectl', ['-n', ns!.name, 'exec', failingPod, '--', 'nslookup', '-type=a', query], { allowFail: true }) : undefined;
      throw new Error(`${e.message}; ${detail}${asked ? `; nslookup in ${failingPod} now: ${(asked.stdout + asked.stderr).replace(/\s+/g, ' ').trim()}` : ''}`);
    })
    .finally(() => { polling = false; });
  await slicePoll;
  return { slice, seen };
}

/** Records the latencies and fails if one is over the bound (with `extraMs` allowed for the change itself). */
function record(t: TestContext, kind: keyof typeof samples, since: number, r: { slice: number; seen: Map<string, number> }, extraMs = 0): void {
  const { slice, seen } = r;
  samples[kind].push({ slice: slice - since, dns: [...seen.values()].map((at) => at - since) });
  t.diagnostic(`${kind}: EndpointSlice ${slice - since} ms; resolvers ${[...seen.entries()].map(([p, at]) => `${p} ${at - since} ms`).join(', ')}`);
  for (const [p, at] of seen) {
    assert.ok(at - since <= DNS_BOUND_MS + extraMs, `${p}'s resolver saw the change ${at - since} ms after it, over the bound of ${DNS_BOUND_MS + extraMs} ms`);
  }
}

test('real pods resolve the Service name to every member pod IP; a pod that joins is answered within the bound', async (t) => {
  await startPod('chat-1');
  await startPod('chat-2');
  await readyAt('chat-1');
  await readyAt('chat-2');
  await expectAnswers('two members', ['chat-1', 'chat-2'], [podIp.get('chat-1')!, podIp.get('chat-2')!], 0, () => true);
  const resolv = await kubectl(['exec', 'chat-1', '--', 'cat', '/etc/resolv.conf'], { ns: ns!.name });
  assert.match(resolv, new RegExp(`^search ${ns!.name}\\.svc\\.${CLUSTER_DOMAIN} `, 'm'), 'the kubelet wrote the cluster domain into the pod\'s resolv.conf');

  await startPod('chat-3');
  const t0 = await readyAt('chat-3');
  const ip3 = podIp.get('chat-3')!;
  const seen = await expectAnswers('after chat-3 joined', ['chat-1', 'chat-2', 'chat-3'], [...podIp.values()], t0, (a) => a.includes(ip3));
  record(t, 'join', t0, seen);
});

test('a remote peer\'s IP, announced on the channel, is answered to every pod within the bound', async (t) => {
  const c = new pg.Client({ connectionString: env.databaseUrl });
  await c.connect();
  const t0 = Date.now();
  try {
    await c.query(`NOTIFY "${channel}", '${REMOTE}'`);
  } finally {
    await c.end();
  }
  // It keeps announcing itself, as a libcluster_postgres node does.
  remote = await startLibclusterNode(env.databaseUrl, channel, REMOTE, 1_000, { firstBeatAfterMs: 1_000, recordHeard: false });
  const members = [...podIp.values()];
  const seen = await expectAnswers('with the remote peer', ['chat-1', 'chat-2', 'chat-3'], [...members, REMOTE_IP], t0, (a) => a.includes(REMOTE_IP));
  assert.deepEqual(await sliceAddresses(), [...members, REMOTE_IP].sort());
  record(t, 'remote', t0, seen);
});

test('a deleted pod and a remote peer that goes quiet leave every answer', async (t) => {
  const ip2 = podIp.get('chat-2')!;
  const t0 = Date.now();
  await kubectl(['delete', 'pod', 'chat-2', '--wait=false'], { ns: ns!.name });
  podIp.delete('chat-2');
  const left = await expectAnswers('after chat-2 was deleted', ['chat-1', 'chat-3'], [...podIp.values(), REMOTE_IP], t0, (a) => !a.includes(ip2));
  record(t, 'leave', t0, left);

  // Quiet for peerTimeout, then dropped (a remote-only change is published within a second).
  await remote!.stop();
  const t1 = Date.now();
  const gone = await expectAnswers('after the remote peer expired', ['chat-1', 'chat-3'], [...podIp.values()], t1, (a) => !a.includes(REMOTE_IP));
  record(t, 'expire', t1, gone, PEER_TIMEOUT_S * 1000 + 1000);
  t.diagnostic(`DNS bound ${DNS_BOUND_MS} ms (record TTL and cache ${CLUSTER_DNS_TTL_SECONDS} s); all samples: ${JSON.stringify(samples)}`);
});
