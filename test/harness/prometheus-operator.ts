// What the Prometheus Operator makes of a ServiceMonitor or a PodMonitor, for a Prometheus server of our own:
// the scrape configuration its generator writes (pkg/prometheus/promcfg.go of prometheus-operator,
// generateServiceMonitorConfig and generatePodMonitorConfig, default settings: one shard, no scrape class, no
// enforced namespace label, honorLabels not overridden), and, in place of its kubernetes_sd_configs, a static
// target carrying the __meta_kubernetes_* labels that Kubernetes discovery (role endpoints, or pod) gives the
// operator's pod behind the chart's Service. The relabelling is the operator's, rule for rule, so the target
// ends up with the labels it would have in a cluster: namespace, service, pod, container, endpoint, job, instance.
// The stand-in exists because no kube-proxy, Endpoints or pod network run here: the operator is a process on
// loopback, and Endpoints refuse loopback addresses.
//
// Only the fields the chart uses (and a few neighbours) are translated; any other field throws, so that a chart
// change this file does not understand fails the test instead of being scraped as something else.

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;
export type RelabelRule = Record<string, unknown>;
export type ScrapeConfig = Record<string, unknown>;

/** promcfg.go's sanitizeLabelName, and Prometheus's strutil.SanitizeLabelName. */
const sanitize = (name: string): string => name.replace(/[^a-zA-Z0-9_]/g, '_');

const SM_SPEC = ['selector', 'namespaceSelector', 'endpoints', 'jobLabel', 'targetLabels', 'podTargetLabels'];
const PM_SPEC = ['selector', 'namespaceSelector', 'podMetricsEndpoints', 'jobLabel', 'podTargetLabels'];
const ENDPOINT = ['port', 'path', 'interval', 'scrapeTimeout', 'honorLabels', 'relabelings', 'metricRelabelings'];

function only(what: string, o: Obj | undefined, allowed: string[]): void {
  const extra = Object.keys(o ?? {}).filter((k) => !allowed.includes(k));
  if (extra.length) throw new Error(`${what}: ${extra.join(', ')} not translated by test/harness/prometheus-operator.ts; add it there as promcfg.go does`);
}

/** promcfg.go's generateRelabelConfig: a monitor's relabelings in Prometheus's spelling. */
function relabelConfigs(rc: Obj[] | undefined): RelabelRule[] {
  return (rc ?? []).map((c) => ({
    ...(c.sourceLabels?.length ? { source_labels: c.sourceLabels } : {}),
    ...(c.separator !== undefined ? { separator: c.separator } : {}),
    ...(c.targetLabel ? { target_label: c.targetLabel } : {}),
    ...(c.regex ? { regex: c.regex } : {}),
    ...(c.modulus ? { modulus: c.modulus } : {}),
    ...(c.replacement !== undefined ? { replacement: c.replacement } : {}),
    ...(c.action ? { action: String(c.action).toLowerCase() } : {}),
  }));
}

/** The label-selector rules (SelectorMechanism "Relabel", the default) for `kind` (service or pod) labels. */
function selectorRules(selector: Obj, kind: 'service' | 'pod'): RelabelRule[] {
  const meta = (k: string) => [`__meta_kubernetes_${kind}_label_${sanitize(k)}`, `__meta_kubernetes_${kind}_labelpresent_${sanitize(k)}`];
  const present = (k: string) => [`__meta_kubernetes_${kind}_labelpresent_${sanitize(k)}`];
  const rules: RelabelRule[] = Object.keys(selector.matchLabels ?? {}).sort()
    .map((k) => ({ action: 'keep', source_labels: meta(k), regex: `(${selector.matchLabels[k]});true` }));
  for (const e of (selector.matchExpressions ?? []) as Obj[]) {
    const values = `(${(e.values ?? []).join('|')});true`;
    if (e.operator === 'In') rules.push({ action: 'keep', source_labels: meta(e.key), regex: values });
    else if (e.operator === 'NotIn') rules.push({ action: 'drop', source_labels: meta(e.key), regex: values });
    else if (e.operator === 'Exists') rules.push({ action: 'keep', source_labels: present(e.key), regex: 'true' });
    else if (e.operator === 'DoesNotExist') rules.push({ action: 'drop', source_labels: present(e.key), regex: 'true' });
  }
  return rules;
}

