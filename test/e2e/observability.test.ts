// What people look at (issue 15, items 1 and 2): the chart's Grafana dashboard and PrometheusRule render, every
// PromQL expression in them parses (Prometheus's own PromQL grammar, @prometheus-io/lezer-promql), promtool
// (built from the Prometheus module) checks the rules and unit-tests each alert on synthetic series, and every
// metric they name is exported by a running operator (its /metrics, scraped here). The synthetic series carry
// the labels a scrape through the chart's ServiceMonitor gives them (the target's namespace, service, pod,
// container, endpoint, job, instance; the metrics' own namespace and endpoint kept by honorLabels); that they
// really do is test/e2e/monitoring.test.ts's, against a real Prometheus.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parser } from '@prometheus-io/lezer-promql';
import { parseAllDocuments, stringify } from 'yaml';
import { requireEnv, runBin, waitFor } from '../support/env.ts';
import { createPgCluster, createPod, operatorInNamespace, type OperatorProcess, testKube } from '../support/operator.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CHART = join(ROOT, 'charts', 'pgcluster-operator');
const DASHBOARD_FILE = join(CHART, 'dashboards', 'pgcluster-operator.json');
const kube = testKube();
/** The default severities that are not warning: someone must act now. */
const SEVERITY: Record<string, string> = { PgClusterPostgresDisconnected: 'critical', PgClusterOperatorDown: 'critical' };
/** The labels a scrape of the operator through the chart's ServiceMonitor (release obs in monitoring-test) adds. */
const TARGET = 'job="obs-pgcluster-operator-metrics",service="obs-pgcluster-operator-metrics",pod="obs-pgcluster-operator-5d9c7b6f4-abcde",container="operator",instance="10.244.1.7:8080"';

interface Target { expr: string; refId: string }
interface Panel { id: number; type: string; title: string; gridPos: { h: number; w: number; x: number; y: number }; datasource?: { uid: string }; targets?: Target[] }
interface Dashboard { title: string; uid: string; schemaVersion: number; panels: Panel[]; templating: { list: { name: string; type: string; query?: string | { query: string } }[] } }
interface Rule { alert: string; expr: string; for: string; labels: Record<string, string>; annotations: Record<string, string> }
interface Doc { kind: string; metadata: { name: string; labels?: Record<string, string> }; data?: Record<string, string>; spec?: { groups: { name: string; rules: Rule[] }[] } }

/**
 * The metric names a PromQL expression selects, or the parse error. Grafana's $__rate_interval (and any
 * $variable outside a string) is replaced by a duration first, as Grafana does before sending the query.
 */
function metricNames(expr: string): { names: string[]; error?: string } {
  const q = expr.replace(/\$__\w+/g, '5m');
  const names: string[] = [];
  let error: string | undefined;
  parser.parse(q).iterate({
    enter: (n) => {
      if (n.type.isError) error ??= `parse error at ${n.from} in ${q}`;
      if (n.name === 'Identifier') names.push(q.slice(n.from, n.to));
    },
  });
  return { names, error };
}

/** What the operator exports: every `# TYPE` name, and for a histogram its _bucket, _sum and _count series. */
function exported(text: string): Set<string> {
  const names = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, type] = m as unknown as [string, string, string];
    names.add(name);
    if (type === 'histogram' || type === 'summary') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s);
  }
  return names;
}

