// Monitoring as a user's Prometheus sees it (issue 21): a real Prometheus server scrapes the real operator and
// evaluates the chart's PrometheusRule, with the scrape configuration the Prometheus Operator generates for the
// chart's ServiceMonitor (test/harness/prometheus-operator.ts ports its generator: the same relabelling, so the
// same target labels namespace, service, pod, container, endpoint, job and instance).
//
// The stand-in: no kube-proxy, Endpoints controller output or pod network exists for a process on loopback (and
// Endpoints refuse loopback addresses), so the operator's "pod" is a static target carrying the
// __meta_kubernetes_* labels Kubernetes discovery (role endpoints) would give the pod of the chart's Deployment
// behind the chart's Service — both rendered by `helm template`, with metrics.port set to where the operator
// process listens, and the pod named as the Deployment's would be. The relabelling that turns those into target
// labels is the Prometheus Operator's own, unchanged. A new operator "pod" (the restart below) is a new target,
// as its new Endpoints address would be: the configuration is rewritten and reloaded.
//
// Everything else is real: the operator process (leader election on, against the stack's API server), the
// stack's Postgres and one of its own (Postgres 18 with the smallest notification queue, so that it can be
// filled), Prometheus evaluating the rules as `helm template` renders them (scrape and evaluation every second,
// each alert's `for` 5 s through the values). Trouble is made for real and every wait is for Prometheus's
// /api/v1/alerts or /api/v1/query to say so; the time from the trouble to the alert firing is printed (README,
// "Dashboard and alerts", lists them).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import pg from 'pg';
import { parseAllDocuments } from 'yaml';
import { microTime } from '../../src/kube/lease.ts';
import { embeddedPostgresBinDir, startPostgres, type PostgresServer } from '../harness/postgres.ts';
import { podMonitorScrape, serviceMonitorScrape, withTargets, type RunningPod } from '../harness/prometheus-operator.ts';
import { startPrometheus, type Alert, type PrometheusServer, type Sample } from '../harness/prometheus.ts';
import { installCrd } from '../support/crd.ts';
import { createNamespace, requireEnv, runBin, waitFor } from '../support/env.ts';
import { repoRoot } from '../support/launch.ts';
import { parseMetrics, seriesParts } from '../support/metrics.ts';
import { condition, createPgCluster, createPod, createSecret, getPgCluster, setPodStatus, startOperator, testKube, type OperatorProcess } from '../support/operator.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

const kube = testKube();
const CHART = join(repoRoot, 'charts', 'pgcluster-operator');
const RELEASE = 'pgco';
const FULLNAME = `${RELEASE}-pgcluster-operator`;
const FOR = '5s';
/** The `for` of every alert made to fire here, and short intervals: what makes the test take seconds, not minutes.
 * PgClusterReconcileErrors keeps its 15m: a conflict retried at once (a 409 while the PgCluster is new) is a
 * failed reconcile too, and is not what it is for. */
const SHORT = ['notReadyFor', 'disconnectedFor', 'belowMinMembersFor', 'invalidPayloadsFor', 'operatorDownFor', 'notifyQueueFor'].map((k) => `prometheusRule.${k}=${FOR}`);
const ALERT_WAIT = { timeoutMs: 90_000, intervalMs: 250 };
/** A fixed PgCluster Secret only takes effect at the operator's next resync of it (at most a minute). */
const RESOLVE_WAIT = { timeoutMs: 150_000, intervalMs: 250 };

let opNs: { name: string; cleanup(): Promise<void> };
let nsA: { name: string; cleanup(): Promise<void> };
let nsB: { name: string; cleanup(): Promise<void> };
let serverB: PostgresServer;
let op: OperatorProcess;
let podName = `${FULLNAME}-7c9d8f6b5-x1`;
let prom: PrometheusServer;
let chart: Obj[];
const clients: pg.Client[] = [];
const timings: string[] = [];

