// The app pods the real-node tests and the realnode benchmark run: the pieces they share, so that a test and
// the benchmark measure the same thing. Mount points: /etc/pgcluster/annotation/peers (the downward-API file
// of the pod's peers annotation) and /etc/pgcluster/peers/peers (the ConfigMap), as the README's examples.
import { readFileSync } from 'node:fs';
import { BEAM_APP_IMAGE, BUSYBOX_IMAGE, REAL_NODE_TAINT } from './realnode.ts';

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
 * A busybox container that polls both peers files every `pollSeconds` and logs
 * "<uptime s> annotation|configmap <names, comma-separated>" when one changes (busybox's date has no
 * sub-second format; /proc/uptime is the machine's, which pods share: parseFileWatcherLine maps it to wall time).
 */
export function fileWatcherContainer(name: string, configMap: string, pollSeconds: number) {
  return {
    name, image: BUSYBOX_IMAGE, imagePullPolicy: 'Never',
    command: ['sh', '-c', [
      'la=x; lc=x',
      'while true; do',
      `  a=$(cat ${ANNOTATION_FILE} 2>/dev/null)`,
      `  c=$(cat ${CONFIGMAP_FILE} 2>/dev/null | tr "\\n" "," | sed "s/,$//")`,
      '  t=$(cut -d" " -f1 /proc/uptime)',
      '  [ "$a" != "$la" ] && echo "$t annotation $a" && la=$a',
      '  [ "$c" != "$lc" ] && echo "$t configmap $c" && lc=$c',
      `  sleep ${pollSeconds}`,
      'done',
    ].join('\n')],
    volumeMounts: peersVolumes(configMap).mounts,
    resources: { requests: { cpu: '5m', memory: '8Mi' }, limits: { memory: '32Mi' } },
  };
}

let uptimeOffsetMs: number | undefined;

/** The line fileWatcherContainer logs, parsed: when (wall-clock ms), which file, the names. */
export function parseFileWatcherLine(line: string): { at: number; file: 'annotation' | 'configmap'; names: string[] } | undefined {
  const m = /^(\d+\.\d+) (annotation|configmap) ?(.*)$/.exec(line.trim());
  if (!m) return undefined;
  uptimeOffsetMs ??= Date.now() - Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 1000;
  return { at: Number(m[1]) * 1000 + uptimeOffsetMs, file: m[2] as 'annotation' | 'configmap', names: m[3]!.split(',').filter(Boolean) };
}

/** A line of examples/elixir-app's output: "<unix ms> <event> <arg>" (seen, gone, connected, nodes, warning ...). */
export function parseAppLine(line: string): { at: number; event: string; arg: string } | undefined {
  const m = /^(\d{13}) (\w+) ?(.*)$/.exec(line.trim());
  return m ? { at: Number(m[1]), event: m[2]!, arg: m[3]! } : undefined;
}

/**
 * The example Elixir app (examples/elixir-app) as a container: its node name <basename>@<pod IP>, the cookie
 * from a Secret, Ready once its VM is registered with epmd (so the operator announces only names that answer),
 * reading both peers files.
 */
export function beamAppContainer(o: { basename: string; cookieSecret: string; configMap: string; env?: { name: string; value: string }[] }) {
  return {
    name: 'app', image: BEAM_APP_IMAGE, imagePullPolicy: 'Never',
    env: [
      { name: 'NODE_BASENAME', value: o.basename },
      { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
      { name: 'RELEASE_COOKIE', valueFrom: { secretKeyRef: { name: o.cookieSecret, key: 'cookie' } } },
      // One scheduler thread: many VMs share two cores with the control plane.
      { name: 'ELIXIR_ERL_OPTIONS', value: '+fnu +S 1 +sbwt none' },
      ...(o.env ?? []),
    ],
    readinessProbe: { exec: { command: ['sh', '-c', `epmd -names | grep -q "^name ${o.basename} "`] }, periodSeconds: 1, failureThreshold: 1 },
    volumeMounts: peersVolumes(o.configMap).mounts,
    resources: { requests: { cpu: '20m', memory: '64Mi' }, limits: { memory: '256Mi' } },
  };
}

/** Pod spec fields every app pod on the real node has: the toleration for its taint, a short grace period. */
export const onRealNode = { tolerations: [{ ...REAL_NODE_TAINT, operator: 'Equal' }], terminationGracePeriodSeconds: 2 };
