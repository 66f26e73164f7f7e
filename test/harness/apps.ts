// The app pods the real-node tests and the realnode benchmark run: the pieces they share, so that a test and
// the benchmark measure the same thing. Mount points: /etc/pgcluster/annotation/peers (the downward-API file
// of the pod's peers annotation) and /etc/pgcluster/peers/peers (the ConfigMap), as the README's examples.
import { readFileSync } from 'node:fs';
import { BEAM_APP_IMAGE, BUSYBOX_IMAGE, REAL_NODE_TAINT } from './realnode.ts';
import { READINESS_GATE } from '../../src/core/spec.ts';

export const ANNOTATION_FILE = '/etc/pgcluster/annotation/peers';
export const CONFIGMAP_FILE = '/etc/pgcluster/peers/peers';

/** The two volumes (the ConfigMap optional: it appears after the first pods start) and their mounts. */
export function peersVolumes(configMap: string, annotation = 'pgcluster.io/peers') {
  return {
    volumes: [
      { name: 'peers-annotation', downwardAPI: { items: [{ path: 'peers', fieldRef: { fieldPath: `metadata.annotations['${annotation}']` } }] } },
      { name: 'peers-configmap', configMap: { name: configMap, optional: true } },
    ],
    mounts: [
      { name: 'peers-annotation', mountPath: '/etc/pgcluster/annotation', readOnly: true },
      { name: 'peers-configmap', mountPath: '/etc/pgcluster/peers', readOnly: true },
    ],
  };
}

/**
 * A busybox container that runs `probe` (shell lines that set variables and log changes with "$t", the machine's
 * uptime: busybox's date has no sub-second format, and pods share /proc/uptime) every `pollSeconds`.
 * The probes use the shell's builtins only (read, [, case) and wait with `read -t` on a FIFO instead of
 * `sleep`: a dozen pods polling every 50 ms with `$(cat ...)`, tr, sed and cut forked ~2,000 processes a
 * second, which loaded the 2-core machine (load average 60) and slowed the kubelet whose syncs they measure.
 */
function watcherContainer(name: string, init: string, probe: string[], pollSeconds: number) {
  return {
    name, image: BUSYBOX_IMAGE, imagePullPolicy: 'Never',
    command: ['sh', '-c', [
      init,
      '[ -p /tick ] || mkfifo /tick; exec 3<> /tick',
      'while true; do', ...probe.map((l) => `  ${l}`), `  read -t ${pollSeconds} _ <&3`, 'done',
    ].join('\n')],
    resources: { requests: { cpu: '5m', memory: '8Mi' }, limits: { memory: '32Mi' } },
  };
}

/**
 * A busybox container that polls both peers files every `pollSeconds` and logs
 * "<uptime s> annotation|configmap <names, comma-separated>" when one changes (parseFileWatcherLine maps the
 * uptime to wall time).
 */
export function fileWatcherContainer(name: string, configMap: string, pollSeconds: number) {
  return {
    ...watcherContainer(name, 'la=x; lc=x', [
      `a=; [ -r ${ANNOTATION_FILE} ] && IFS= read -r a < ${ANNOTATION_FILE}`,
      `c=; [ -r ${CONFIGMAP_FILE} ] && while IFS= read -r l || [ -n "$l" ]; do c="\${c:+$c,}$l"; done < ${CONFIGMAP_FILE}`,
      'read -r t _ < /proc/uptime',
      '[ "$a" != "$la" ] && echo "$t annotation $a" && la=$a',
      '[ "$c" != "$lc" ] && echo "$t configmap $c" && lc=$c',
    ], pollSeconds),
    volumeMounts: peersVolumes(configMap).mounts,
  };
}

/**
 * A busybox container that asks the cluster DNS for `query`'s A records every `pollSeconds` (busybox
 * nslookup, which sends to the nameserver of the pod's resolv.conf, the way an app's resolver does: no cache
 * in the pod) and logs "<uptime s> dns <addresses, comma-separated>" when the set of addresses changes (in the
 * order of the answer, which CoreDNS shuffles); an answer without addresses (NXDOMAIN, none yet) logs an
 * empty list. Like Phoenix's dns_cluster or libcluster's DNSPoll, which poll the same name. `query` should end
 * with a dot: no search-list expansion. One process per poll: nslookup.
 */
export function dnsWatcherContainer(name: string, query: string, pollSeconds: number) {
  return watcherContainer(name, 'last=x', [
    `nslookup -type=a ${query} > /answer 2>/dev/null`,
    // The addresses after the first "Name:" line (those before it are the server's own).
    'a=; n=; while read -r k v _; do case "$k" in Name:) n=1;; Address*) [ -n "$n" ] && a="${a:+$a,}$v";; esac; done < /answer',
    'read -r t _ < /proc/uptime',
    // Changed: a different count, or an address not in the last set.
    'same=1; na=0; nl=0; IFS=,',
    'for x in $a; do na=$((na+1)); case ",$last," in *",$x,"*) ;; *) same=;; esac; done',
    'for x in $last; do nl=$((nl+1)); done',
    'unset IFS; [ "$na" = "$nl" ] || same=',
    '[ -z "$same" ] && echo "$t dns $a" && last=$a',
  ], pollSeconds);
}

let uptimeOffsetMs: number | undefined;

/** A line "<uptime s> <what> <comma-separated list>" of the watchers above: when (wall-clock ms), what, the list. */
function parseWatcherLine<W extends string>(line: string, what: readonly W[]): { at: number; what: W; items: string[] } | undefined {
  const m = /^(\d+\.\d+) (\w+) ?(.*)$/.exec(line.trim());
  if (!m || !(what as readonly string[]).includes(m[2]!)) return undefined;
  uptimeOffsetMs ??= Date.now() - Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 1000;
  return { at: Number(m[1]) * 1000 + uptimeOffsetMs, what: m[2] as W, items: m[3]!.split(',').filter(Boolean) };
}