const docsOf = (text: string): Obj[] => parseAllDocuments(text).map((d) => d.toJS() as Obj).filter((d) => d?.kind);
// image.repository is required by the chart; the operator here runs as a process, so any name does.
const render = async (sets: string[]): Promise<Obj[]> => docsOf((await runBin('helm', ['template', RELEASE, CHART, '--namespace', opNs.name, ...['image.repository=registry.example.com/pgcluster-operator', ...sets].flatMap((s) => ['--set', s])])).stdout);
const kind = (docs: Obj[], k: string): Obj => {
  const d = docs.find((x) => x.kind === k);
  assert.ok(d, `the chart renders a ${k}`);
  return d;
};
const portOf = (o: OperatorProcess) => Number(new URL(o.metricsUrl).port);
const channel = (ns: string) => `${ns.replace(/-/g, '_')}_chat`;
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** The operator as the chart's Deployment runs it (leader election in the release namespace, its Lease name). */
function startChartOperator(pod: string): Promise<OperatorProcess> {
  return startOperator({
    namespaces: [nsA.name, nsB.name],
    env: { POD_NAME: pod, LEADER_ELECT: 'true', LEADER_ELECTION_NAMESPACE: opNs.name, LEADER_ELECTION_ID: FULLNAME },
  });
}

/** The scrape configs the Prometheus Operator generates for the chart's ServiceMonitor, with the operator's pod as target. */
async function serviceMonitorConfigs(o: OperatorProcess, pod: string) {
  const docs = await render(['serviceMonitor.enabled=true', 'serviceMonitor.interval=1s', 'serviceMonitor.scrapeTimeout=1s', `metrics.port=${portOf(o)}`]);
  const running: RunningPod = { name: pod, deployment: kind(docs, 'Deployment'), ip: '127.0.0.1', port: portOf(o) };
  return withTargets(serviceMonitorScrape(kind(docs, 'ServiceMonitor')), [running], kind(docs, 'Service'));
}

async function client(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  c.on('error', () => {});
  await c.connect();
  clients.push(c);
  return c;
}

const matches = (labels: Record<string, string>, want: Record<string, string>) => Object.entries(want).every(([k, v]) => labels[k] === v);
const alertsOf = async (name: string, want: Record<string, string> = {}): Promise<Alert[]> =>
  (await prom.alerts()).filter((a) => a.labels.alertname === name && matches(a.labels, want));

/** Waits for the alert to fire; the time from `since` (the trouble made) is recorded. */
async function firing(t: TestContext, name: string, want: Record<string, string>, since: number, what: string): Promise<Alert> {
  const alert = await waitFor(async () => (await alertsOf(name, want)).find((a) => a.state === 'firing'), { ...ALERT_WAIT, message: `${name} firing for ${JSON.stringify(want)}` });
  const line = `${name}: ${what}: pending after ${secs(Date.parse(alert.activeAt) - since)}, firing after ${secs(Date.now() - since)} (for ${FOR})`;
  timings.push(line);
  t.diagnostic(line);
  return alert;
}

async function resolved(t: TestContext, name: string, want: Record<string, string>, since: number, what: string): Promise<void> {
  await waitFor(async () => (await alertsOf(name, want)).length === 0, { ...RESOLVE_WAIT, message: `${name} resolved for ${JSON.stringify(want)}` });
  const line = `${name}: resolved ${secs(Date.now() - since)} after ${what}`;
  timings.push(line);
  t.diagnostic(line);
}

/**
 * Runs body, which makes trouble and calls `fix` to end it; if body fails before it fixed things, the fix runs
 * anyway, so that the next test starts from a healthy state (its failure is its own, not this one's).
 */
async function repairing(fix: () => Promise<unknown>, body: (fix: () => Promise<void>) => Promise<void>): Promise<void> {
  let done = false;
  const once = async () => { if (!done) { done = true; await fix(); } };
  try {
    await body(once);
  } finally {
    await once().catch(() => {});
  }
}

/** The PgCluster's namespace in the alert's labels, its summary and its description, and not the operator's. */
function namesPgCluster(a: Alert, ns: string, name: string): void {
  assert.equal(a.labels.namespace, ns, `${a.labels.alertname}: labels name the PgCluster's namespace`);
  assert.equal(a.labels.name, name);
  assert.ok(a.annotations.summary?.includes(`${ns}/${name}`), `summary names ${ns}/${name}: ${a.annotations.summary}`);
  assert.ok(a.annotations.description?.includes(`-n ${ns} ${name}`), `description names ${ns}: ${a.annotations.description}`);
  assert.equal(a.labels.exported_namespace, undefined);
}

