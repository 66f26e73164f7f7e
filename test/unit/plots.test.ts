// bench/lib/plots.ts on small hand-made results documents: the CDF points, which plots exist for which data,
// what goes into each spec, and one render to SVG (vega without a browser).
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { DOMParser } from '@xmldom/xmldom';
import { cdf, fanOutFloor, fleetPoints, latencySeries, mergeDocs, plotSpecs, postgresLoadBars, renderSvg, writePlots, type ResultsDoc } from '../../bench/lib/plots.ts';

const joinDetails = {
  members: 100,
  floorFanOutMs: { n: 3, p50: 114.4 },
  samples: { joins: [120, 100, 300], leaves: [90, 110], configMapJoins: [5, 7, 6], configMapLeaves: [4, 8] },
};
const pgloadDetails = {
  baselineTps: 1000,
  phases: [
    { key: 'none', connections: 0, notifyCommitsPerS: 0, oltp: { tps: 1000 } },
    { key: 'libcluster_100', connections: 200, notifyCommitsPerS: 20, oltp: { tps: 800 } },
    { key: 'operator_100', connections: 2, notifyCommitsPerS: 0.2, oltp: { tps: 990 } },
    { key: 'none_after', connections: 0, notifyCommitsPerS: 0, oltp: { tps: 1000 } },
  ],
};
const full: ResultsDoc = {
  date: '2026-11-26T20:33:00.000Z',
  mode: 'full',
  details: {
    join: joinDetails,
    pgload: pgloadDetails,
    steady: { pods: 1000, rssMB: 215, peakRssMB: 220, cpuPercent: 1 },
    scale: { pods: 10000, steady: { rssMB: 370, peakRssMB: 372, cpuPercent: 5.5 } },
  },
};

describe('cdf', () => {
  test('sorted values, each step up by 1/n, starting from 0 at the smallest', () => {
    assert.deepEqual(cdf([30, 10, 20, 40]), [
      { ms: 10, fraction: 0 }, { ms: 10, fraction: 0.25 }, { ms: 20, fraction: 0.5 }, { ms: 30, fraction: 0.75 }, { ms: 40, fraction: 1 },
    ]);
  });
  test('ties make one vertical step each; non-finite values are left out; no values, no points', () => {
    assert.deepEqual(cdf([5, 5, Number.NaN]).map((p) => p.fraction), [0, 0.5, 1]);
    assert.deepEqual(cdf([]), []);
  });
});

