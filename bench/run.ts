// `npm run bench [-- [--quick|--smoke] [--profile] [--out DIR] [scenario ...]]`
//
// Runs the scenarios of issue 5 against the real stack (kube-apiserver + etcd, kwok, real Postgres, the real
// operator process), prints one table and writes the figures as JSON to bench/results/<date>-<mode>.json
// (and bench/results/latest.json), with SVG plots next to it (bench/lib/plots.ts). With PGCO_STACK_DIR, KUBECONFIG and DATABASE_URL set (`source .stack/env`,
// or under `npm test`) it uses that stack; otherwise it starts its own in a temp dir and stops it at the end.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { K8S_VERSION } from '../test/harness/kube.ts';
import { postgresBinDir } from '../test/harness/postgres.ts';
import type { BenchCtx, Mode, Scenario } from './lib/context.ts';
import { machine, Report } from './lib/report.ts';
import { mergeDocs, writePlots, type ResultsDoc } from './lib/plots.ts';
import { buildOperator, operatorEntry } from './lib/operator.ts';
import { openStack, repoRoot, type BenchStack } from './lib/stack.ts';
import { mono, say } from './lib/util.ts';
import { join as joinScenario } from './scenarios/join.ts';
import { expiry } from './scenarios/expiry.ts';
import { steady } from './scenarios/steady.ts';
import { scale } from './scenarios/scale.ts';
import { churn } from './scenarios/churn.ts';
import { pgload } from './scenarios/pgload.ts';
import { realnode } from './scenarios/realnode.ts';
import { gate } from './scenarios/gate.ts';
import { flood } from './scenarios/flood.ts';
import { leave } from './scenarios/leave.ts';
import { bystanders } from './scenarios/bystanders.ts';
import { rollout } from './scenarios/rollout.ts';

const SCENARIOS: Scenario[] = [joinScenario, expiry, steady, scale, churn, pgload, flood, leave, rollout, bystanders, realnode, gate];

const USAGE = `usage: npm run bench -- [--quick | --smoke] [--profile] [--out DIR] [scenario ...]
       npm run bench -- --plot RESULTS.json [RESULTS.json ...] [--stem NAME]

scenarios (default: all, in this order):
${SCENARIOS.map((s) => `  ${s.name.padEnd(8)} ${s.title}`).join('\n')}

  --quick    shorter windows and smaller N (a few minutes in all)
  --smoke    tiny sizes, for the bench smoke test (figures are not meaningful)
  --profile  run the operator with --cpu-prof; profiles go next to its logs
  --out DIR  where the JSON goes (default bench/results; latest.json only there, for full runs of every scenario)
  --what-if NAME  preload bench/whatif/NAME.ts into the operator: measures a proposed src/ change
             (results are marked; latest.json is not touched)
  --operator-node-options=FLAGS  NODE_OPTIONS for the operator, e.g. --operator-node-options=--max-old-space-size=256
             (marked like --what-if)
  --plot     no run: (re)renders the SVG plots of existing results files, next to the first one as
             <stem>-<plot>.svg; several files are merged, each scenario's details from the last file that has
             them. --stem NAME names them (default: the first file's name), e.g. --stem latest
`;

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      quick: { type: 'boolean', default: false },
      smoke: { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      out: { type: 'string' },
      'what-if': { type: 'string', multiple: true, default: [] },
      'operator-node-options': { type: 'string', default: '' },
      plot: { type: 'boolean', default: false },
      stem: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (values.plot) return plotOnly(positionals, values.stem);
  const mode: Mode = values.smoke ? 'smoke' : values.quick ? 'quick' : 'full';
  const unknown = positionals.filter((p) => !SCENARIOS.some((s) => s.name === p));
  if (unknown.length) {
    process.stderr.write(`unknown scenario(s): ${unknown.join(', ')}\n\n${USAGE}`);
    return 2;
  }
  const whatIf = values['what-if'] ?? [];
  const operatorNodeOptions = values['operator-node-options'] ?? '';
  for (const w of whatIf) {
    if (!existsSync(join(repoRoot, 'bench', 'whatif', `${w}.ts`))) {
      process.stderr.write(`unknown --what-if ${w}: see bench/whatif/\n`);
      return 2;
    }
  }
  // The real node needs root: a default run without it leaves those scenarios out and says so; naming one
  // explicitly fails at the stack's start with the reason.
  const root = process.getuid?.() === 0;
  const selected = positionals.length ? SCENARIOS.filter((s) => positionals.includes(s.name)) : SCENARIOS.filter((s) => root || !s.needsRealNode);
  if (!positionals.length && !root) say(`not root: leaving out ${SCENARIOS.filter((s) => s.needsRealNode).map((s) => s.name).join(', ')} (the real node needs root)`);
  const outDir = resolve(values.out ?? join(repoRoot, 'bench', 'results'));
  const defaultOut = !values.out;
  const logDir = mkdtempSync(join(tmpdir(), 'pgco-bench-logs-'));
  say(`mode ${mode}; scenarios: ${selected.map((s) => s.name).join(', ')}; operator logs in ${logDir}`);

  const report = new Report();
  const started = new Date();
  const t0 = mono();
  const load0 = loadavg();
  let stack: BenchStack | undefined;
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    say(`${sig}: stopping`);
    void (stack?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    if (whatIf.length === 0) {
      say('building the operator (tsc): the bench runs the JavaScript, as the image does');
      say(`operator: ${await buildOperator()}`);
    }
    stack = await openStack({ realNode: selected.some((s) => s.needsRealNode) });
    const ctx: BenchCtx = { stack, mode, report, logDir, profile: values.profile ?? false, whatIf, operatorNodeOptions };
    for (const s of selected) {
      const ts = mono();
      report.detail(s.name, { loadavgAtStart: loadavg() });
      say(`=== ${s.name}: ${s.title} (load average ${loadavg().map((x) => x.toFixed(2)).join(' ')})`);
      try {
        await s.run(ctx);
        say(`=== ${s.name} done in ${((mono() - ts) / 1000).toFixed(0)} s`);
      } catch (err) {
        report.fail(s.name, err);
        say(`=== ${s.name} FAILED: ${(err as Error).stack ?? err}`);
      }
      report.detail(s.name, { seconds: Math.round((mono() - ts) / 100) / 10 });
    }
  } finally {
    await stack?.stop();
  }

  const result = {
    date: started.toISOString(),
    mode,
    scenarios: selected.map((s) => s.name),
    seconds: Math.round((mono() - t0) / 1000),
    machine: { ...machine(), loadavgAtStart: load0, loadavgAtEnd: loadavg() },
    versions: { kubernetes: K8S_VERSION, postgres: postgresBinDir(), node: process.version },
    reusedStack: stack?.reused ?? false,
    git: gitState(),
    whatIf,
    operatorEntry: operatorEntry(whatIf),
    rows: report.rows,
    details: report.details,
    errors: report.errors,
  };
  mkdirSync(outDir, { recursive: true });
  const tag = [mode, ...whatIf.map((w) => `whatif-${w}`), ...(operatorNodeOptions ? ['node-options'] : [])].join('-');
  const file = join(outDir, `${started.toISOString().replace(/[:]/g, '-').replace(/\..*$/, '')}-${tag}.json`);
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  // latest.json is the latest full run of every scenario (the README's table): not a quick, partial or what-if run.
  const complete = mode === 'full' && selected.length === SCENARIOS.length;
  const latest = defaultOut && complete && whatIf.length === 0 && !operatorNodeOptions;
  if (latest) writeFileSync(join(outDir, 'latest.json'), JSON.stringify(result, null, 2) + '\n');

  process.stdout.write(`\n${report.table()}\n\n`);
  process.stdout.write(`machine: ${result.machine.cpus} x ${result.machine.cpuModel}, ${result.machine.memoryGiB} GiB; load average ${load0.map((x) => x.toFixed(2)).join(' ')} at start\n`);
  process.stdout.write(`results: ${file}\n`);
  // The JSON is written first: a plot that fails loses no figure, but fails the run.
  const plotsOk = await plots(result, file, latest ? [stemOf(file), 'latest'] : [stemOf(file)]);
  return Object.keys(report.errors).length || !plotsOk ? 1 : 0;
}