before(async () => {
  await installCrd(kube);
  [opNs, nsA, nsB] = await Promise.all([createNamespace('mon-op'), createNamespace('mon-a'), createNamespace('mon-b')]);
  serverB = await startPostgres({ binDir: embeddedPostgresBinDir(), settings: { max_notify_queue_pages: '64' } });
  await createSecret(kube, nsA.name, 'db', { url: requireEnv().databaseUrl });
  for (const ns of [nsA, nsB]) {
    const net = ns === nsA ? 1 : 2;
    for (const i of [1, 2]) await createPod(kube, ns.name, { name: `chat-${i}`, labels: { app: 'chat' }, ip: `10.93.${net}.${i}` });
  }
  op = await startChartOperator(podName);
  chart = await render(['prometheusRule.enabled=true', 'prometheusRule.runbookBaseUrl=https://example.org/README.md', ...SHORT]);
  prom = await startPrometheus({
    binary: join(requireEnv().binDir, 'prometheus'),
    dir: join(requireEnv().stackDir, `prometheus-${process.pid}`),
    scrapeInterval: '1s', evaluationInterval: '1s',
    scrapeConfigs: await serviceMonitorConfigs(op, podName),
    ruleFiles: { 'pgcluster-operator.rules.yaml': { groups: kind(chart, 'PrometheusRule').spec.groups } },
  });
});

after(async () => {
  for (const c of clients) await c.end().catch(() => {});
  if (timings.length) console.log(`alert timings (scrape and evaluation every 1 s, for ${FOR}):\n  ${timings.join('\n  ')}`);
  await prom?.stop();
  await op?.stop();
  await Promise.all([opNs, nsA, nsB].map((n) => n?.cleanup()));
  await serverB?.destroy();
});

test('the target has the labels the Prometheus Operator gives a ServiceMonitor target; up is 1', async () => {
  const target = await waitFor(async () => (await prom.activeTargets()).find((x) => x.health === 'up'), { message: 'the operator target up', timeoutMs: 30_000 });
  assert.deepEqual(target.labels, {
    container: 'operator', endpoint: 'metrics', instance: `127.0.0.1:${portOf(op)}`, job: `${FULLNAME}-metrics`,
    namespace: opNs.name, pod: podName, service: `${FULLNAME}-metrics`,
  });
  assert.equal(target.scrapePool, `serviceMonitor/${opNs.name}/${FULLNAME}/0`);
  const up = await prom.query('up');
  assert.equal(up.length, 1);
  assert.equal(up[0]?.value[1], '1');
  // Healthy: nothing fires, nothing is pending (the operator leads, its target is up).
  await waitFor(async () => (await alertsOf('PgClusterOperatorDown')).length === 0, { message: 'no PgClusterOperatorDown once the operator leads', timeoutMs: 30_000 });
});

test('PgClusterNotReady: a PgCluster whose Secret is missing; the alert names its namespace, not the other PgCluster of that name', async (t) => {
  // A/chat first, healthy; then B/chat, whose Secret does not exist yet.
  await createPgCluster(kube, nsA.name, 'chat', { selector: { matchLabels: { app: 'chat' } }, postgres: { urlSecretRef: { name: 'db' } }, channel: channel(nsA.name), heartbeatInterval: '1s', minMembers: 2 });
  await waitFor(async () => condition(await getPgCluster(kube, nsA.name, 'chat'), 'Ready')?.status === 'True', { message: 'A/chat Ready' });
  await repairing(() => createSecret(kube, nsB.name, 'db', { url: serverB.url }), async (fix) => {
    const t0 = Date.now();
    await createPgCluster(kube, nsB.name, 'chat', { selector: { matchLabels: { app: 'chat' } }, postgres: { urlSecretRef: { name: 'db' } }, channel: channel(nsB.name), heartbeatInterval: '1s', minMembers: 2 });
    const notReady = await firing(t, 'PgClusterNotReady', { namespace: nsB.name, name: 'chat' }, t0, 'PgCluster created with its Secret missing (Connected False, SecretNotFound)');
    namesPgCluster(notReady, nsB.name, 'chat');
    assert.equal(notReady.labels.severity, 'warning');
    assert.equal(notReady.annotations.runbook_url, 'https://example.org/README.md#pgclusternotready');
    const disconnected = await firing(t, 'PgClusterPostgresDisconnected', { namespace: nsB.name, name: 'chat' }, t0, 'the same missing Secret');
    namesPgCluster(disconnected, nsB.name, 'chat');
    assert.equal(disconnected.labels.severity, 'critical');
    // The other PgCluster named chat has none, and no PgCluster alert names the operator's namespace.
    const all = await prom.alerts();
    assert.deepEqual(all.filter((a) => 'name' in a.labels && a.labels.namespace !== nsB.name).map((a) => a.labels), []);

    const t1 = Date.now();
    await fix();
    await resolved(t, 'PgClusterPostgresDisconnected', { namespace: nsB.name }, t1, 'the Secret was created (the operator reads a missing Secret again from 1 s, doubling to 30 s)');
    await resolved(t, 'PgClusterNotReady', { namespace: nsB.name }, t1, 'the Secret was created');
  });
});

