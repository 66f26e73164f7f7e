// Plots of a results document (the JSON `npm run bench` writes), rendered server-side: vega-lite specs,
// compiled to vega, drawn by a headless vega View to SVG (no browser, no canvas). Each plot is built only
// when the run has its data:
//   latency-cdf      CDFs of join and leave latency (API objects from the join scenario; API, mounted files
//                    and cluster connection from the realnode scenario), the fan-out floor as a rule
//   postgres-load    libcluster_postgres vs the operator (pgload): connections, NOTIFY commits/s, OLTP kept
//   fleet-footprint  operator RSS and CPU against fleet size (steady, scale)
import { writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export interface ResultsDoc {
  date?: string;
  mode?: string;
  details: Record<string, unknown>;
  /** For merged documents (mergeDocs): each scenario's run, e.g. "2026-11-26 20:33 UTC, full". */
  sources?: Record<string, string>;
}

export interface Plot {
  /** Part of the file name: `<stem>-<name>.svg`. */
  name: string;
  spec: TopLevelSpec;
}

export interface CdfPoint { ms: number; fraction: number }

/** The empirical CDF as the corners of a step line: (x_1, 0), then (x_i, i/n) for the sorted values. */
export function cdf(values: number[]): CdfPoint[] {
  const s = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (!s.length) return [];
  return [{ ms: s[0]!, fraction: 0 }, ...s.map((ms, i) => ({ ms, fraction: (i + 1) / s.length }))];
}

export interface LatencySeries { kind: 'join' | 'leave'; series: string; values: number[] }

const obj = (v: unknown): Record<string, unknown> | undefined => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);
const nums = (v: unknown): number[] => (Array.isArray(v) ? v.filter((x): x is number => typeof x === 'number' && Number.isFinite(x)) : []);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** Every per-event latency list the document holds, by kind (join / leave) and series. */
export function latencySeries(doc: ResultsDoc): LatencySeries[] {
  const out: LatencySeries[] = [];
  const add = (kind: 'join' | 'leave', series: string, values: number[]) => { if (values.length) out.push({ kind, series, values }); };
  const join = obj(doc.details.join);
  const samples = obj(join?.samples);
  if (samples) {
    const pods = num(join?.members);
    add('join', `annotations in the API${pods ? ` (${pods} pods)` : ''}`, nums(samples.joins));
    add('leave', `annotations in the API${pods ? ` (${pods} pods)` : ''}`, nums(samples.leaves));
    add('join', 'ConfigMap in the API', nums(samples.configMapJoins));
    add('leave', 'ConfigMap in the API', nums(samples.configMapLeaves));
  }
  const real = obj(doc.details.realnode);
  const events = Array.isArray(real?.events) ? (real.events as unknown[]).map(obj).filter((e) => e !== undefined) : [];
  if (events.length) {
    const pods = num(real?.pods);
    const views: [string, string][] = [
      ['api', `real node: annotations in the API${pods ? ` (${pods} pods)` : ''}`],
      ['annotation', 'real node: mounted annotation file'],
      ['configmap', 'real node: mounted ConfigMap file'],
      ['cluster', 'real node: cluster connection (Node.list)'],
    ];
    for (const kind of ['join', 'leave'] as const) {
      const mine = events.filter((e) => e.kind === kind);
      for (const [field, series] of views) add(kind, series, nums(mine.map((e) => e[field])));
    }
  }
  return out;
}

/** The join scenario's fan-out floor: p50 of one PATCH per member at the operator's concurrency. */
export function fanOutFloor(doc: ResultsDoc): { ms: number; label: string } | undefined {
  const join = obj(doc.details.join);
  const ms = num(obj(join?.floorFanOutMs)?.p50);
  if (ms === undefined) return undefined;
  const pods = num(join?.members);
  return { ms, label: `fan-out floor${pods ? ` (${pods} PATCHes)` : ''}: ${ms.toFixed(0)} ms` };
}

