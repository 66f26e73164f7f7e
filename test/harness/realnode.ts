// A real node for the test stack: containerd + runc + a CNI bridge, a real kubelet, kube-scheduler, and a
// locally built pause image. kwok stays for the fast suite; this is where pods really run, mount volumes and
// read files. Needs root (mounts, network namespaces, cgroups) and Debian's containerd, runc and
// containernetworking-plugins; podman or buildah builds the images.
//
// Network: pods live on the bridge pgco0 (POD_CIDR, gateway BRIDGE_IP on this machine). They reach the API
// server as every pod does, at the `kubernetes` Service IP: that address is put on the bridge, and a small
// TCP relay in this process forwards it to the API server on loopback (TLS passes through; the server's
// certificate names the Service IP). Nothing touches iptables: no masquerading, no port mapping — pods talk
// to each other and to this machine only.
//
// Cluster DNS: CoreDNS (scripts/build-binaries.sh coredns) with its kubernetes plugin serves CLUSTER_DOMAIN on
// BRIDGE_IP:53, and the kubelet's clusterDNS points pods' resolv.conf at it. No forward plugin: a name outside
// the cluster domain gets no answer, so a pod is never led to dial anything beyond this machine.
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { ensureBinaries, isReady, kubeconfigYaml, kubeRequest, NODE_USER, REAL_NODE, SCHEDULER_USER, type KubeStack } from './kube.ts';
import { buildDebianImage, buildLocalImage, runtimeInstructions, saveImage } from './image.ts';
import { buildExampleImages } from './examples.ts';
import { fileURLToPath } from 'node:url';
import { assertRunning, cacheDir, freePort, logTail, pidAlive, runCommand, startOwnedProc, waitReady, type CommandResult, type Proc } from './proc.ts';
import { Teardown } from './teardown.ts';

export const BRIDGE = 'pgco0';
export const BRIDGE_IP = '10.201.0.1';
/**
 * The bridge's own MAC address (the CNI bridge plugin's convention: 0a:58, then the gateway's IPv4 address).
 * A bridge left without one takes the lowest MAC of its ports, so it changes as pods and test hosts come and
 * go; pods whose ARP entry for the gateway (and so for CoreDNS on it) holds the old one then lose every
 * datagram to it until the entry is revalidated, up to ~45 s (seen as a pod's resolver answering nothing).
 */
export const BRIDGE_MAC = '0a:58:0a:c9:00:01';
export const POD_CIDR = '10.201.0.0/24';
/** Pods get addresses up to .199; .200–.254 are for hosts that tests put on the bridge (network namespaces). */
const POD_RANGE_END = '10.201.0.199';
export const TEST_HOST_IPS = Array.from({ length: 55 }, (_, i) => `10.201.0.${200 + i}`);
/** The first IP of the API server's --service-cluster-ip-range: the `kubernetes` Service. */
export const KUBERNETES_SERVICE_IP = '10.0.0.1';
/** The cluster domain CoreDNS serves and the kubelet writes into pods' resolv.conf search list. */
export const CLUSTER_DOMAIN = 'cluster.local';
/** The pods' nameserver: CoreDNS listens on the bridge's gateway address. */
export const CLUSTER_DNS_IP = BRIDGE_IP;
/**
 * Record TTL of the kubernetes plugin and the most the cache plugin keeps an answer: the plugin's own default
 * (5 s). kubeadm's default Corefile uses 30 for both, so there a change takes up to 30 s longer to be seen.
 */
export const CLUSTER_DNS_TTL_SECONDS = 5;
/** Only pods that tolerate this run on the real node, so no other test's pod ever tries to pull an image. */
export const REAL_NODE_TAINT = { key: 'pgcluster.io/real-node', value: 'true', effect: 'NoSchedule' };
export const PAUSE_IMAGE = 'localhost/pgco-pause:3.10';
/** A tiny image with busybox (Debian's busybox-static), for app pods that read files. */
export const BUSYBOX_IMAGE = 'localhost/pgco-busybox:1';
/** Debian's Elixir and Erlang with examples/mounted-files/peer_watch.exs: a real BEAM app clustered by the operator. */
export const BEAM_APP_IMAGE = 'localhost/pgco-beam-app:1';
const LOCK = '/run/pgco-real-node.pid';
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface RealNode {
  name: string;
  /** unix:// endpoint of containerd (for `ctr -a`). */
  containerdSocket: string;
  pids: Record<string, number>;
  /** The node's processes (containerd, CoreDNS, kubelet, kube-scheduler), to tell afterwards whether one died. */
  processes: readonly Proc[];
  /** Puts a podman/buildah image into the node's containerd (pods use imagePullPolicy Never/IfNotPresent). */
  loadImage(ref: string): Promise<void>;
  stop(): Promise<void>;
}