describe('what each plot is built from', () => {
  test('latency series: join scenario samples and realnode events, by kind', () => {
    const doc: ResultsDoc = {
      details: {
        join: joinDetails,
        realnode: { pods: 12, events: [{ kind: 'join', api: 50, annotation: 200, configmap: 210, cluster: 0 }, { kind: 'leave', api: 300, annotation: 400, configmap: 380, cluster: 70 }] },
      },
    };
    const s = latencySeries(doc);
    const of = (kind: string, series: string) => s.find((x) => x.kind === kind && x.series === series)?.values;
    assert.deepEqual(of('join', 'annotations in the API (100 pods)'), [120, 100, 300]);
    assert.deepEqual(of('leave', 'annotations in the API (100 pods)'), [90, 110]);
    assert.deepEqual(of('join', 'ConfigMap in the API'), [5, 7, 6]);
    assert.deepEqual(of('join', 'real node: cluster connection (Node.list)'), [0]);
    assert.deepEqual(of('leave', 'real node: mounted annotation file'), [400]);
    assert.equal(s.length, 12);
    assert.deepEqual(fanOutFloor(doc), { ms: 114.4, label: 'fan-out floor (100 PATCHes): 114 ms' });
  });

  test('postgres load: libcluster_postgres and the operator per size; OLTP kept against the baseline; no-discovery phases left out', () => {
    const bars = postgresLoadBars(full);
    assert.equal(bars.length, 6);
    const bar = (who: string, measure: string) => bars.find((b) => b.who === who && b.measure === measure);
    assert.equal(bar('libcluster_postgres', 'connections held')?.value, 200);
    assert.equal(bar('operator', 'connections held')?.value, 2);
    assert.equal(bar('operator', 'NOTIFY commits/s')?.text, '0.2');
    assert.equal(bar('libcluster_postgres', 'OLTP throughput kept (% of no discovery)')?.value, 80);
    assert.equal(bar('operator', 'OLTP throughput kept (% of no discovery)')?.text, '99 %');
    assert.ok(bars.every((b) => b.members === '100 members'));
  });

  test('fleet footprint: steady and scale by pods, RSS, peak RSS and CPU', () => {
    const p = fleetPoints(full);
    assert.deepEqual(p.map((x) => [x.pods, x.series, x.value]), [
      [1000, 'RSS, steady window', 215], [1000, 'peak RSS (VmHWM)', 220], [1000, 'CPU, steady window', 1],
      [10000, 'RSS, steady window', 370], [10000, 'peak RSS (VmHWM)', 372], [10000, 'CPU, steady window', 5.5],
    ]);
  });

  test('a plot only when its data is there: never an empty plot', () => {
    assert.deepEqual(plotSpecs(full).map((p) => p.name), ['latency-cdf', 'postgres-load', 'fleet-footprint']);
    assert.deepEqual(plotSpecs({ details: { steady: full.details.steady } }).map((p) => p.name), ['fleet-footprint']);
    // A join scenario that failed before its samples, a flood run, an empty run: nothing to plot.
    assert.deepEqual(plotSpecs({ details: { join: { loadavgAtStart: [1, 1, 1], seconds: 3 }, flood: { unpaced: {} } } }), []);
    assert.deepEqual(plotSpecs({ details: { pgload: { baselineTps: 1000, phases: [{ key: 'none', connections: 0 }] } } }), []);
    assert.deepEqual(plotSpecs({ details: {} }), []);
  });

  test('the CDF spec holds the floor as a rule and both kinds as panels', () => {
    const spec = JSON.stringify(plotSpecs(full)[0]!.spec);
    assert.match(spec, /"title":"join"/);
    assert.match(spec, /"title":"leave"/);
    assert.match(spec, /"type":"rule"/);
    assert.match(spec, /fan-out floor \(100 PATCHes\): 114 ms/);
    const noFloor = JSON.stringify(plotSpecs({ details: { join: { ...joinDetails, floorFanOutMs: undefined } } })[0]!.spec);
    assert.doesNotMatch(noFloor, /"type":"rule"/);
  });

  test('merged documents: each scenario from the last file that has it, and the run it came from', () => {
    const m = mergeDocs([full, { date: '2026-11-29T17:00:18.000Z', mode: 'full', details: { join: { members: 5 }, realnode: { pods: 12 } } }]);
    assert.equal((m.details.join as { members: number }).members, 5);
    assert.equal(m.details.pgload, pgloadDetails);
    assert.equal(m.sources?.pgload, '2026-11-26 20:33 UTC, full');
    assert.equal(m.sources?.realnode, '2026-11-29 17:00 UTC, full');
  });
});

describe('rendering', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgco-plots-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('every plot renders to SVG that parses as XML and names its series', async () => {
    const out = await writePlots(full, join(dir, 'run-full.json'), ['run-full', 'latest']);
    assert.deepEqual(out.errors, []);
    assert.deepEqual(readdirSync(dir).sort(), ['latest-fleet-footprint.svg', 'latest-latency-cdf.svg', 'latest-postgres-load.svg',
      'run-full-fleet-footprint.svg', 'run-full-latency-cdf.svg', 'run-full-postgres-load.svg']);
    const texts = (file: string) => {
      const doc = new DOMParser({ onError: (level, msg) => { throw new Error(`${file}: ${level} ${msg}`); } }).parseFromString(readFileSync(join(dir, file), 'utf8'), 'image/svg+xml');
      assert.equal(doc.documentElement?.nodeName, 'svg');
      return Array.from(doc.getElementsByTagName('text')).map((t) => t.textContent ?? '');
    };
    const cdfText = texts('run-full-latency-cdf.svg');
    for (const want of ['join', 'leave', 'annotations in the API (100 pods)', 'ConfigMap in the API', 'fan-out floor (100 PATCHes): 114 ms']) assert.ok(cdfText.includes(want), `${want} in ${cdfText.join(' | ')}`);
    const pgText = texts('run-full-postgres-load.svg');
    for (const want of ['libcluster_postgres', 'operator', 'connections held', 'NOTIFY commits/s', '200', '2']) assert.ok(pgText.includes(want), `${want} in ${pgText.join(' | ')}`);
    const fleetText = texts('run-full-fleet-footprint.svg');
    for (const want of ['operator RSS', 'operator CPU', 'steady, 1000 pods', 'scale, 10000 pods']) assert.ok(fleetText.includes(want), `${want} in ${fleetText.join(' | ')}`);
  });

  test('a spec vega cannot compile is an error, not an empty file', async () => {
    await assert.rejects(renderSvg({ mark: 'nonsense', data: { values: [] } } as never));
  });
});