export function latencyCdfSpec(doc: ResultsDoc): TopLevelSpec | undefined {
  const series = latencySeries(doc);
  if (!series.length) return undefined;
  const floor = fanOutFloor(doc);
  const points = series.flatMap((s) => cdf(s.values).map((p) => ({ kind: s.kind, series: s.series, ms: Math.max(p.ms, 0), fraction: p.fraction })));
  const max = Math.max(...points.map((p) => p.ms), floor?.ms ?? 0);
  const ticks = [0, 1, 3, 10, 30, 100, 300, 1000, 3000, 10_000, 30_000, 100_000].filter((t, i, all) => t <= max || all[i - 1]! < max);
  const color = { field: 'series', type: 'nominal', title: null, legend: { orient: 'bottom', columns: 2, labelLimit: 400 } } as const;
  const panel = (kind: 'join' | 'leave') => ({
    title: kind,
    width: 380,
    height: 260,
    layer: [
      {
        data: { values: points.filter((p) => p.kind === kind) },
        mark: { type: 'line', interpolate: 'step-after', strokeWidth: 1.75 },
        encoding: {
          x: { field: 'ms', type: 'quantitative', title: `${kind} latency (ms, symlog scale)`, scale: { type: 'symlog', constant: 1 }, axis: { values: ticks } },
          y: { field: 'fraction', type: 'quantitative', title: 'fraction of events', scale: { domain: [0, 1] } },
          color,
        },
      },
      ...(floor ? [
        { data: { values: [floor] }, mark: { type: 'rule', strokeDash: [4, 3], color: '#555' }, encoding: { x: { field: 'ms', type: 'quantitative' } } },
        { data: { values: [floor] }, mark: { type: 'text', align: 'left', dx: 4, y: 6, baseline: 'top', color: '#333', fontSize: 10 }, encoding: { x: { field: 'ms', type: 'quantitative' }, text: { field: 'label' } } },
      ] : []),
    ],
  });
  const kinds = (['join', 'leave'] as const).filter((k) => points.some((p) => p.kind === k));
  return top(`Join and leave latency, empirical CDF${subtitle(doc, ['join', 'realnode'])}`, {
    hconcat: kinds.map(panel),
    resolve: { scale: { color: 'shared', x: 'shared' } },
  });
}

export interface PgLoadBar { members: string; who: 'libcluster_postgres' | 'operator'; measure: string; value: number; text: string }

/** libcluster_postgres vs the operator per fleet size: connections, NOTIFY commits/s, OLTP throughput kept. */
export function postgresLoadBars(doc: ResultsDoc): PgLoadBar[] {
  const pg = obj(doc.details.pgload);
  const phases = Array.isArray(pg?.phases) ? (pg.phases as unknown[]).map(obj).filter((p) => p !== undefined) : [];
  const base = num(pg?.baselineTps);
  const out: PgLoadBar[] = [];
  for (const p of phases) {
    const m = /^(libcluster|operator)_(\d+)$/.exec(String(p.key));
    if (!m) continue;
    const who = m[1] === 'libcluster' ? 'libcluster_postgres' : 'operator';
    const members = `${m[2]} members`;
    const connections = num(p.connections);
    const commits = num(p.notifyCommitsPerS);
    const tps = num(obj(p.oltp)?.tps);
    if (connections !== undefined) out.push({ members, who, measure: 'connections held', value: connections, text: connections.toFixed(0) });
    if (commits !== undefined) out.push({ members, who, measure: 'NOTIFY commits/s', value: commits, text: commits < 10 ? commits.toFixed(1) : commits.toFixed(0) });
    if (tps !== undefined && base) {
      const kept = (tps / base) * 100;
      out.push({ members, who, measure: 'OLTP throughput kept (% of no discovery)', value: kept, text: `${kept < 10 ? kept.toFixed(1) : kept.toFixed(0)} %` });
    }
  }
  return out;
}

export function postgresLoadSpec(doc: ResultsDoc): TopLevelSpec | undefined {
  const bars = postgresLoadBars(doc);
  if (!bars.length) return undefined;
  const measures = [...new Set(bars.map((b) => b.measure))];
  const panel = (measure: string) => ({
    title: measure,
    width: 220,
    height: 220,
    data: { values: bars.filter((b) => b.measure === measure) },
    encoding: {
      x: { field: 'members', type: 'nominal', title: null, sort: null, axis: { labelAngle: 0 } },
      xOffset: { field: 'who', type: 'nominal', sort: ['libcluster_postgres', 'operator'] },
      y: { field: 'value', type: 'quantitative', title: null },
      color: { field: 'who', type: 'nominal', title: null, sort: ['libcluster_postgres', 'operator'], legend: { orient: 'bottom' } },
    },
    layer: [{ mark: { type: 'bar' } }, { mark: { type: 'text', dy: -6, fontSize: 10 }, encoding: { text: { field: 'text' } } }],
  });
  return top(`Load on Postgres: libcluster_postgres vs the operator${subtitle(doc, ['pgload'])}`, { hconcat: measures.map(panel), resolve: { scale: { color: 'shared' } } });
}

export interface FleetPoint { scenario: string; label: string; pods: number; measure: 'RSS (MB)' | 'CPU (% of one core)'; series: string; value: number }

/** Operator RSS and CPU in the steady window of each scenario that ran a fleet, by its size in pods. */
export function fleetPoints(doc: ResultsDoc): FleetPoint[] {
  const out: FleetPoint[] = [];
  const from = (scenario: string, pods: number | undefined, r: Record<string, unknown> | undefined) => {
    if (pods === undefined || !r) return;
    const add = (measure: FleetPoint['measure'], series: string, v: unknown) => { const value = num(v); if (value !== undefined) out.push({ scenario, label: `${scenario}, ${pods} pods`, pods, measure, series, value }); };
    add('RSS (MB)', 'RSS, steady window', r.rssMB);
    add('RSS (MB)', 'peak RSS (VmHWM)', r.peakRssMB);
    add('CPU (% of one core)', 'CPU, steady window', r.cpuPercent);
  };
  const steady = obj(doc.details.steady);
  from('steady', num(steady?.pods), steady);
  const scale = obj(doc.details.scale);
  from('scale', num(scale?.pods), obj(scale?.steady));
  return out.sort((a, b) => a.pods - b.pods);
}