test('PgClusterBelowMinMembers: a member of A/chat not Ready; B/chat, same name, has no alert', async (t) => {
  await waitFor(async () => condition(await getPgCluster(kube, nsA.name, 'chat'), 'Degraded')?.status === 'False', { message: 'A/chat not Degraded (2 members, minMembers 2)' });
  await repairing(() => setPodStatus(kube, nsA.name, 'chat-2', { ip: '10.93.1.2', ready: true }), async (fix) => {
    const t0 = Date.now();
    await setPodStatus(kube, nsA.name, 'chat-2', { ip: '10.93.1.2', ready: false });
    const a = await firing(t, 'PgClusterBelowMinMembers', { namespace: nsA.name, name: 'chat' }, t0, 'one of two pods set not Ready (minMembers 2)');
    assert.equal(a.labels.severity, 'warning');
    assert.match(a.annotations.description ?? '', new RegExp(`-n ${nsA.name} chat`));
    assert.deepEqual(await alertsOf('PgClusterBelowMinMembers', { namespace: nsB.name }), []);
    const t1 = Date.now();
    await fix();
    await resolved(t, 'PgClusterBelowMinMembers', { namespace: nsA.name }, t1, 'the pod was Ready again');
  });
});

test('PgClusterPostgresDisconnected: B/chat\'s Postgres stopped; A/chat, on another server, stays connected', async (t) => {
  await waitFor(async () => condition(await getPgCluster(kube, nsB.name, 'chat'), 'Connected')?.status === 'True', { message: 'B/chat Connected (its Secret read again)', timeoutMs: 90_000 });
  await repairing(() => serverB.start(), async (fix) => {
    const t0 = Date.now();
    await serverB.stop();
    const a = await firing(t, 'PgClusterPostgresDisconnected', { namespace: nsB.name, name: 'chat' }, t0, 'its Postgres server stopped');
    namesPgCluster(a, nsB.name, 'chat');
    assert.deepEqual(await alertsOf('PgClusterPostgresDisconnected', { namespace: nsA.name }), []);
    const t1 = Date.now();
    await fix();
    await resolved(t, 'PgClusterPostgresDisconnected', { namespace: nsB.name }, t1, 'the server was started again');
  });
});