/** Runs a command; its stdout, or an error that says what was being done and what the command printed. */
export async function sh(cmd: string, args: string[], what: string): Promise<string> {
  const r = await runCommand(cmd, args);
  if (r.code !== 0) throw new Error(`${what}: ${cmd} ${args.join(' ')} exited ${r.code}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

/** Everything missing, with the packages that bring it, in one error. */
export async function checkRealNodePrerequisites(): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new Error('the real node needs root (it mounts volumes, makes network namespaces and cgroups); run as root, or leave out --real-node');
  }
  const missing: string[] = [];
  const cmds: [string, string][] = [['containerd', 'containerd'], ['ctr', 'containerd'], ['runc', 'runc'], ['ip', 'iproute2'], ['gcc', 'gcc'], ['mount', 'mount']];
  for (const [c, pkg] of cmds) {
    if ((await runCommand('sh', ['-c', `command -v ${c}`])).code !== 0) missing.push(`${c} (package ${pkg})`);
  }
  if (!cniDir()) missing.push('CNI plugins bridge/host-local/loopback (package containernetworking-plugins)');
  if (!existsSync('/bin/busybox') && !existsSync('/usr/bin/busybox')) missing.push('busybox (package busybox-static)');
  if (missing.length) {
    throw new Error(`the real node needs: ${missing.join(', ')}. On Debian: apt-get install containerd runc containernetworking-plugins iproute2 gcc busybox-static podman`);
  }
  if (existsSync(LOCK)) {
    const pid = Number(readFileSync(LOCK, 'utf8').trim());
    if (pid && pid !== process.pid && pidAlive(pid)) {
      throw new Error(`another real-node stack runs on this machine (pid ${pid}, ${LOCK}); there can be one at a time (one bridge, one Service IP). Stop it first (npm run stack -- down).`);
    }
  }
}

function cniDir(): string | undefined {
  return ['/usr/lib/cni', '/opt/cni/bin'].find((d) => ['bridge', 'host-local', 'loopback'].every((p) => existsSync(join(d, p))));
}

/** Mount points under dir, deepest first. */
function mountsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mp = line.split(' ')[4];
    if (mp && (mp === dir || mp.startsWith(`${dir}/`))) out.push(mp.replace(/\\040/g, ' '));
  }
  return out.sort((a, b) => b.length - a.length);
}

const NETNS_DIR = '/run/netns';

/**
 * Makes /run/netns a shared mount point before containerd puts any pod's network namespace there, as
 * `ip netns add` does on first use. Left to `ip netns add` (a test host, made while pods run), that bind
 * mount would come down over the pods' namespace mounts already there: hidden, they can no longer be
 * unmounted, so every such pod's sandbox teardown fails ("remove netns: device or resource busy") and the pod
 * never goes away. When it mounts it, it registers the unmount.
 */
async function shareNetnsDir(td: Teardown): Promise<void> {
  mkdirSync(NETNS_DIR, { recursive: true });
  if (mountsUnder(NETNS_DIR).includes(NETNS_DIR)) return;
  await sh('mount', ['--bind', NETNS_DIR, NETNS_DIR], `bind-mounting ${NETNS_DIR} on itself`);
  // Our bind mount of /run/netns, once nothing is mounted in it any more.
  td.push(`unmount ${NETNS_DIR}`, async () => {
    if (mountsUnder(NETNS_DIR).length === 1) await runCommand('umount', [NETNS_DIR]);
  });
  await sh('mount', ['--make-shared', NETNS_DIR], `making ${NETNS_DIR} shared`);
}

async function netnsNames(): Promise<string[]> {
  return (await runCommand('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]!).filter(Boolean);
}

async function cleanupNetwork(knownNetns: Set<string>): Promise<void> {
  await runCommand('ip', ['link', 'del', BRIDGE]);
  // Network namespaces containerd made for our pods (when they were not torn down through CNI).
  for (const ns of await netnsNames()) if (ns.startsWith('cni-') && !knownNetns.has(ns)) await runCommand('ip', ['netns', 'delete', ns]);
}

/** Shims of the node's containerd and what runs under them (by PID), then mounts under its dir. */
async function removeContainerdLeftovers(dir: string): Promise<void> {
  for (const pid of await shimPids(join(dir, 'containerd', 'containerd.sock'))) {
    for (const child of childrenOf(pid)) try { process.kill(child, 'SIGKILL'); } catch { /* gone */ }
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
  for (const mp of mountsUnder(dir)) await runCommand('umount', ['-l', mp]);
}

/**
 * What a node leaves behind once its processes are stopped (or killed with the stack): shims of its containerd
 * and what runs under them (by PID), mounts under its dir, the bridge and pod network namespaces, the lock.
 */
async function removeLeftovers(dir: string, knownNetns: Set<string>): Promise<void> {
  await removeContainerdLeftovers(dir);
  await cleanupNetwork(knownNetns);
  if (existsSync(LOCK) && !pidAlive(Number(readFileSync(LOCK, 'utf8').trim()) || 0)) rmSync(LOCK, { force: true });
}

/** Relays TCP from addr:port to 127.0.0.1:target (the pods' way to the API server). */
function relay(addr: string, port: number, target: number): Promise<Server> {
  const sockets = new Set<Socket>();
  const server = createServer((inbound) => {
    const outbound = createConnection({ host: '127.0.0.1', port: target });
    for (const s of [inbound, outbound]) { sockets.add(s); s.on('close', () => sockets.delete(s)); s.on('error', () => { inbound.destroy(); outbound.destroy(); }); }
    inbound.pipe(outbound).pipe(inbound);
  });
  const close = server.close.bind(server);
  server.close = (cb?: (err?: Error) => void) => { for (const s of sockets) s.destroy(); return close(cb); };
  return new Promise((res, rej) => { server.once('error', rej); server.listen(port, addr, () => res(server)); });
}

/** The pause binary from the Kubernetes module's own source, static, in a FROM scratch image. */
async function buildPauseImage(cache: string): Promise<void> {
  const modRoot = (await sh('sh', ['-c', `cd ${cache}/src/kube-* && PATH=/usr/local/go/bin:$PATH go list -m -f '{{.Dir}}' k8s.io/kubernetes`], 'finding k8s.io/kubernetes in the Go module cache')).trim();
  const ctx = join(cache, 'pause-image');
  mkdirSync(ctx, { recursive: true });
  if (!existsSync(join(ctx, 'pause'))) {
    await sh('gcc', ['-Os', '-static', '-Wall', '-Werror', '-DVERSION=v3.10-pgco', '-o', join(ctx, 'pause'), join(modRoot, 'build', 'pause', 'linux', 'pause.c')], 'compiling pause.c');
  }
  writeFileSync(join(ctx, 'Containerfile'), 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n');
  await buildLocalImage(PAUSE_IMAGE, ctx);
}

async function buildBusyboxImage(cache: string): Promise<void> {
  const ctx = join(cache, 'busybox-image');
  mkdirSync(ctx, { recursive: true });
  const bb = existsSync('/bin/busybox') ? '/bin/busybox' : '/usr/bin/busybox';
  await sh('cp', [bb, join(ctx, 'busybox')], 'copying busybox');
  writeFileSync(join(ctx, 'Containerfile'), 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\nENV PATH=/bin\nCMD ["sh"]\n');
  await buildLocalImage(BUSYBOX_IMAGE, ctx);
}

/**
 * The example Elixir app (examples/mounted-files) in an image made from Debian's packages by debootstrap (no
 * Hex here), running as its Dockerfile's image does: the same `elixir` package, and the Dockerfile's own ENV,
 * WORKDIR, USER and CMD, which run
 *   elixir --name "$NODE_BASENAME@$POD_IP" --cookie "$RELEASE_COOKIE" /app/peer_watch.exs
 * so a pod sets NODE_BASENAME (the PgCluster's nodeName.basename), POD_IP (downward API) and RELEASE_COOKIE.
 * (The examples e2e builds that Dockerfile itself, test/harness/examples.ts.)
 */
export async function buildBeamAppImage(): Promise<void> {
  const dir = join(repoRoot, 'examples', 'mounted-files');
  await buildDebianImage(BEAM_APP_IMAGE, {
    include: ['elixir'],
    files: { '/app/peer_watch.exs': join(dir, 'peer_watch.exs') },
    changes: runtimeInstructions(readFileSync(join(dir, 'Dockerfile'), 'utf8')),
  });
}

/** What the steps of startRealNode share: the node's dir, the control plane, the teardown, its servers. */
interface NodeCtx {
  dir: string;
  kube: KubeStack;
  td: Teardown;
  procs: Proc[];
  /** containerd's socket; ctr against it, in the CRI's namespace. */
  sock: string;
  ctr: (args: string[]) => Promise<CommandResult>;
}

/**
 * Each step registers its undoing as it starts something, so stop() (or a failed start) goes: kube-scheduler;
 * the pods, through the kubelet; the kubelet; what still runs in containerd; containerd; its shims and mounts;
 * CoreDNS; the API relay; the bridge and pod network namespaces; /run/netns; the pod cgroups; the lock.
 */
export async function startRealNode(opts: { dir: string; kube: KubeStack; log?: (l: string) => void }): Promise<RealNode> {
  const log = opts.log ?? ((l: string) => console.error(`[real-node] ${l}`));
  await checkRealNodePrerequisites();
  const dir = resolve(opts.dir, 'node');
  mkdirSync(dir, { recursive: true });
  const sock = join(dir, 'containerd', 'containerd.sock');
  const endpoint = `unix://${sock}`;
  const td = new Teardown('the real node');
  const n: NodeCtx = { dir, kube: opts.kube, td, procs: [], sock, ctr: (args) => runCommand('ctr', ['-a', sock, '-n', 'k8s.io', ...args]) };
  const loadImage = (ref: string) => importImage(endpoint, ref);
  return td.unwindOnError(async () => {
    takeLock(td);
    removeNewCgroupsAtStop(td);
    const bins = await linkNodeBinaries(opts.kube.binDir);
    await createPodNetwork(n);
    const coredns = await startCoreDns(n, bins.coredns);
    const containerd = await startContainerd(n);
    // The BEAM app image too, though only some tests run it: built here once, before any test's clock runs
    // (cold, debootstrap takes minutes; two test files building it at once each timed out), a label check when warm.
    log('building the pause, busybox, BEAM app and examples\' images');
    await buildNodeImages(loadImage);
    await coredns.ready();
    const kubelet = await startKubelet(n, bins.kubelet, endpoint);
    const scheduler = await startScheduler(n, bins.scheduler);
    try {
      await waitReady(kubelet, `registered and Ready (Node ${REAL_NODE})`, async () => {
        const r = await n.kube.api(`/api/v1/nodes/${REAL_NODE}`);
        return isReady(JSON.parse(r.body) as Parameters<typeof isReady>[0]);
      }, 90_000);
    } catch (e) {
      throw new Error(`${(e as Error).message}\ncontainerd log:\n${logTail(containerd.logFile, 10)}`);
    }
    await scheduler.ready();
    assertRunning(n.procs);
    const pids = Object.fromEntries(n.procs.map((p) => [p.name, p.pid]));
    return { name: REAL_NODE, containerdSocket: endpoint, pids, processes: n.procs, loadImage, stop: () => td.run() };
  });
}

/** One real-node stack per machine (one bridge, one Service IP): the lock, removed at stop if still ours. */
function takeLock(td: Teardown): void {
  writeFileSync(LOCK, `${process.pid}\n`);
  td.push(`remove ${LOCK}`, () => {
    if (existsSync(LOCK) && readFileSync(LOCK, 'utf8').trim() === String(process.pid)) rmSync(LOCK, { force: true });
  });
}

/** containerd puts pod cgroups under k8s.io in each v1 hierarchy; remove them at stop if we made them. */
function removeNewCgroupsAtStop(td: Teardown): void {
  const cgroupParents = readdirSync('/sys/fs/cgroup').map((c) => join('/sys/fs/cgroup', c, 'k8s.io')).filter((d) => !existsSync(d));
  td.push('remove the pod cgroups', () => { for (const d of cgroupParents) removeCgroupTree(d); });
}

/** kubelet, kube-scheduler and CoreDNS, linked beside kubectl and helm in the stack's bin dir. */
async function linkNodeBinaries(binDir: string): Promise<{ kubelet: string; scheduler: string; coredns: string }> {
  const { node, coredns: corednsDir } = await ensureBinaries(['node', 'coredns']);
  // Beside kubectl and helm in the stack's bin dir (on the PATH of `source .stack/env` and of the tests).
  for (const b of ['kubelet', 'kube-scheduler']) symlinkSync(join(node!, b), join(binDir, b));
  symlinkSync(join(corednsDir!, 'coredns'), join(binDir, 'coredns'));
  return { kubelet: join(binDir, 'kubelet'), scheduler: join(binDir, 'kube-scheduler'), coredns: join(binDir, 'coredns') };
}

/** Network: the bridge (its gateway address is the node's address), the Service IP, and the relay behind it. */
async function createPodNetwork(n: NodeCtx): Promise<void> {
  const knownNetns = new Set(await netnsNames());
  await cleanupNetwork(knownNetns); // leftovers of a run that was killed
  await shareNetnsDir(n.td);
  await sh('ip', ['link', 'add', BRIDGE, 'type', 'bridge'], 'creating the pod bridge');
  n.td.push('remove the pod bridge and network namespaces', () => cleanupNetwork(knownNetns));
  await sh('ip', ['link', 'set', BRIDGE, 'address', BRIDGE_MAC], 'giving the pod bridge a MAC address of its own');
  await sh('ip', ['addr', 'add', `${BRIDGE_IP}/24`, 'dev', BRIDGE], 'addressing the pod bridge');
  await sh('ip', ['addr', 'add', `${KUBERNETES_SERVICE_IP}/32`, 'dev', BRIDGE], 'adding the kubernetes Service IP');
  await sh('ip', ['link', 'set', BRIDGE, 'up'], 'bringing the pod bridge up');
  const apiRelay = await relay(KUBERNETES_SERVICE_IP, 443, Number(new URL(n.kube.server).port));
  n.td.push('close the API server relay', () => { apiRelay.close(); });
}

/**
 * Cluster DNS, as kubeadm's Corefile has it less forward, prometheus, loop and reload; its informers
 * sync while the images are built, and it is waited for later (ready()). The admin kubeconfig: it lists and
 * watches Services, EndpointSlices and Namespaces.
 */
async function startCoreDns(n: NodeCtx, coredns: string): Promise<{ ready(): Promise<void> }> {
  const [dnsHealthPort, dnsReadyPort] = [await freePort(), await freePort()];
  writeFileSync(join(n.dir, 'Corefile'), [
    '.:53 {',
    `  bind ${CLUSTER_DNS_IP}`,
    '  errors',
    `  health 127.0.0.1:${dnsHealthPort}`,
    `  ready 127.0.0.1:${dnsReadyPort}`,
    `  kubernetes ${CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {`,
    `    kubeconfig ${n.kube.kubeconfig}`,
    '    fallthrough in-addr.arpa ip6.arpa',
    `    ttl ${CLUSTER_DNS_TTL_SECONDS}`,
    '  }',
    `  cache ${CLUSTER_DNS_TTL_SECONDS}`,
    '}',
    '',
  ].join('\n'));
  const proc = startOwnedProc(n.td, n.procs, 'coredns', coredns, ['-conf', join(n.dir, 'Corefile')], { logFile: join(n.dir, 'coredns.log'), deathSignal: 'TERM', cwd: n.dir });
  // Ready once the kubernetes plugin has synced its informers.
  return {
    ready: () => waitReady(proc, `ready (${CLUSTER_DNS_IP}:53, /ready)`, async () => (await fetch(`http://127.0.0.1:${dnsReadyPort}/ready`).catch(() => undefined))?.status === 200, 60_000),
  };
}

/** containerd with a config, root, state and socket of its own; waited for until ctr reaches it. */
async function startContainerd(n: NodeCtx): Promise<Proc> {
  const { dir } = n;
  const cni = cniDir()!;
  mkdirSync(join(dir, 'cni', 'net.d'), { recursive: true });
  writeFileSync(join(dir, 'cni', 'net.d', '10-pgco.conflist'), JSON.stringify({
    cniVersion: '1.0.0', name: 'pgco',
    plugins: [
      { type: 'bridge', bridge: BRIDGE, isGateway: true, ipMasq: false, hairpinMode: true,
        ipam: { type: 'host-local', ranges: [[{ subnet: POD_CIDR, gateway: BRIDGE_IP, rangeEnd: POD_RANGE_END }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: join(dir, 'cni', 'ipam') } },
    ],
  }, null, 2));
  writeFileSync(join(dir, 'containerd.toml'), [
    'version = 2',
    `root = "${join(dir, 'containerd', 'root')}"`,
    `state = "${join(dir, 'containerd', 'state')}"`,
    `[grpc]\n  address = "${n.sock}"`,
    '[plugins."io.containerd.grpc.v1.cri"]',
    `  sandbox_image = "${PAUSE_IMAGE}"`,
    // Without it the sandbox's oom_score_adj needs CAP_SYS_RESOURCE, which this kind of machine lacks.
    '  restrict_oom_score_adj = true',
    '  [plugins."io.containerd.grpc.v1.cri".containerd]',
    '    snapshotter = "overlayfs"',
    '    default_runtime_name = "runc"',
    '    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
    '      runtime_type = "io.containerd.runc.v2"',
    '      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
    '        SystemdCgroup = false',
    '  [plugins."io.containerd.grpc.v1.cri".cni]',
    `    bin_dir = "${cni}"`,
    `    conf_dir = "${join(dir, 'cni', 'net.d')}"`,
    '',
  ].join('\n'));
  // Once containerd has stopped: its shims (they outlive it by design), mounts (pod volumes, overlay
  // snapshots, sandbox shm).
  n.td.push('kill the shims, unmount what is mounted under the node dir', () => removeContainerdLeftovers(dir));
  const containerd = startOwnedProc(n.td, n.procs, 'containerd', 'containerd', ['--config', join(dir, 'containerd.toml')], { logFile: join(dir, 'containerd.log'), deathSignal: 'TERM' });
  // Before containerd stops: whatever still runs in it, container processes (their shims go after it).
  n.td.push('kill what still runs in containerd', async () => {
    const tasks = await n.ctr(['tasks', 'ls']);
    for (const line of tasks.stdout.split('\n').slice(1)) {
      const pid = Number(line.trim().split(/\s+/)[1]);
      if (pid > 0) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
  });
  await waitReady(containerd, 'serving (ctr version)', async () => (await n.ctr(['version'])).code === 0, 60_000);
  return containerd;
}

/**
 * The pause, busybox and BEAM app images, built (or found cached) and put into the node's containerd; the
 * examples' images only built (cold: a stand-in of debian:bookworm-slim and an apt-get install of Elixir), for
 * the examples e2e, which loads them itself.
 */
async function buildNodeImages(loadImage: (ref: string) => Promise<void>): Promise<void> {
  await buildPauseImage(cacheDir());
  await buildBusyboxImage(cacheDir());
  await buildBeamAppImage();
  await buildExampleImages();
  await loadImage(PAUSE_IMAGE);
  await loadImage(BUSYBOX_IMAGE);
  await loadImage(BEAM_APP_IMAGE);
}

/** kubelet: cgroupfs without QoS cgroups (cgroup v1 hybrid host), no iptables, its own root dir. Not waited for. */
async function startKubelet(n: NodeCtx, kubelet: string, endpoint: string): Promise<Proc> {
  const { dir, kube } = n;
  const kdir = join(dir, 'kubelet');
  mkdirSync(kdir, { recursive: true });
  const [kubeletPort, healthzPort] = [await freePort(), await freePort()];
  writeFileSync(join(kdir, 'kubeconfig'), kubeconfigYaml(kube.server, readFileSync(kube.caFile, 'utf8'), NODE_USER, kube.tokens[NODE_USER]!), { mode: 0o600 });
  writeFileSync(join(kdir, 'config.yaml'), JSON.stringify({
    apiVersion: 'kubelet.config.k8s.io/v1beta1', kind: 'KubeletConfiguration',
    address: BRIDGE_IP, port: kubeletPort, readOnlyPort: 0, healthzBindAddress: '127.0.0.1', healthzPort,
    cgroupDriver: 'cgroupfs', cgroupsPerQOS: false, enforceNodeAllocatable: [], failSwapOn: false,
    // In-place resize (beta, on by default in 1.34) dereferences the pod's cgroup config, which does not exist
    // without QoS cgroups: the kubelet panicked in doPodResizeAction (kuberuntime_manager.go:839) while the
    // pods of a deleted namespace were torn down ("Missing actuated resource record"), and every later pod
    // on the node stayed Pending. No test resizes a pod.
    featureGates: { InPlacePodVerticalScaling: false },
    containerRuntimeEndpoint: endpoint, makeIPTablesUtilChains: false, protectKernelDefaults: false,
    // Anonymous and AlwaysAllow: the kubelet listens on the bridge of this machine only.
    authentication: { anonymous: { enabled: true }, webhook: { enabled: false } },
    authorization: { mode: 'AlwaysAllow' },
    evictionHard: { 'memory.available': '1Mi', 'nodefs.available': '1%', 'imagefs.available': '1%', 'nodefs.inodesFree': '1%' },
    imageGCHighThresholdPercent: 100, imageGCLowThresholdPercent: 99,
    registerWithTaints: [REAL_NODE_TAINT],
    resolvConf: '', volumePluginDir: join(kdir, 'volume-plugins'),
    // Pods' resolv.conf: `nameserver CLUSTER_DNS_IP`, `search <ns>.svc.cluster.local svc.cluster.local cluster.local`.
    clusterDNS: [CLUSTER_DNS_IP], clusterDomain: CLUSTER_DOMAIN,
    // Default refresh behaviour of users' clusters (syncFrequency 1m, configMapAndSecretChangeDetectionStrategy Watch).
  }, null, 2));
  const kl = startOwnedProc(n.td, n.procs, 'kubelet', kubelet, [
    `--config=${join(kdir, 'config.yaml')}`, `--kubeconfig=${join(kdir, 'kubeconfig')}`,
    `--root-dir=${join(kdir, 'root')}`, `--cert-dir=${join(kdir, 'pki')}`,
    `--hostname-override=${REAL_NODE}`, `--node-ip=${BRIDGE_IP}`, '--v=1',
  ], { logFile: join(dir, 'kubelet.log'), deathSignal: 'TERM' });
  // Before the kubelet stops: pods first, through the kubelet, so CNI and volume teardown run as they do on a
  // real node.
  n.td.push('delete the pods through the kubelet', async () => {
    if (kl.child.exitCode !== null) return;
    const r = await kube.api(`/api/v1/pods?fieldSelector=spec.nodeName%3D${REAL_NODE}`).catch(() => undefined);
    const pods = r?.status === 200 ? (JSON.parse(r.body) as { items: { metadata: { namespace: string; name: string } }[] }).items : [];
    await Promise.all(pods.map((p) => kube.api(`/api/v1/namespaces/${p.metadata.namespace}/pods/${p.metadata.name}?gracePeriodSeconds=0`, 'DELETE').catch(() => undefined)));
    for (let i = 0; i < 100; i++) {
      const tasks = await n.ctr(['tasks', 'ls', '-q']);
      if (tasks.code !== 0 || tasks.stdout.trim() === '') break;
      await new Promise((r2) => setTimeout(r2, 200));
    }
  });
  return kl;
}

/** kube-scheduler; ready(): its /healthz answers. */
async function startScheduler(n: NodeCtx, scheduler: string): Promise<{ ready(): Promise<void> }> {
  const { dir, kube } = n;
  const schedConfig = join(dir, 'scheduler.kubeconfig');
  writeFileSync(schedConfig, kubeconfigYaml(kube.server, readFileSync(kube.caFile, 'utf8'), SCHEDULER_USER, kube.tokens[SCHEDULER_USER]!), { mode: 0o600 });
  const schedPort = await freePort();
  const sched = startOwnedProc(n.td, n.procs, 'kube-scheduler', scheduler, [
    `--kubeconfig=${schedConfig}`, `--authentication-kubeconfig=${schedConfig}`, `--authorization-kubeconfig=${schedConfig}`,
    '--leader-elect=false', '--bind-address=127.0.0.1', `--secure-port=${schedPort}`, `--cert-dir=${join(dir, 'scheduler-certs')}`,
  ], { logFile: join(dir, 'kube-scheduler.log'), deathSignal: 'TERM' });
  return {
    ready: () => waitReady(sched, 'healthy (/healthz)', async () => {
      const crt = join(dir, 'scheduler-certs', 'kube-scheduler.crt');
      return existsSync(crt) && (await kubeRequest(`https://127.0.0.1:${schedPort}/healthz`, { ca: readFileSync(crt, 'utf8') })).status === 200;
    }, 60_000),
  };
}

export interface TestHost {
  /** Its address on the pods' bridge. */
  ip: string;
  netns: string;
  /** argv prefix that runs a command inside it: [ip, netns, exec, <name>]. */
  exec: string[];
  /** Kills everything running inside it (by PID) and removes it. */
  remove(): Promise<void>;
}

/**
 * A host outside Kubernetes on the pods' bridge: a network namespace of its own with one veth leg on pgco0
 * and an address from TEST_HOST_IPS. Its processes (e.g. a BEAM node with its own epmd) see pods directly, and
 * pods see it; nothing else on the machine is touched.
 */
export async function createTestHost(ip: string): Promise<TestHost> {
  if (!TEST_HOST_IPS.includes(ip)) throw new Error(`${ip} is not one of the test host addresses (${TEST_HOST_IPS[0]}–${TEST_HOST_IPS.at(-1)})`);
  const id = ip.split('.').pop()!;
  const netns = `pgco-host-${id}`;
  const leg = `pgcoh${id}`;
  const remove = async () => {
    const pids = (await runCommand('ip', ['netns', 'pids', netns])).stdout.split('\n').map(Number).filter((p) => p > 0);
    for (const pid of pids) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    await runCommand('ip', ['netns', 'delete', netns]);
    await runCommand('ip', ['link', 'del', leg]);
  };
  await remove(); // leftovers of a run that was killed
  try {
    await sh('ip', ['netns', 'add', netns], 'creating the test host');
    await sh('ip', ['link', 'add', leg, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns], 'creating its veth pair');
    await sh('ip', ['link', 'set', leg, 'master', BRIDGE, 'up'], 'attaching it to the pod bridge');
    await sh('ip', ['-n', netns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0'], 'addressing it');
    await sh('ip', ['-n', netns, 'link', 'set', 'eth0', 'up'], 'bringing it up');
    await sh('ip', ['-n', netns, 'link', 'set', 'lo', 'up'], 'bringing its loopback up');
  } catch (e) {
    await remove();
    throw e;
  }
  return { ip, netns, exec: ['ip', 'netns', 'exec', netns], remove };
}

/** Copies an image from podman/buildah storage into the node's containerd (namespace k8s.io, as the CRI uses). */
export async function importImage(containerdEndpoint: string, ref: string): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'pgco-image-'));
  try {
    const tar = join(tmp, 'image.tar');
    await saveImage(ref, tar);
    await importImageArchive(containerdEndpoint, tar, ref);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Imports an image archive (docker-archive, or an OCI archive such as `npm run release` writes) into the node's containerd under the name it records. */
export async function importImageArchive(containerdEndpoint: string, tar: string, what = tar): Promise<void> {
  const r = await runCommand('ctr', ['-a', containerdEndpoint.replace(/^unix:\/\//, ''), '-n', 'k8s.io', 'images', 'import', tar]);
  if (r.code !== 0) throw new Error(`importing ${what} into the node's containerd failed: ${(r.stderr || r.stdout).trim()}`);
}

/**
 * For a stack whose process was killed before it could stop the node (`npm run stack -- down` after a crash).
 * Which pod network namespaces and cgroups were its own is no longer known: those of containerd's CRI
 * (cni-*, k8s.io) that nothing runs in any more go; one with a process in it belongs to someone else.
 */
export async function cleanupRealNodeLeftovers(stackDir: string): Promise<void> {
  const dir = resolve(stackDir, 'node');
  if (!existsSync(dir)) return;
  await removeLeftovers(dir, new Set(await netnsNames())); // its processes first: then its namespaces are empty
  for (const ns of await netnsNames()) {
    if (ns.startsWith('cni-') && (await runCommand('ip', ['netns', 'pids', ns])).stdout.trim() === '') await runCommand('ip', ['netns', 'delete', ns]);
  }
  for (const c of readdirSync('/sys/fs/cgroup')) removeCgroupTree(join('/sys/fs/cgroup', c, 'k8s.io'));
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch { return []; }
}

/** rmdir a cgroup directory tree, leaves first (cgroupfs allows only rmdir, of empty groups). */
function removeCgroupTree(d: string): void {
  if (!existsSync(d)) return;
  for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) removeCgroupTree(join(d, e.name));
  try { rmdirSync(d); } catch { /* a process is still in it: leave it */ }
}

/** containerd-shim processes serving our containerd (they outlive it by design). */
async function shimPids(sock: string): Promise<number[]> {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if (cmd[0]?.includes('containerd-shim') && cmd.includes(sock)) pids.push(Number(d));
    } catch { /* exited */ }
  }
  return pids;
}
