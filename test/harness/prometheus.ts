// A real Prometheus server (built by scripts/build-binaries.sh prometheus) for the monitoring test: loopback
// only, its configuration and rule files written to a dir of its own, its TSDB removed when it stops. Its
// HTTP API is what the test reads: /api/v1/query, /api/v1/alerts, /api/v1/targets. A new configuration is
// loaded with POST /-/reload (--web.enable-lifecycle), which answers once it is in force.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { freePort, startOwnedProc, waitReady, type Proc } from './proc.ts';
import { Teardown } from './teardown.ts';
import type { ScrapeConfig } from './prometheus-operator.ts';

export interface PrometheusOpts {
  /** The prometheus executable (the stack's bin dir has it). */
  binary: string;
  /** Where its configuration, rule files, TSDB and log go. */
  dir: string;
  /** global: scrape_interval and evaluation_interval (short in tests: alerts' `for` is counted in evaluations). */
  scrapeInterval: string;
  evaluationInterval: string;
  scrapeConfigs: ScrapeConfig[];
  /** Rule files by name, each `{ groups: [...] }` (a PrometheusRule's spec, as the Prometheus Operator writes it). */
  ruleFiles: Record<string, unknown>;
}

export interface Sample { metric: Record<string, string>; value: [number, string] }
export interface Alert { labels: Record<string, string>; annotations: Record<string, string>; state: 'pending' | 'firing'; activeAt: string; value: string }
export interface Target { labels: Record<string, string>; discoveredLabels: Record<string, string>; health: string; lastError: string; scrapePool: string; scrapeUrl: string }

export interface PrometheusServer {
  /** http://127.0.0.1:<port> */
  url: string;
  proc: Proc;
  logFile: string;
  /** An instant query now; throws on a PromQL error. */
  query(expr: string): Promise<Sample[]>;
  /** The values of a label among the series matching `match` (what Grafana's label_values() asks). */
  labelValues(label: string, match: string): Promise<string[]>;
  /** Pending and firing alerts (resolved ones are gone). */
  alerts(): Promise<Alert[]>;
  activeTargets(): Promise<Target[]>;
  /** Writes new scrape configs and reloads; resolves once Prometheus has applied them. */
  setScrapeConfigs(configs: ScrapeConfig[]): Promise<void>;
  stop(): Promise<void>;
}

interface ApiAnswer<T> { status: string; data: T; error?: string; errorType?: string }

async function api<T>(base: string, path: string, params: Record<string, string> = {}): Promise<T> {
  const qs = new URLSearchParams(params).toString();
  const res = await fetch(`${base}${path}${qs ? `?${qs}` : ''}`, { signal: AbortSignal.timeout(10_000) });
  const body = await res.json() as ApiAnswer<T>;
  if (body.status !== 'success') throw new Error(`Prometheus ${path} ${JSON.stringify(params)}: ${body.errorType ?? res.status}: ${body.error ?? ''}`);
  return body.data;
}

export async function startPrometheus(opts: PrometheusOpts): Promise<PrometheusServer> {
  const dir = resolve(opts.dir);
  mkdirSync(dir, { recursive: true });
  const configFile = join(dir, 'prometheus.yml');
  const ruleFiles = Object.keys(opts.ruleFiles).map((name) => join(dir, name));
  const writeConfig = (scrapeConfigs: ScrapeConfig[]) => writeFileSync(configFile, stringify({
    global: { scrape_interval: opts.scrapeInterval, evaluation_interval: opts.evaluationInterval },
    rule_files: ruleFiles,
    scrape_configs: scrapeConfigs,
  }));
  const td = new Teardown('Prometheus');
  return td.unwindOnError(async () => {
    for (const [name, content] of Object.entries(opts.ruleFiles)) writeFileSync(join(dir, name), stringify(content));
    writeConfig(opts.scrapeConfigs);
    const data = join(dir, 'data');
    td.push('remove its TSDB', () => rmSync(data, { recursive: true, force: true }));
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const logFile = join(dir, 'prometheus.log');
    const procs: Proc[] = [];
    const proc = startOwnedProc(td, procs, 'prometheus', opts.binary, [
      `--config.file=${configFile}`, `--storage.tsdb.path=${data}`, `--web.listen-address=127.0.0.1:${port}`,
      '--web.enable-lifecycle', '--storage.tsdb.retention.time=1h', '--log.level=info',
    ], { logFile, deathSignal: 'TERM' });
    await waitReady(proc, 'ready (/-/ready)', async () => (await fetch(`${url}/-/ready`)).ok, 60_000);
    return {
      url, proc, logFile,
      query: async (expr) => (await api<{ resultType: string; result: Sample[] }>(url, '/api/v1/query', { query: expr })).result,
      labelValues: (label, match) => api<string[]>(url, `/api/v1/label/${label}/values`, { 'match[]': match }),
      alerts: async () => (await api<{ alerts: Alert[] }>(url, '/api/v1/alerts')).alerts,
      activeTargets: async () => (await api<{ activeTargets: Target[] }>(url, '/api/v1/targets', { state: 'active' })).activeTargets,
      setScrapeConfigs: async (configs) => {
        writeConfig(configs);
        const res = await fetch(`${url}/-/reload`, { method: 'POST', signal: AbortSignal.timeout(30_000) });
        if (!res.ok) throw new Error(`Prometheus refused the new configuration: ${res.status} ${await res.text()}`);
      },
      stop: () => td.run(),
    };
  });
}