test('PgClusterNotifyQueueFilling: one Postgres server\'s queue over half full is one alert for its endpoint, not for every server', async (t) => {
  const endpointsNow = async () => {
    const series = parseMetrics(await (await fetch(op.metricsUrl)).text());
    return [...series].map(([s, v]) => ({ ...seriesParts(s), v })).filter((s) => s.name === 'pgcluster_notify_queue_usage');
  };
  await waitFor(async () => (await prom.query('max by (endpoint) (pgcluster_notify_queue_usage)')).length === 2, { message: 'two endpoints\' queue usage in Prometheus, one per server' });
  const stuck = await client(serverB.url);
  await stuck.query('LISTEN mon_stuck');
  await stuck.query('BEGIN');
  await stuck.query('SELECT 1');
  await repairing(() => stuck.end(), async (fix) => {
    const t0 = Date.now();
    await (await client(serverB.url)).query(`SELECT pg_notify('mon_stuck', lpad(i::text, 7900, 'x')) FROM generate_series(1, 40) AS i`);
    const full = await waitFor(async () => (await endpointsNow()).find((s) => s.v > 0.5), { message: 'B\'s server queue over half full in the operator\'s gauge' });
    const a = await firing(t, 'PgClusterNotifyQueueFilling', { endpoint: full.labels.endpoint! }, t0, 'a session LISTENing in an open transaction, 40 payloads of 7.9 kB on a 512 KiB queue');
    assert.notEqual(a.labels.endpoint, 'metrics', 'the Postgres endpoint id, not the scrape endpoint');
    assert.ok(a.annotations.summary?.includes(full.labels.endpoint!));
    assert.equal((await alertsOf('PgClusterNotifyQueueFilling')).length, 1, 'one server, one alert');
    const t1 = Date.now();
    await fix();
    await resolved(t, 'PgClusterNotifyQueueFilling', {}, t1, 'the stuck session ended');
  });
});

test('PgClusterInvalidPayloads: junk NOTIFYed on A/chat\'s channel', async (t) => {
  const c = await client(requireEnv().databaseUrl);
  // The counter's series appears with the first invalid payload; rate() sees only what comes after its first
  // sample. So one first (a sender that keeps sending is the real case), then the burst.
  await c.query(`SELECT pg_notify($1, 'not a node name')`, [channel(nsA.name)]);
  await waitFor(async () => (await prom.query(`pgcluster_invalid_payloads_total{namespace="${nsA.name}"}`)).length > 0, { message: 'the invalid payloads counter of A/chat scraped' });
  const t0 = Date.now();
  // 1,000 distinct payloads that are not name@host: more than 1 a second over the rule's 5-minute rate.
  await c.query(`SELECT pg_notify($1, 'not a node name ' || i) FROM generate_series(1, 1000) AS i`, [channel(nsA.name)]);
  // And one remote node's heartbeat, for the dashboard's "new remote names" panel.
  await c.query(`SELECT pg_notify($1, 'ex@192.0.2.10')`, [channel(nsA.name)]);
  const a = await firing(t, 'PgClusterInvalidPayloads', { namespace: nsA.name, name: 'chat' }, t0, '1,000 invalid payloads NOTIFYed at once');
  assert.ok(a.annotations.summary?.includes(`${nsA.name}/chat`));
  assert.deepEqual(await alertsOf('PgClusterInvalidPayloads', { namespace: nsB.name }), []);
  // Not waited to resolve: its rate is over 5 minutes.
});

/** Grafana's formatting of a multi-value variable in a regex matcher. */
const regexOf = (values: string[]) => (values.length === 1 ? values[0]! : `(${values.join('|')})`);

