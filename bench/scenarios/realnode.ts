// 7. Real BEAM pods on the real node (a kubelet on containerd): what an app sees, not only the API object.
// N pods of examples/mounted-files (Debian's Elixir) in one PgCluster, each with a busybox sidecar that logs when
// its mounted annotation file and ConfigMap file change. Pods join and leave one at a time; per event:
//   api      pod Ready (or deleted) -> every other member's annotation in the API shows it
//   file     -> every other member's mounted annotation file, and separately its mounted ConfigMap file
//   cluster  -> every other member's Node.list() contains it (join) / no longer lists it (leave)
//   dns      -> every other member's resolver: the PgCluster's headless Service (output.service), asked of
//               the real node's CoreDNS every 100 ms by a second busybox sidecar, answers with its IP / without
// Beside it, anchors computed from the same events: libcluster's Kubernetes strategy and Phoenix's
// dns_cluster, both polling every 5 s (see anchors() for the model). Then a few joins with the annotation
// output off: the ConfigMap file alone, which waits for the kubelet's periodic resync.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type BenchCtx, operator, pick, type Scenario } from '../lib/context.ts';
import { cleanupNamespace } from '../lib/kube.ts';
import { beamNamespace } from '../lib/realnode.ts';
import type { OperatorProc } from '../lib/operator.ts';
import { atMost } from '../lib/report.ts';
import { channelName, say, summarize, until } from '../lib/util.ts';
import { CLUSTER_DOMAIN } from '../../test/harness/realnode.ts';
import { beamAppContainer, dnsWatcherContainer, fileWatcherContainer, onRealNode, parseAppLine, parseDnsWatcherLine, parseFileWatcherLine, peersVolumes } from '../../test/harness/apps.ts';
import { isReady } from '../../test/harness/kube.ts';

const run = promisify(execFile);
const ANNOTATION = 'pgcluster.io/peers';
const POLL_MS = 5000; // libcluster Kubernetes strategy's polling_interval and dns_cluster's interval, defaults

interface PodJson {
  metadata: { name: string; annotations?: Record<string, string>; deletionTimestamp?: string };
  status: { podIP?: string; conditions?: { type: string; status: string }[] };
}
type Kind = 'annotation' | 'configmap' | 'cluster' | 'dns';
interface Line { at: number; kind: Kind; names: string[] }
interface EventTimes { kind: 'join' | 'leave'; api: number; annotation: number; configmap: number; cluster: number; dns: number }


function podSpec(name: string, basename: string, cm: string, dnsQuery: string) {
  return {
    apiVersion: 'v1', kind: 'Pod', metadata: { name, labels: { app: basename } },
    spec: {
      ...onRealNode,
      containers: [beamAppContainer({ basename, cookieSecret: 'cookie', configMap: cm }), fileWatcherContainer('files', cm, 0.05), dnsWatcherContainer('dns', dnsQuery, 0.1)],
      volumes: peersVolumes(cm).volumes,
    },
  };
}

/** Both containers' change lines of every app pod, by pod, as wall-clock ms (one `kubectl logs` for all). */
async function allLines(ctx: BenchCtx, ns: string, basename: string): Promise<Map<string, Line[]>> {
  const { stdout } = await run(join(ctx.stack.binDir, 'kubectl'), ['-n', ns, 'logs', '-l', `app=${basename}`, '--all-containers', '--prefix',
    '--max-log-requests=100', '--ignore-errors', '--tail=-1'], { env: { ...process.env, KUBECONFIG: ctx.stack.kubeconfig }, maxBuffer: 64 << 20 });
  const out = new Map<string, Line[]>();
  for (const raw of stdout.split('\n')) {
    const pre = /^\[pod\/([^/]+)\/(\w+)\] (.*)$/.exec(raw.trim());
    if (!pre) continue;
    const [, pod, container, l] = pre as unknown as [string, string, string, string];
    const lines = out.get(pod) ?? [];
    out.set(pod, lines);
    const f = container === 'files' ? parseFileWatcherLine(l) : undefined;
    if (f) lines.push({ at: f.at, kind: f.file, names: f.names });
    const a = container === 'app' ? parseAppLine(l) : undefined;
    if (a?.event === 'nodes') lines.push({ at: a.at, kind: 'cluster', names: a.arg.split(',').filter(Boolean) });
    // Addresses as the names dns_cluster would dial: <its own basename>@<IP>.
    const d = container === 'dns' ? parseDnsWatcherLine(l) : undefined;
    if (d) lines.push({ at: d.at, kind: 'dns', names: d.addresses.map((ip) => `${basename}@${ip}`) });
  }
  return out;
}