/** The line fileWatcherContainer logs, parsed: when (wall-clock ms), which file, the names. */
export function parseFileWatcherLine(line: string): { at: number; file: 'annotation' | 'configmap'; names: string[] } | undefined {
  const p = parseWatcherLine(line, ['annotation', 'configmap'] as const);
  return p && { at: p.at, file: p.what, names: p.items };
}

/** The line dnsWatcherContainer logs, parsed: when (wall-clock ms), the addresses the DNS answered, sorted. */
export function parseDnsWatcherLine(line: string): { at: number; addresses: string[] } | undefined {
  const p = parseWatcherLine(line, ['dns'] as const);
  return p && { at: p.at, addresses: p.items.sort() };
}

/** A line of examples/mounted-files's output: "<unix ms> <event> <arg>" (seen, gone, connected, nodes, warning ...). */
export function parseAppLine(line: string): { at: number; event: string; arg: string } | undefined {
  const m = /^(\d{13}) (\w+) ?(.*)$/.exec(line.trim());
  return m ? { at: Number(m[1]), event: m[2]!, arg: m[3]! } : undefined;
}

/** The distribution port the test pods' VMs listen on (pinned, so that a tcpSocket probe can check it). */
export const BEAM_DIST_PORT = 9100;

/**
 * The example Elixir app (examples/mounted-files) as a container: its node name <basename>@<pod IP>, the cookie
 * from a Secret, Ready once its VM listens for distribution (so the operator announces only names that answer),
 * reading both peers files. The examples probe with an exec of `epmd -names`; here a tcpSocket probe on the
 * pinned distribution port says the same without a process: the kubelet dials it, where an exec probe costs a
 * runc exec per pod per second (12 pods held ~1 of the 2 cores in npm run bench -- realnode).
 */
export function beamAppContainer(o: { basename: string; cookieSecret: string; configMap: string; env?: { name: string; value: string }[]; preStopSeconds?: number }) {
  return {
    // Leaving first (docs/readiness-gate.md, "Rollouts paced by discovery"): the operator unpublishes a pod as soon as it is
    // being deleted; a preStop sleep holds SIGTERM back until the peers' files have dropped it.
    ...(o.preStopSeconds ? { lifecycle: { preStop: { sleep: { seconds: o.preStopSeconds } } } } : {}),
    name: 'app', image: BEAM_APP_IMAGE, imagePullPolicy: 'Never',
    env: [
      { name: 'NODE_BASENAME', value: o.basename },
      { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
      { name: 'RELEASE_COOKIE', valueFrom: { secretKeyRef: { name: o.cookieSecret, key: 'cookie' } } },
      // One scheduler thread: many VMs share two cores with the control plane.
      { name: 'ELIXIR_ERL_OPTIONS', value: `+fnu +S 1 +sbwt none -kernel inet_dist_listen_min ${BEAM_DIST_PORT} inet_dist_listen_max ${BEAM_DIST_PORT}` },
      ...(o.env ?? []),
    ],
    readinessProbe: { tcpSocket: { port: BEAM_DIST_PORT }, periodSeconds: 1, failureThreshold: 1 },
    volumeMounts: peersVolumes(o.configMap).mounts,
    resources: { requests: { cpu: '20m', memory: '64Mi' }, limits: { memory: '256Mi' } },
  };
}

/** The pod spec field that makes a pod wait for the operator's readiness gate (docs/readiness-gate.md, "Rollouts paced by discovery"). */
export const withReadinessGate = { readinessGates: [{ conditionType: READINESS_GATE }] };

const realNodeToleration = { ...REAL_NODE_TAINT, operator: 'Equal' };

/** Pod spec fields every app pod on the real node has: the toleration for its taint, a short grace period. */
export const onRealNode = { tolerations: [realNodeToleration], terminationGracePeriodSeconds: 2 };

/**
 * Annotations of a namespace whose pods all get the toleration for the real node's taint, for manifests applied
 * as they are (the examples): the API server's PodTolerationRestriction admission plugin merges a namespace's
 * defaultTolerations into every pod created in it (test/harness/kube.ts).
 */
export const realNodeNamespace = { 'scheduler.alpha.kubernetes.io/defaultTolerations': JSON.stringify([realNodeToleration]) };

/**
 * A Deployment of the example app (beamAppContainer) rolled one pod at a time without losing one (maxSurge 1,
 * maxUnavailable 0), its pods leaving first (a preStop sleep of `preStopSeconds`), with the readiness gate when
 * `gated`, plus `sidecars`. The readiness-gate e2e and the gate benchmark roll the same.
 */
export function beamDeployment(o: { name: string; replicas: number; basename: string; cookieSecret: string; configMap: string; gated: boolean; preStopSeconds: number; sidecars?: object[] }) {
  const labels = { app: o.basename };
  return {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: o.name },
    spec: {
      replicas: o.replicas,
      selector: { matchLabels: labels },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      template: {
        metadata: { labels },
        spec: {
          ...onRealNode,
          ...(o.gated ? withReadinessGate : {}),
          // The preStop sleep, then the app's own stop, within the grace period.
          terminationGracePeriodSeconds: o.preStopSeconds + 7,
          containers: [beamAppContainer({ basename: o.basename, cookieSecret: o.cookieSecret, configMap: o.configMap, preStopSeconds: o.preStopSeconds }), ...(o.sidecars ?? [])],
          volumes: peersVolumes(o.configMap).volumes,
        },
      },
    },
  };
}