test('the dashboard: every panel\'s query, variables set as a user would, returns series that name the PgCluster (or the Postgres endpoint, or the operator)', async () => {
  const dashboard = JSON.parse(readFileSync(join(CHART, 'dashboards', 'pgcluster-operator.json'), 'utf8')) as Obj;
  const variable = (name: string) => (dashboard.templating.list as Obj[]).find((v) => v.name === name)!.query.query as string;
  const labelValues = async (q: string) => {
    const m = /^label_values\((.+),\s*(\w+)\)$/.exec(q);
    assert.ok(m, q);
    return prom.labelValues(m[2]!, m[1]!);
  };
  // The namespace drop-down offers the PgClusters' namespaces (not the operator's); a user picks both.
  const namespaces = await labelValues(variable('namespace'));
  assert.deepEqual(namespaces.sort(), [nsA.name, nsB.name].sort(), 'the namespace variable offers the PgClusters\' namespaces');
  const vars: Record<string, string> = { namespace: regexOf(namespaces) };
  const names = await labelValues(variable('pgcluster').replace('$namespace', vars.namespace!));
  assert.deepEqual(names, ['chat']);
  vars.pgcluster = 'chat';
  const jobs = await labelValues(variable('job'));
  assert.deepEqual(jobs, [`${FULLNAME}-metrics`]);
  vars.job = regexOf(jobs);
  // What the operator exports, per metric: the PgClusters and the endpoints its series name.
  const raw = new Map<string, { pgclusters: Set<string>; endpoints: Set<string> }>();
  for (const key of parseMetrics(await (await fetch(op.metricsUrl)).text()).keys()) {
    const { name, labels } = seriesParts(key);
    const e = raw.get(name) ?? { pgclusters: new Set<string>(), endpoints: new Set<string>() };
    if (labels.namespace && labels.name) e.pgclusters.add(`${labels.namespace}/${labels.name}`);
    if (labels.endpoint) e.endpoints.add(labels.endpoint);
    raw.set(name, e);
  }

  const failures: string[] = [];
  for (const panel of dashboard.panels as Obj[]) {
    for (const target of (panel.targets ?? []) as Obj[]) {
      const expr = (target.expr as string).replace(/\$__rate_interval/g, '1m').replace(/\$(\w+)/g, (_, v: string) => vars[v] ?? `$${v}`);
      const where = `${panel.title} [${target.refId}] ${expr}`;
      let result: Sample[];
      try {
        result = await waitFor(async () => { const r = await prom.query(expr); return r.length > 0 && r; }, { message: `series for ${where}`, timeoutMs: 20_000 });
      } catch {
        failures.push(`${where}: no series`);
        continue;
      }
      const metrics = [...raw.keys()].filter((m) => new RegExp(`\\b${m}\\b`).test(expr));
      const perPgCluster = metrics.find((m) => raw.get(m)!.pgclusters.size > 0);
      const perEndpoint = metrics.find((m) => raw.get(m)!.endpoints.size > 0);
      for (const l of result.map((r) => r.metric)) {
        for (const k of Object.keys(l)) if (k.startsWith('exported_')) failures.push(`${where}: label ${k}=${l[k]}`);
        if (perPgCluster) continue;
        // An operator-wide series: the operator's namespace and pod, the scrape endpoint.
        if ('namespace' in l && l.namespace !== opNs.name) failures.push(`${where}: namespace ${l.namespace}, want the operator's`);
        if ('pod' in l && l.pod !== podName) failures.push(`${where}: pod ${l.pod}`);
        if (!perEndpoint && 'endpoint' in l && l.endpoint !== 'metrics') failures.push(`${where}: endpoint ${l.endpoint}`);
      }
      if (perPgCluster) {
        // Each PgCluster apart, named by its namespace and name: A/chat and B/chat, never merged.
        const got = result.map((r) => `${r.metric.namespace}/${r.metric.name}`).filter((k, i, all) => all.indexOf(k) === i).sort();
        const want = [...raw.get(perPgCluster)!.pgclusters].sort();
        if (JSON.stringify(got) !== JSON.stringify(want)) failures.push(`${where}: PgClusters ${got.join(', ')}, want ${want.join(', ')}`);
      } else if (perEndpoint && /by \([^)]*endpoint|^\w+$/.test(target.expr)) {
        // Each Postgres server apart, named by its endpoint id.
        const got = [...new Set(result.map((r) => r.metric.endpoint))].sort();
        const want = [...raw.get(perEndpoint)!.endpoints].sort();
        if (JSON.stringify(got) !== JSON.stringify(want)) failures.push(`${where}: endpoints ${got.join(', ')}, want ${want.join(', ')}`);
      }
    }
  }
  assert.deepEqual(failures, []);
});

test('two PgClusters named chat in two namespaces are two series in every per-PgCluster metric', async () => {
  // Per metric, the PgClusters the operator exports it for; Prometheus must have exactly those, apart.
  const exported = new Map<string, Set<string>>();
  for (const { name, labels } of [...parseMetrics(await (await fetch(op.metricsUrl)).text()).keys()].map(seriesParts)) {
    if (labels.name === 'chat' && labels.namespace) exported.set(name, (exported.get(name) ?? new Set()).add(`${labels.namespace}/chat`));
  }
  const both = [...exported].filter(([, pcs]) => pcs.size === 2).map(([m]) => m);
  assert.ok(both.length >= 5, `metrics with both PgClusters: ${both.join(', ')}`);
  for (const [metric, pcs] of exported) {
    const series = await prom.query(`count by (namespace, name) (${metric})`);
    assert.deepEqual(series.map((s) => `${s.metric.namespace}/${s.metric.name}`).sort(), [...pcs].sort(), metric);
  }
});