describe('dashboard and alerts', () => {
  let ns: { name: string; cleanup(): Promise<void> };
  let op: OperatorProcess;
  let docs: Doc[];
  let dashboard: Dashboard;

  before(async () => {
    const r = await runBin('helm', ['template', 'obs', CHART, '--namespace', 'monitoring-test', '--set', 'image.repository=registry.example.com/pgcluster-operator', '--set', 'grafanaDashboard.enabled=true', '--set', 'prometheusRule.enabled=true', '--set', 'prometheusRule.runbookBaseUrl=https://example.org/README.md']);
    docs = parseAllDocuments(r.stdout).map((d) => d.toJSON() as Doc).filter(Boolean);
    dashboard = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as Dashboard;
    ({ ns, op } = await operatorInNamespace(kube, 'e2e-obs', requireEnv().databaseUrl));
  });
  after(async () => {
    await op?.stop();
    await ns?.cleanup();
  });

  test('off by default; on, the dashboard ConfigMap carries the Grafana sidecar label and the JSON file unchanged', async () => {
    const plain = await runBin('helm', ['template', 'obs', CHART, '--set', 'image.repository=registry.example.com/pgcluster-operator']);
    assert.doesNotMatch(plain.stdout, /kind: PrometheusRule|grafana_dashboard/);
    const cm = docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'obs-pgcluster-operator-dashboard');
    assert.ok(cm, 'the dashboard ConfigMap');
    assert.equal(cm.metadata.labels?.grafana_dashboard, '1');
    assert.equal(cm.data?.['pgcluster-operator.json'], readFileSync(DASHBOARD_FILE, 'utf8'));
  });

  test('the dashboard is a Grafana dashboard: uid, variables for namespace and PgCluster, laid-out panels with parsing queries', () => {
    assert.equal(dashboard.uid, 'pgcluster-operator');
    assert.ok(dashboard.schemaVersion >= 36);
    const vars = new Map(dashboard.templating.list.map((v) => [v.name, v]));
    for (const v of ['datasource', 'namespace', 'pgcluster']) assert.ok(vars.has(v), `variable ${v}`);
    const ids = new Set<number>();
    const refIds = (p: Panel) => new Set(p.targets?.map((t) => t.refId));
    for (const p of dashboard.panels) {
      assert.ok(!ids.has(p.id), `panel id ${p.id} is unique`);
      ids.add(p.id);
      assert.ok(p.gridPos.w > 0 && p.gridPos.x + p.gridPos.w <= 24, `${p.title}: fits the 24-column grid`);
      if (p.type === 'row') continue;
      assert.equal(p.datasource?.uid, '${datasource}', `${p.title}: uses the datasource variable`);
      assert.ok(p.targets?.length, `${p.title}: has queries`);
      assert.equal(refIds(p).size, p.targets?.length, `${p.title}: refIds are unique`);
      for (const t of p.targets ?? []) assert.equal(metricNames(t.expr).error, undefined, `${p.title}: ${t.expr}`);
    }
    const titles = dashboard.panels.map((p) => p.title).join(' | ');
    for (const want of [/Members/, /Peers/, /Ready/, /Change → outputs written/, /NOTIFY transactions/, /Names per transaction/, /Invalid payloads/, /Reconciles and errors/, /Work queue/, /Kubernetes writes/, /Leader/]) {
      assert.match(titles, want);
    }
  });

  test('the PrometheusRule: every alert parses, has a severity, a summary, a description and a runbook link', () => {
    const rule = docs.find((d) => d.kind === 'PrometheusRule');
    assert.ok(rule?.spec);
    const rules = rule.spec.groups.flatMap((g) => g.rules);
    assert.deepEqual(rules.map((r) => r.alert), ['PgClusterNotReady', 'PgClusterPostgresDisconnected', 'PgClusterReconcileErrors', 'PgClusterInvalidPayloads', 'PgClusterNotifyQueueFilling', 'PgClusterBelowMinMembers', 'PgClusterOperatorLeaseRenewalSlow', 'PgClusterOperatorDown']);
    for (const r of rules) {
      assert.equal(metricNames(r.expr).error, undefined, `${r.alert}: ${r.expr}`);
      assert.match(r.for, /^\d+[smh]$/);
      assert.equal(r.labels.severity, SEVERITY[r.alert] ?? 'warning', `${r.alert}: default severity`);
      assert.ok(r.annotations.summary && r.annotations.description, `${r.alert}: summary and description`);
      assert.equal(r.annotations.runbook_url, `https://example.org/README.md#${r.alert.toLowerCase()}`);
    }
    // Every runbook anchor is a section of docs/monitoring.md.
    const runbooks = readFileSync(join(ROOT, 'docs', 'monitoring.md'), 'utf8');
    for (const r of rules) assert.match(runbooks, new RegExp(`^### ${r.alert}$`, 'm'), `docs/monitoring.md has a runbook section for ${r.alert}`);
  });

  test('promtool: the rules check, and each alert fires on the series that mean trouble, after its "for", and never on healthy ones', async () => {
    const rule = docs.find((d) => d.kind === 'PrometheusRule');
    assert.ok(rule?.spec);
    const dir = mkdtempSync(join(tmpdir(), 'pgco-promtool-'));
    try {
      writeFileSync(join(dir, 'rules.yaml'), stringify({ groups: rule.spec.groups }));
      const check = await runBin('promtool', ['check', 'rules', join(dir, 'rules.yaml')], { allowFail: true });
      assert.equal(check.code, 0, check.stdout + check.stderr);
      assert.match(check.stdout, /SUCCESS: 8 rules found/);

      const rules = new Map(rule.spec.groups.flatMap((g) => g.rules).map((r) => [r.alert, r]));
      const pc = { namespace: 'prod', name: 'chat' };
      // Per-PgCluster series: the PgCluster's namespace (kept by honorLabels), the target's other labels, and
      // endpoint="metrics" (the target's: these metrics have no endpoint of their own).
      const cond = (type: string, status: string, values: string) => ({ series: `pgcluster_status_condition{namespace="prod",name="chat",type="${type}",status="${status}",endpoint="metrics",${TARGET}}`, values });
      // The annotations as Prometheus renders them for these labels.
      const annotations = (alert: string, labels: Record<string, string>) => Object.fromEntries(Object.entries(rules.get(alert)?.annotations ?? {})
        .map(([k, v]) => [k, v.replace(/\{\{ \$labels\.(\w+) \}\}/g, (_, l: string) => labels[l] ?? '')]));
      const fires = (alert: string, at: string, labels: Record<string, string>) => ({
        eval_time: at, alertname: alert, exp_alerts: [{ exp_labels: { severity: SEVERITY[alert] ?? 'warning', ...labels }, exp_annotations: annotations(alert, labels) }],
      });
      const quiet = (alert: string, at: string) => ({ eval_time: at, alertname: alert, exp_alerts: [] });
      // Operator-wide series: the operator's namespace, from the target.
      const opSeries = (name: string, labels: string) => `${name}{${labels}${labels ? ',' : ''}namespace="monitoring-test",endpoint="metrics",${TARGET}}`;
      const operatorLabels = { namespace: 'monitoring-test', job: 'obs-pgcluster-operator-metrics' };
      // Lease renewals, 30 a minute, as histogram buckets: each renewal falling in the bucket `slowest` (le).
      const renewals = (slowest: string) => ['0.05', '5', '10', '+Inf'].map((le) => ({
        series: opSeries('pgcluster_leader_election_renew_seconds_bucket', `name="obs-pgcluster-operator",le="${le}"`),
        values: le === '+Inf' || Number(le) >= Number(slowest) ? '0+30x40' : '0x40',
      }));
      const up = (values: string) => ({ series: opSeries('up', ''), values });
      const leader = (values: string) => ({ series: opSeries('leader_election_master_status', 'name="obs-pgcluster-operator"'), values });
      const down = { namespace: 'monitoring-test' };
      const tests = {
        rule_files: ['rules.yaml'],
        evaluation_interval: '1m',
        tests: [
          { // trouble: each alert pending for its "for", then firing
            interval: '1m',
            input_series: [
              cond('Ready', 'False', '1x40'), cond('Ready', 'True', '0x40'),
              cond('Connected', 'False', '1x40'),
              cond('Degraded', 'True', '1x40'),
              { series: opSeries('controller_runtime_reconcile_errors_total', 'controller="pgcluster"'), values: '0+10x40' },
              { series: `pgcluster_invalid_payloads_total{namespace="prod",name="chat",problem="not-name-at-host",endpoint="metrics",${TARGET}}`, values: '0+300x40' },
              // Per-endpoint series: the Postgres endpoint id (kept by honorLabels), the operator's namespace.
              { series: `pgcluster_notify_queue_usage{endpoint="0a1b2c3d4e5f",namespace="monitoring-test",${TARGET}}`, values: '0.2 0.4 0.6x40' },
              { series: `pgcluster_notify_queue_usage{endpoint="99aa88bb77cc",namespace="monitoring-test",${TARGET}}`, values: '0.01x40' },
              ...renewals('10'), // every renewal between 5 and 10 s
              up('1 1 0x40'), leader('1 1'), // the operator crashes after 2 minutes: its series go stale
            ],
            alert_rule_test: [
              quiet('PgClusterNotReady', '9m'), fires('PgClusterNotReady', '11m', pc),
              quiet('PgClusterPostgresDisconnected', '4m'), fires('PgClusterPostgresDisconnected', '6m', pc),
              quiet('PgClusterBelowMinMembers', '4m'), fires('PgClusterBelowMinMembers', '6m', pc),
              quiet('PgClusterReconcileErrors', '10m'), fires('PgClusterReconcileErrors', '20m', operatorLabels),
              quiet('PgClusterInvalidPayloads', '5m'), fires('PgClusterInvalidPayloads', '15m', pc),
              quiet('PgClusterNotifyQueueFilling', '5m'), fires('PgClusterNotifyQueueFilling', '8m', { endpoint: '0a1b2c3d4e5f' }),
              quiet('PgClusterOperatorLeaseRenewalSlow', '9m'), fires('PgClusterOperatorLeaseRenewalSlow', '15m', operatorLabels),
              quiet('PgClusterOperatorDown', '1m'), quiet('PgClusterOperatorDown', '6m'), fires('PgClusterOperatorDown', '8m', down),
            ],
          },
          { // an operator up but never leading (another holder keeps the Lease), and one whose targets are all gone
            interval: '1m',
            input_series: [up('1x40'), leader('0x40')],
            alert_rule_test: [quiet('PgClusterOperatorDown', '4m'), fires('PgClusterOperatorDown', '6m', down)],
          },
          {
            interval: '1m',
            input_series: [{ series: opSeries('process_cpu_seconds_total', ''), values: '0+1x40' }],
            alert_rule_test: [quiet('PgClusterOperatorDown', '4m'), fires('PgClusterOperatorDown', '6m', down)],
          },
          { // healthy: Ready and Connected, enough members, no errors, a trickle of junk under the threshold, a leader
            interval: '1m',
            input_series: [
              cond('Ready', 'True', '1x40'), cond('Ready', 'False', '0x40'), cond('Connected', 'True', '1x40'), cond('Connected', 'False', '0x40'),
              cond('Degraded', 'False', '1x40'), cond('Degraded', 'True', '0x40'),
              { series: opSeries('controller_runtime_reconcile_errors_total', 'controller="pgcluster"'), values: '3x40' },
              { series: `pgcluster_invalid_payloads_total{namespace="prod",name="chat",problem="empty",endpoint="metrics",${TARGET}}`, values: '0+30x40' },
              { series: `pgcluster_notify_queue_usage{endpoint="0a1b2c3d4e5f",namespace="monitoring-test",${TARGET}}`, values: '0.01x40' },
              ...renewals('0.05'), // every renewal under 50 ms
              up('1x40'), leader('1x40'),
            ],
            alert_rule_test: [...rules.keys()].map((a) => quiet(a, '40m')),
          },
        ],
      };
      writeFileSync(join(dir, 'tests.yaml'), stringify(tests));
      const t = await runBin('promtool', ['test', 'rules', join(dir, 'tests.yaml')], { allowFail: true });
      assert.equal(t.code, 0, t.stdout + t.stderr);
      assert.match(t.stdout, /SUCCESS/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('every metric the dashboard and the alerts name is exported by the running operator; the condition series exist', async () => {
    await createPod(kube, ns.name, { name: 'obs-1', labels: { app: 'obs' }, ip: '10.90.0.1' });
    await createPgCluster(kube, ns.name, 'obs', { selector: { matchLabels: { app: 'obs' } }, postgres: { urlSecretRef: { name: 'db' } }, channel: `${ns.name.replace(/-/g, '_')}_obs`, heartbeatInterval: '1s', minMembers: 2 });
    const text = await waitFor(async () => {
      const t = await (await fetch(op.metricsUrl)).text();
      // Degraded True comes with the first status write, Ready True only once the listener is Connected: wait for both
      const degraded = /^pgcluster_status_condition\{[^}]*type="Degraded"[^}]*status="True"[^}]*\} 1$/m.test(t);
      const ready = /^pgcluster_status_condition\{[^}]*type="Ready"[^}]*status="True"[^}]*\} 1$/m.test(t);
      return degraded && ready && t;
    }, { message: 'pgcluster_status_condition series for the PgCluster, Ready True and Degraded True (1 member, minMembers 2)' });
    assert.match(text, new RegExp(`^pgcluster_status_condition\\{namespace="${ns.name}",name="obs",type="Ready",status="True"\\} 1$`, 'm'));
    assert.match(text, new RegExp(`^pgcluster_status_condition\\{namespace="${ns.name}",name="obs",type="Ready",status="False"\\} 0$`, 'm'));
    const have = exported(text);
    const used = new Map<string, string>();
    for (const p of dashboard.panels) for (const t of p.targets ?? []) for (const n of metricNames(t.expr).names) used.set(n, `panel "${p.title}"`);
    for (const v of dashboard.templating.list) {
      const q = typeof v.query === 'string' ? v.query : v.query?.query;
      const m = q?.match(/^label_values\((.+),\s*\w+\)$/);
      if (m?.[1]) for (const n of metricNames(m[1]).names) used.set(n, `variable ${v.name}`);
    }
    const rule = docs.find((d) => d.kind === 'PrometheusRule');
    for (const r of rule?.spec?.groups.flatMap((g) => g.rules) ?? []) for (const n of metricNames(r.expr).names) used.set(n, `alert ${r.alert}`);
    assert.ok(used.size >= 15, `the queries name ${used.size} metrics`);
    // up: Prometheus's own series, one per scrape target (PgClusterOperatorDown: is any operator target up).
    const missing = [...used].filter(([n]) => !have.has(n) && n !== 'up').map(([n, where]) => `${n} (${where})`);
    assert.deepEqual(missing, [], 'metrics named by the dashboard or the alerts that the operator does not export');
  });
});