const labelCopies = (kind: 'service' | 'pod', names: string[] | undefined): RelabelRule[] => (names ?? []).map((l) => ({
  source_labels: [`__meta_kubernetes_${kind}_label_${sanitize(l)}`], target_label: sanitize(l), regex: '(.+)', replacement: '${1}',
}));

/** appendShardingRelabelingWithAddress with one shard; $(SHARD) is what prometheus-config-reloader fills in (0). */
const SHARDING: RelabelRule[] = [
  { source_labels: ['__address__', '__tmp_hash'], target_label: '__tmp_hash', regex: '(.+);', replacement: '$1', action: 'replace' },
  { source_labels: ['__tmp_hash'], target_label: '__tmp_hash', modulus: 1, action: 'hashmod' },
  { source_labels: ['__tmp_hash', '__tmp_disable_sharding'], regex: '0;|.+;.+', action: 'keep' },
];
const RUNNING_FILTER: RelabelRule = { action: 'drop', source_labels: ['__meta_kubernetes_pod_phase'], regex: '(Failed|Succeeded)' };
const JOB_TO_TMP: RelabelRule = { source_labels: ['job'], target_label: '__tmp_prometheus_job_name' };

/** One endpoint's job: honor_labels, its intervals and path, the relabelling given then the endpoint label,
 * the endpoint's own relabelings and the sharding rules, its metric relabelings. */
function jobConfig(job: string, ep: Obj, relabel: RelabelRule[]): ScrapeConfig {
  const metricRelabel = relabelConfigs(ep.metricRelabelings);
  return {
    job_name: job,
    honor_labels: ep.honorLabels === true,
    ...(ep.interval ? { scrape_interval: ep.interval } : {}),
    ...(ep.scrapeTimeout ? { scrape_timeout: ep.scrapeTimeout } : {}),
    ...(ep.path ? { metrics_path: ep.path } : {}),
    relabel_configs: [...relabel, { target_label: 'endpoint', replacement: ep.port }, ...relabelConfigs(ep.relabelings), ...SHARDING],
    ...(metricRelabel.length ? { metric_relabel_configs: metricRelabel } : {}),
  };
}

/** The namespaces the monitor's kubernetes_sd_configs would watch; undefined: all. */
function monitorNamespaces(m: Obj): string[] | undefined {
  const sel = (m.spec.namespaceSelector ?? {}) as Obj;
  if (sel.any) return undefined;
  return sel.matchNames?.length ? sel.matchNames as string[] : [m.metadata.namespace as string];
}

export interface MonitorScrape {
  /** The scrape configs, one per endpoint, with their discovery left out (see `withTargets`). */
  configs: ScrapeConfig[];
  /** The namespaces their discovery would watch (undefined: every namespace). */
  namespaces: string[] | undefined;
  role: 'endpoints' | 'pod';
}

/** A job per endpoint (named serviceMonitor/<ns>/<name>/<i> or podMonitor/...), its relabelling from `relabel`. */
function eachEndpoint(kind: 'serviceMonitor' | 'podMonitor', m: Obj, endpoints: Obj[], relabel: (ep: Obj) => RelabelRule[]): ScrapeConfig[] {
  return endpoints.map((ep, i) => {
    only(`${kind} ${m.metadata.name} endpoint ${i}`, ep, ENDPOINT);
    if (!ep.port) throw new Error(`${kind} ${m.metadata.name} endpoint ${i} has no port name: portNumber and targetPort are not translated`);
    return jobConfig(`${kind}/${m.metadata.namespace}/${m.metadata.name}/${i}`, ep, relabel(ep));
  });
}