test('PgClusterOperatorDown: the operator stopped fires it; a new one that cannot take the Lease keeps it firing; leading, it resolves', async (t) => {
  const t0 = Date.now();
  assert.equal(await op.stop(), 0);
  const down = await firing(t, 'PgClusterOperatorDown', {}, t0, 'the operator stopped (SIGTERM): its target down');
  assert.equal(down.labels.namespace, opNs.name, 'the operator\'s namespace');
  assert.equal(down.labels.severity, 'critical');
  assert.ok(down.annotations.summary?.includes(`${opNs.name}/${FULLNAME}`), down.annotations.summary);

  // Someone else holds the Lease: the new replica is up, but stands by.
  const leasePath = `/apis/coordination.k8s.io/v1/namespaces/${opNs.name}/leases/${FULLNAME}`;
  await kube.patch(leasePath, { spec: { holderIdentity: 'ghost', leaseDurationSeconds: 3600, renewTime: microTime(Date.now()), acquireTime: microTime(Date.now()) } }, 'leases');
  podName = `${FULLNAME}-7c9d8f6b5-x2`;
  op = await startChartOperator(podName);
  await prom.setScrapeConfigs(await serviceMonitorConfigs(op, podName));
  await waitFor(async () => (await prom.query(`up{pod="${podName}"} == 1`)).length === 1, { message: 'the new replica\'s target up' });
  await waitFor(async () => (await prom.query(`leader_election_master_status{pod="${podName}"} == 0`)).length === 1, { message: 'the new replica standing by, scraped' });
  const standby = await alertsOf('PgClusterOperatorDown');
  assert.equal(standby[0]?.state, 'firing', 'a replica up but not leading: still down');
  const line = `PgClusterOperatorDown: still firing with a replica up but standing by (the Lease held by another holder)`;
  timings.push(line);
  t.diagnostic(line);

  const t1 = Date.now();
  await kube.delete(leasePath, 'leases');
  await resolved(t, 'PgClusterOperatorDown', {}, t1, 'the Lease was freed and the replica took it');
  assert.equal(await op.metric('leader_election_master_status'), 1);
});

test('the PodMonitor: the same labels but service, job <namespace>/<name>; the metrics keep the PgClusters\' namespaces', async () => {
  const docs = await render(['podMonitor.enabled=true', 'podMonitor.interval=1s', 'podMonitor.scrapeTimeout=1s', `metrics.port=${portOf(op)}`, 'prometheusRule.enabled=true']);
  const running: RunningPod = { name: podName, deployment: kind(docs, 'Deployment'), ip: '127.0.0.1', port: portOf(op) };
  await prom.setScrapeConfigs(withTargets(podMonitorScrape(kind(docs, 'PodMonitor')), [running], undefined));
  const job = `${opNs.name}/${FULLNAME}`;
  const target = await waitFor(async () => (await prom.activeTargets()).find((x) => x.health === 'up' && x.labels.job === job), { message: 'the PodMonitor target up', timeoutMs: 30_000 });
  assert.deepEqual(target.labels, { container: 'operator', endpoint: 'metrics', instance: `127.0.0.1:${portOf(op)}`, job, namespace: opNs.name, pod: podName });
  const members = await waitFor(async () => { const r = await prom.query(`pgcluster_members{job="${job}"}`); return r.length === 2 && r; }, { message: 'pgcluster_members through the PodMonitor' });
  assert.deepEqual(members.map((s) => s.metric.namespace).sort(), [nsA.name, nsB.name].sort());
  // The PodMonitor's rules select its job: the operator is up and leading, PgClusterOperatorDown's expression is empty.
  const rule = (kind(docs, 'PrometheusRule').spec.groups as Obj[]).flatMap((g) => g.rules as Obj[]).find((r) => r.alert === 'PgClusterOperatorDown')!;
  assert.match(rule.expr, new RegExp(`job="${job}"`));
  await waitFor(async () => (await prom.query(rule.expr)).length === 0, { message: 'PgClusterOperatorDown\'s expression (PodMonitor job) empty while the operator leads' });
});