const stemOf = (file: string) => basename(file).replace(/\.json$/, '');

/** Writes the plots of `doc` next to `file` under each stem; prints their paths and any failure. */
async function plots(doc: ResultsDoc, file: string, stems: string[]): Promise<boolean> {
  const r = await writePlots(doc, file, stems).catch((err: unknown) => ({ written: [], errors: [{ name: 'all', error: (err as Error).stack ?? String(err) }] }));
  for (const f of r.written) process.stdout.write(`plot: ${f}\n`);
  for (const e of r.errors) process.stderr.write(`plot ${e.name} FAILED: ${e.error}\n`);
  if (!r.written.length && !r.errors.length) process.stdout.write('plots: none (no scenario with plotted data)\n');
  return r.errors.length === 0;
}

/** `--plot FILE...`: the plots of existing results files, without running anything. */
async function plotOnly(files: string[], stem: string | undefined): Promise<number> {
  if (!files.length) {
    process.stderr.write(`--plot needs at least one results file\n\n${USAGE}`);
    return 2;
  }
  const docs = files.map((f) => JSON.parse(readFileSync(f, 'utf8')) as ResultsDoc);
  const first = resolve(files[0]!);
  return (await plots(mergeDocs(docs), first, [stem ?? stemOf(first)])) ? 0 : 1;
}

/** The commit the operator under test was run from, and whether src/ had uncommitted changes. */
function gitState(): { commit: string; srcDirty: boolean } | undefined {
  const git = (args: string[]) => spawnSync('git', args, { cwd: repoRoot, encoding: 'utf8' });
  const head = git(['rev-parse', 'HEAD']);
  if (head.status !== 0) return undefined;
  return { commit: head.stdout.trim(), srcDirty: git(['status', '--porcelain', '--', 'src']).stdout.trim() !== '' };
}

process.exitCode = await main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? err}\n`);
  return 1;
});
// Informers and timers of finished scenarios must not keep us alive.
process.exit(process.exitCode);