export function fleetFootprintSpec(doc: ResultsDoc): TopLevelSpec | undefined {
  const points = fleetPoints(doc);
  if (!points.length) return undefined;
  const pods = points.map((p) => p.pods);
  const log = Math.max(...pods) / Math.min(...pods) >= 10;
  const panel = (measure: FleetPoint['measure']) => ({
    title: measure === 'RSS (MB)' ? 'operator RSS' : 'operator CPU',
    width: 300,
    height: 220,
    data: { values: points.filter((p) => p.measure === measure) },
    encoding: {
      x: { field: 'pods', type: 'quantitative', title: `fleet size (pods${log ? ', log scale' : ''})`, scale: log ? { type: 'log', padding: 30 } : { zero: false, padding: 30 } },
      y: { field: 'value', type: 'quantitative', title: measure },
      color: { field: 'series', type: 'nominal', title: null, legend: { orient: 'bottom' } },
    },
    layer: [
      { mark: { type: 'line', point: true } },
      // One label per point: the peak RSS sits on top of the RSS.
      { transform: [{ filter: "datum.series !== 'peak RSS (VmHWM)'" }], mark: { type: 'text', dy: -10, fontSize: 10 }, encoding: { text: { field: 'label' } } },
    ],
  });
  const measures = (['RSS (MB)', 'CPU (% of one core)'] as const).filter((m) => points.some((p) => p.measure === m));
  return top(`Operator footprint against fleet size${subtitle(doc, ['steady', 'scale'])}`, { hconcat: measures.map(panel), resolve: { scale: { color: 'independent' } } });
}

/** The plots this document has data for, in a stable order. */
export function plotSpecs(doc: ResultsDoc): Plot[] {
  const out: Plot[] = [];
  for (const [name, build] of [['latency-cdf', latencyCdfSpec], ['postgres-load', postgresLoadSpec], ['fleet-footprint', fleetFootprintSpec]] as const) {
    const spec = build(doc);
    if (spec) out.push({ name, spec });
  }
  return out;
}

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export interface PlotOutcome { written: string[]; errors: { name: string; error: string }[] }

/**
 * Renders every plot of `doc` and writes it as `<stem>-<name>.svg` into `dir` for each of `stems` (default:
 * next to `jsonFile`, under its stem). A plot that fails is reported and does not stop the others.
 */
export async function writePlots(doc: ResultsDoc, jsonFile: string, stems: string[] = [basename(jsonFile).replace(/\.json$/, '')]): Promise<PlotOutcome> {
  const dir = dirname(jsonFile);
  const outcome: PlotOutcome = { written: [], errors: [] };
  for (const p of plotSpecs(doc)) {
    try {
      const svg = await renderSvg(p.spec);
      for (const stem of stems) {
        const file = join(dir, `${stem}-${p.name}.svg`);
        writeFileSync(file, svg.endsWith('\n') ? svg : `${svg}\n`);
        outcome.written.push(file);
      }
    } catch (err) {
      outcome.errors.push({ name: p.name, error: (err as Error).stack ?? String(err) });
    }
  }
  return outcome;
}

/** Several results documents as one: each scenario's details from the last document that has them. */
export function mergeDocs(docs: ResultsDoc[]): ResultsDoc {
  if (docs.length === 1) return docs[0]!;
  const details: Record<string, unknown> = {};
  const sources: Record<string, string> = {};
  for (const d of docs) {
    for (const [s, v] of Object.entries(d.details)) {
      details[s] = v;
      sources[s] = runOf(d);
    }
  }
  return { details, sources };
}

const runOf = (doc: ResultsDoc) => (doc.date ? `${doc.date.slice(0, 16).replace('T', ' ')} UTC${doc.mode ? `, ${doc.mode}` : ''}` : '');

/** The run(s) a plot's data comes from, for its title. */
function subtitle(doc: ResultsDoc, scenarios: string[]): string {
  const runs = doc.sources ? [...new Set(scenarios.filter((s) => s in doc.details).map((s) => doc.sources![s]!).filter((r) => r))] : [runOf(doc)].filter((r) => r);
  return runs.length ? ` — ${runs.join('; ')}` : '';
}

function top(title: string, body: Record<string, unknown>): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, anchor: 'start', fontSize: 14 },
    config: { font: 'Helvetica, Arial, sans-serif', view: { stroke: '#ddd' } },
    ...body,
  } as TopLevelSpec;
}