/** generateServiceMonitorConfig, for each endpoint of a rendered ServiceMonitor (role endpoints). */
export function serviceMonitorScrape(m: Obj): MonitorScrape {
  only(`ServiceMonitor ${m.metadata.name} spec`, m.spec, SM_SPEC);
  const configs = eachEndpoint('serviceMonitor', m, m.spec.endpoints as Obj[], (ep) => [
    JOB_TO_TMP,
    ...selectorRules(m.spec.selector ?? {}, 'service'),
    { action: 'keep', source_labels: ['__meta_kubernetes_endpoint_port_name'], regex: ep.port },
    ...(['Node', 'Pod'] as const).map((kind) => ({
      source_labels: ['__meta_kubernetes_endpoint_address_target_kind', '__meta_kubernetes_endpoint_address_target_name'],
      separator: ';', regex: `${kind};(.*)`, replacement: '${1}', target_label: kind.toLowerCase(),
    })),
    { source_labels: ['__meta_kubernetes_namespace'], target_label: 'namespace' },
    { source_labels: ['__meta_kubernetes_service_name'], target_label: 'service' },
    { source_labels: ['__meta_kubernetes_pod_name'], target_label: 'pod' },
    { source_labels: ['__meta_kubernetes_pod_container_name'], target_label: 'container' },
    RUNNING_FILTER,
    ...labelCopies('service', m.spec.targetLabels),
    ...labelCopies('pod', m.spec.podTargetLabels),
    { source_labels: ['__meta_kubernetes_service_name'], target_label: 'job', replacement: '${1}' },
    ...(m.spec.jobLabel ? [{ source_labels: [`__meta_kubernetes_service_label_${sanitize(m.spec.jobLabel)}`], target_label: 'job', regex: '(.+)', replacement: '${1}' }] : []),
  ]);
  return { configs, namespaces: monitorNamespaces(m), role: 'endpoints' };
}

/** generatePodMonitorConfig, for each endpoint of a rendered PodMonitor (role pod). */
export function podMonitorScrape(m: Obj): MonitorScrape {
  only(`PodMonitor ${m.metadata.name} spec`, m.spec, PM_SPEC);
  const configs = eachEndpoint('podMonitor', m, m.spec.podMetricsEndpoints as Obj[], (ep) => [
    JOB_TO_TMP,
    RUNNING_FILTER,
    ...selectorRules(m.spec.selector ?? {}, 'pod'),
    { action: 'keep', source_labels: ['__meta_kubernetes_pod_container_port_name'], regex: ep.port },
    { source_labels: ['__meta_kubernetes_namespace'], target_label: 'namespace' },
    { source_labels: ['__meta_kubernetes_pod_container_name'], target_label: 'container' },
    { source_labels: ['__meta_kubernetes_pod_name'], target_label: 'pod' },
    ...labelCopies('pod', m.spec.podTargetLabels),
    { target_label: 'job', replacement: `${m.metadata.namespace}/${m.metadata.name}` },
    ...(m.spec.jobLabel ? [{ source_labels: [`__meta_kubernetes_pod_label_${sanitize(m.spec.jobLabel)}`], target_label: 'job', regex: '(.+)', replacement: '${1}' }] : []),
  ]);
  return { configs, namespaces: monitorNamespaces(m), role: 'pod' };
}

/** A pod of the chart's Deployment as the API server would hold it once it runs: where it really listens. */
export interface RunningPod {
  name: string;
  /** The Deployment's pod template, rendered by the chart. */
  deployment: Obj;
  /** The address and port the process listens on (loopback here; the pod IP and container port in a cluster). */
  ip: string;
  port: number;
  node?: string;
}

function metaOf(kind: string, o: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> }): Record<string, string> {
  const out: Record<string, string> = { [`__meta_kubernetes_${kind}_name`]: o.name };
  for (const [k, v] of Object.entries(o.labels ?? {})) {
    out[`__meta_kubernetes_${kind}_label_${sanitize(k)}`] = v;
    out[`__meta_kubernetes_${kind}_labelpresent_${sanitize(k)}`] = 'true';
  }
  for (const [k, v] of Object.entries(o.annotations ?? {})) {
    out[`__meta_kubernetes_${kind}_annotation_${sanitize(k)}`] = v;
    out[`__meta_kubernetes_${kind}_annotationpresent_${sanitize(k)}`] = 'true';
  }
  return out;
}