/** Seeded uniform [0,1) (mulberry32): the anchors' poll phases are the same in every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Anchors for a join with `members` other pods, from this event's own connect time (cluster - annotation file):
 * - libcluster Kubernetes strategy: each member lists the API every 5 s at its own phase, then connects:
 *   max over members of U(0,5 s), plus the connect time;
 * - dns_cluster: each member resolves DNS every 5 s; the record reaches it through the DNS cache (CoreDNS's
 *   kubernetes plugin answers with TTL 5 s), so each member waits U(0,5 s) for its cache and U(0,5 s) for
 *   its poll; the EndpointSlice update before that is left out (it favours the anchor).
 */
function anchors(e: EventTimes, members: number, rand: () => number): { libcluster: number; dns: number } {
  const connect = Math.max(0, e.cluster - e.annotation);
  let lib = 0;
  let dns = 0;
  for (let i = 0; i < members; i++) {
    lib = Math.max(lib, rand() * POLL_MS);
    dns = Math.max(dns, rand() * POLL_MS + rand() * POLL_MS);
  }
  return { libcluster: lib + connect, dns: dns + connect };
}

export const realnode: Scenario = {
  name: 'realnode',
  title: 'real BEAM pods on a real kubelet: API, mounted files, Node.list()',
  needsRealNode: true,
  async run(ctx: BenchCtx) {
    const { kube } = ctx.stack;
    const size = pick(ctx.mode, { full: 12, quick: 10, smoke: 3 });
    const rounds = pick(ctx.mode, { full: 10, quick: 6, smoke: 1 });
    const offRounds = pick(ctx.mode, { full: 3, quick: 2, smoke: 1 });
    const versionRounds = pick(ctx.mode, { full: 10, quick: 6, smoke: 1 });
    const { ns, pg: pgSrv } = await beamNamespace(ctx, 'realnode');
    const basename = 'rn';
    const cm = 'rn-peers';
    const pcPath = `/apis/pgcluster.io/v1alpha1/namespaces/${ns}/pgclusters/rn`;
    let op: OperatorProc | undefined;
    let seq = 0;
    const live: string[] = [];
    const podsJson = async () => (await kube.get<{ items: PodJson[] }>(`/api/v1/namespaces/${ns}/pods?labelSelector=app%3D${basename}`)).items;
    try {
      await kube.create(`/apis/pgcluster.io/v1alpha1/namespaces/${ns}/pgclusters`, {
        apiVersion: 'pgcluster.io/v1alpha1', kind: 'PgCluster', metadata: { name: 'rn' },
        spec: { selector: { matchLabels: { app: basename } }, postgres: { urlSecretRef: { name: 'db' } }, channel: channelName(ns, 'rn'), output: { service: {} } },
      }, 'pgclusters');
      op = await operator(ctx, 'realnode', [ns]);

      const addPod = async () => {
        const name = `rn-${String(seq++).padStart(3, '0')}`;
        await kube.create(`/api/v1/namespaces/${ns}/pods`, podSpec(name, basename, cm, `rn-peers.${ns}.svc.${CLUSTER_DOMAIN}.`), 'pods');
        live.push(name);
        return name;
      };
      const nameOf = (pods: PodJson[], pod: string) => {
        const p = pods.find((x) => x.metadata.name === pod);
        return p?.status.podIP ? `${basename}@${p.status.podIP}` : undefined;
      };
      // Everyone (but `except`) shows exactly the live members, in the API, both files and Node.list().
      const settled = async (what: string) => {
        let wrong = '';
        // Up to 10 min: BEAM pods starting on a loaded machine, then the annotation file's kubelet sync (182 s
        // in all, once, at load average 36).
        await until(`realnode: ${what}: ${live.length} pods Ready and clustered`, async () => {
          const pods = (await podsJson()).filter((p) => !p.metadata.deletionTimestamp);
          if (pods.length !== live.length || !pods.every((p) => isReady(p) && p.status.podIP)) { wrong = `${pods.filter(isReady).length}/${live.length} Ready`; return false; }
          const names = pods.map((p) => `${basename}@${p.status.podIP}`).sort();
          const all = await allLines(ctx, ns, basename);
          for (const p of pods) {
            const lines = all.get(p.metadata.name) ?? [];
            const last = (k: Kind) => lines.filter((l) => l.kind === k).at(-1)?.names.slice().sort() ?? [];
            const others = names.filter((n) => n !== `${basename}@${p.status.podIP}`);
            if (JSON.stringify(last('annotation')) !== JSON.stringify(names)) { wrong = `${p.metadata.name}'s annotation file: ${last('annotation').join(',')}`; return false; }
            if (JSON.stringify(last('cluster')) !== JSON.stringify(others)) { wrong = `${p.metadata.name}'s Node.list(): ${last('cluster').join(',')} (want ${others.join(',')})`; return false; }
          }
          return true;
        }, 600_000, 500).catch((e: Error) => { throw new Error(`${e.message}; ${wrong}`); });
      };

      say(`realnode: starting ${size} BEAM pods`);
      for (let i = 0; i < size; i++) await addPod();
      await settled('start');

      const events: EventTimes[] = [];
      /** One join or leave: when each view (API, files, Node.list()) of every other member first showed it. */
      // Lines count from `since` (the pod's creation for a join: a joining node reads the peers the operator
      // already wrote on its pod and connects before it is Ready, so Node.list() may show it before t0).
      const measure = async (kind: 'join' | 'leave', pod: string, name: string, t0: number, since: number, others: string[], views: Kind[]): Promise<EventTimes> => {
        const has = (names: string[]) => names.includes(name) === (kind === 'join');
        const withApi = views.includes('annotation');
        // The API view on a poll of its own (50 ms), not held up by the log reads below.
        let api = NaN;
        let measuring = true;
        const apiPoll = (async () => {
          while (withApi && measuring && Number.isNaN(api)) {
            const pods = await podsJson();
            if (others.every((o) => has((pods.find((p) => p.metadata.name === o)?.metadata.annotations?.[ANNOTATION] ?? '').split(',')))) api = Date.now();
            else await new Promise((r) => setTimeout(r, 50));
          }
        })();
        // The annotation file can wait out the kubelet's periodic resync (60-90 s) even with the annotation on,
        // when the kubelet remounts from a stale copy of the pod (docs/outputs.md): room for that, on a busy machine.
        const result = await until(`realnode: ${kind} of ${pod} (${name}) seen by ${others.length} members`, async () => {
          const all = await allLines(ctx, ns, basename);
          const firsts: Record<Kind, number> = { annotation: NaN, configmap: NaN, cluster: NaN, dns: NaN };
          for (const o of others) {
            const lines = (all.get(o) ?? []).filter((l) => l.at >= since);
            for (const k of views) {
              const first = lines.find((l) => l.kind === k && has(l.names));
              if (!first) return false;
              firsts[k] = Number.isNaN(firsts[k]) ? first.at : Math.max(firsts[k], first.at);
            }
          }
          if (withApi && Number.isNaN(api)) return false;
          return firsts;
        }, withApi ? 200_000 : 400_000, withApi ? 200 : 2000).finally(() => { measuring = false; });
        await apiPoll;
        const after = (t: number) => Math.max(0, t - t0);
        return { kind, api: after(api), annotation: after(result.annotation), configmap: after(result.configmap), cluster: after(result.cluster), dns: after(result.dns) };
      };
      const readyAt = async (pod: string) => until(`realnode: ${pod} Ready`, async () => {
        const p = (await podsJson()).find((x) => x.metadata.name === pod);
        return p && isReady(p) && p.status.podIP ? { t: Date.now(), name: `${basename}@${p.status.podIP}` } : false;
      }, 120_000, 50);

      const ALL: Kind[] = ['annotation', 'configmap', 'cluster', 'dns'];
      /** The oldest pod leaves (measured when `leaveViews`), then a new one joins, measured from Ready. */
      const round = async (leaveViews: Kind[], joinViews: Kind[]) => {
        const victim = live.shift()!;
        const vName = nameOf(await podsJson(), victim)!;
        const tDel = Date.now();
        await kube.request('DELETE', `/api/v1/namespaces/${ns}/pods/${victim}`);
        const leave = leaveViews.length ? await measure('leave', victim, vName, tDel, tDel, [...live], leaveViews) : undefined;
        await until(`realnode: ${victim} gone`, async () => !(await podsJson()).some((p) => p.metadata.name === victim), 60_000, 200);
        const others = [...live];
        const created = Date.now();
        const pod = await addPod();
        const r = await readyAt(pod);
        const join = await measure('join', pod, r.name, r.t, created, others, joinViews);
        return { leave, join };
      };

      for (let i = 0; i < rounds; i++) {
        const { leave, join } = await round(ALL, ALL);
        events.push(leave!, join);
        say(`realnode: round ${i + 1}/${rounds}: join api ${join.api.toFixed(0)} / files ${join.annotation.toFixed(0)}, ${join.configmap.toFixed(0)} / cluster ${join.cluster.toFixed(0)} ms; dns ${join.dns.toFixed(0)} ms; leave cluster ${leave!.cluster.toFixed(0)} / dns ${leave!.dns.toFixed(0)} ms`);
        await settled(`round ${i + 1}`);
      }

      const rand = rng(20261129);
      const joins = events.filter((e) => e.kind === 'join');
      const leaves = events.filter((e) => e.kind === 'leave');
      const anchor = joins.map((e) => anchors(e, size - 1, rand));
      const rows = (kind: string, label: string, values: number[], target?: number) => {
        const s = summarize(values);
        ctx.report.add('realnode', `${kind}_p50_ms`, `${label}, p50`, s.p50, 'ms');
        ctx.report.add('realnode', `${kind}_p99_ms`, `${label}, p99`, s.p99, 'ms', target === undefined ? undefined : atMost(target, 'ms'));
        ctx.report.add('realnode', `${kind}_max_ms`, `${label}, max`, s.max, 'ms');
        return s;
      };
      const d: Record<string, unknown> = { pods: size, rounds, events };
      d.join_api = rows('join_api', `join: Ready -> every member's annotation (API), ${size} pods`, joins.map((e) => e.api));
      d.join_annotation = rows('join_file_annotation', 'join: -> every mounted annotation file', joins.map((e) => e.annotation), 1000);
      d.join_configmap = rows('join_file_configmap', 'join: -> every mounted ConfigMap file', joins.map((e) => e.configmap), 1000);
      d.join_cluster = rows('join_cluster', 'join: -> in every Node.list()', joins.map((e) => e.cluster), 2000);
      d.join_dns = rows('join_dns', 'join: -> in every member\'s DNS answer (CoreDNS, TTL 5 s)', joins.map((e) => e.dns));
      d.join_libcluster_k8s = rows('join_anchor_libcluster_k8s', 'join anchor: libcluster Kubernetes strategy (5 s API polling)', anchor.map((a) => a.libcluster));
      d.join_dns_cluster = rows('join_anchor_dns_cluster', 'join anchor: dns_cluster (5 s DNS polling, 5 s TTL)', anchor.map((a) => a.dns));
      d.leave_api = rows('leave_api', 'leave: deleted -> off every annotation (API)', leaves.map((e) => e.api));
      d.leave_annotation = rows('leave_file_annotation', 'leave: -> off every mounted annotation file', leaves.map((e) => e.annotation), 1000);
      d.leave_configmap = rows('leave_file_configmap', 'leave: -> off every mounted ConfigMap file', leaves.map((e) => e.configmap), 1000);
      d.leave_cluster = rows('leave_cluster', 'leave: -> gone from every Node.list()', leaves.map((e) => e.cluster), 2000);
      d.leave_dns = rows('leave_dns', 'leave: -> gone from every member\'s DNS answer', leaves.map((e) => e.dns));

      // podAnnotationFormat version (issue 24): the annotation carries only the version of the ConfigMap's list;
      // apps read the ConfigMap file, which the annotation write still makes the kubelet refresh. The
      // annotation file holds no names now, so the ConfigMap file and Node.list() are measured.
      say(`realnode: ${versionRounds} rounds with output.podAnnotationFormat version`);
      await kube.patch(pcPath, { spec: { output: { podAnnotationFormat: 'version' } } }, 'pgclusters');
      const versioned: EventTimes[] = [];
      for (let i = 0; i < versionRounds; i++) {
        const { leave, join } = await round(['configmap', 'cluster'], ['configmap', 'cluster']);
        versioned.push(leave!, join);
        say(`realnode: version, round ${i + 1}/${versionRounds}: join ConfigMap file ${join.configmap.toFixed(0)} / cluster ${join.cluster.toFixed(0)} ms; leave ${leave!.configmap.toFixed(0)} / ${leave!.cluster.toFixed(0)} ms`);
      }
      const vJoins = versioned.filter((e) => e.kind === 'join');
      const vLeaves = versioned.filter((e) => e.kind === 'leave');
      d.version_join_configmap = rows('version_join_file_configmap', 'podAnnotationFormat version, join: -> every mounted ConfigMap file', vJoins.map((e) => e.configmap), 1000);
      d.version_join_cluster = rows('version_join_cluster', 'podAnnotationFormat version, join: -> in every Node.list()', vJoins.map((e) => e.cluster), 2000);
      d.version_leave_configmap = rows('version_leave_file_configmap', 'podAnnotationFormat version, leave: -> off every mounted ConfigMap file', vLeaves.map((e) => e.configmap), 1000);
      d.version_leave_cluster = rows('version_leave_cluster', 'podAnnotationFormat version, leave: -> gone from every Node.list()', vLeaves.map((e) => e.cluster), 2000);
      d.version_events = versioned;

      // The ConfigMap file alone: annotation output off. The app reads the (now empty) annotation file, so
      // only the ConfigMap file is measured; leaves are not (each would wait a resync too).
      say(`realnode: ${offRounds} rounds with output.podAnnotation "" (the ConfigMap file waits for the kubelet's resync)`);
      await kube.patch(pcPath, { spec: { output: { podAnnotation: '' } } }, 'pgclusters');
      const off: EventTimes[] = [];
      for (let i = 0; i < offRounds; i++) {
        const { join } = await round([], ['configmap']);
        off.push(join);
        say(`realnode: annotation off, join ${i + 1}/${offRounds}: ConfigMap file ${join.configmap.toFixed(0)} ms`);
      }
      const offCm = summarize(off.map((e) => e.configmap));
      ctx.report.add('realnode', 'off_join_file_configmap_p50_ms', 'annotation off, join: -> every ConfigMap file, p50', offCm.p50, 'ms');
      ctx.report.add('realnode', 'off_join_file_configmap_max_ms', 'annotation off, join: -> every ConfigMap file, max', offCm.max, 'ms');
      d.off_join_configmap = offCm;
      d.off_events = off;
      ctx.report.detail('realnode', d);
    } finally {
      await op?.stop();
      await cleanupNamespace(kube, ns).catch(() => {});
      await pgSrv.destroy();
    }
  },
};