/** discovery/kubernetes/pod.go's podLabels, for a Running, Ready pod of the Deployment (made by its ReplicaSet). */
function podMeta(pod: RunningPod): Record<string, string> {
  const tmpl = pod.deployment.spec.template as Obj;
  const rs = pod.name.replace(/-[a-z0-9]+$/, '');
  return {
    __meta_kubernetes_pod_ip: pod.ip, __meta_kubernetes_pod_ready: 'true', __meta_kubernetes_pod_phase: 'Running',
    __meta_kubernetes_pod_node_name: pod.node ?? 'node-1', __meta_kubernetes_pod_host_ip: pod.ip, __meta_kubernetes_pod_uid: `uid-${pod.name}`,
    ...metaOf('pod', { name: pod.name, labels: tmpl.metadata?.labels, annotations: tmpl.metadata?.annotations }),
    __meta_kubernetes_pod_controller_kind: 'ReplicaSet', __meta_kubernetes_pod_controller_name: rs,
  };
}

/** The container port of the pod named `portName`, as the discovery labels it (its number: where the process listens). */
function containerMeta(pod: RunningPod, portName: string): Record<string, string> {
  for (const c of pod.deployment.spec.template.spec.containers as Obj[]) {
    const p = (c.ports as Obj[] | undefined)?.find((x) => x.name === portName);
    if (!p) continue;
    return {
      __meta_kubernetes_pod_container_name: c.name, __meta_kubernetes_pod_container_image: c.image,
      __meta_kubernetes_pod_container_port_name: p.name, __meta_kubernetes_pod_container_port_number: String(pod.port),
      __meta_kubernetes_pod_container_port_protocol: p.protocol ?? 'TCP', __meta_kubernetes_pod_container_init: 'false',
    };
  }
  throw new Error(`the Deployment's containers have no port named ${portName}`);
}

/**
 * The target Kubernetes discovery would give for `pod`: role endpoints, behind `service` (the Endpoints object the
 * endpoints controller keeps for it, which copies the Service's labels); role pod, the pod's container port.
 * An empty list when the discovery would not see it (another namespace than the monitor watches).
 */
export function discoveredTargets(scrape: MonitorScrape, pod: RunningPod, service: Obj | undefined): { targets: string[]; labels: Record<string, string> }[] {
  const ns = pod.deployment.metadata.namespace as string;
  if (scrape.namespaces && !scrape.namespaces.includes(ns)) return [];
  const address = `${pod.ip}:${pod.port}`;
  if (scrape.role === 'pod') {
    return (pod.deployment.spec.template.spec.containers as Obj[]).flatMap((c) => (c.ports as Obj[] ?? []).map((p) => ({
      targets: [address], labels: { __meta_kubernetes_namespace: ns, ...podMeta(pod), ...containerMeta(pod, p.name) },
    })));
  }
  if (!service) return [];
  const selected = Object.entries(service.spec.selector ?? {}).every(([k, v]) => pod.deployment.spec.template.metadata.labels?.[k] === v);
  if (!selected || service.metadata.namespace !== ns) return [];
  return (service.spec.ports as Obj[]).map((sp) => ({
    targets: [address],
    labels: {
      __meta_kubernetes_namespace: ns,
      ...metaOf('service', { name: service.metadata.name, labels: service.metadata.labels, annotations: service.metadata.annotations }),
      ...metaOf('endpoints', { name: service.metadata.name, labels: service.metadata.labels }),
      __meta_kubernetes_endpoint_port_name: sp.name ?? '', __meta_kubernetes_endpoint_port_protocol: sp.protocol ?? 'TCP',
      __meta_kubernetes_endpoint_ready: 'true', __meta_kubernetes_endpoint_node_name: pod.node ?? 'node-1',
      __meta_kubernetes_endpoint_address_target_kind: 'Pod', __meta_kubernetes_endpoint_address_target_name: pod.name,
      ...podMeta(pod),
      ...containerMeta(pod, String(sp.targetPort ?? sp.name)),
    },
  }));
}

/** The monitor's scrape configs with the discovered targets as static_configs, as Prometheus gets them. */
export function withTargets(scrape: MonitorScrape, pods: RunningPod[], service: Obj | undefined): ScrapeConfig[] {
  const groups = pods.flatMap((p) => discoveredTargets(scrape, p, service));
  return scrape.configs.map((c) => ({ ...c, static_configs: groups }));
}
