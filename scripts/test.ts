// `npm test [-- <files|dirs|globs> <node --test options>]`: typecheck, start a fresh test stack in a temp
// dir, run the tests against it with node's test runner, stop the stack, exit with the runner's code.
// Nothing is skipped: a missing prerequisite (Postgres binaries, Go, a failed build) fails the run.
import { spawn } from 'node:child_process';
import { existsSync, globSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSlowWaits, sweepLogs } from '../test/harness/after-run.ts';
import { startStack, type Stack } from '../test/harness/stack.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DEFAULT_GLOBS = ['test/unit/**/*.test.ts', 'test/e2e/**/*.test.ts'];

const secs = (t0: number) => `${((Date.now() - t0) / 1000).toFixed(1)}s`;
const say = (msg: string) => console.error(`[npm test] ${msg}`);

function selectFiles(args: string[]): string[] {
  const patterns = args.length ? args : DEFAULT_GLOBS;
  const files = new Set<string>();
  for (const p of patterns) {
    const abs = resolve(repoRoot, p);
    let found: string[];
    if (existsSync(abs) && statSync(abs).isDirectory()) found = globSync('**/*.test.ts', { cwd: abs }).map((f) => join(abs, f));
    else if (existsSync(abs)) found = [abs];
    else found = globSync(p, { cwd: repoRoot }).map((f) => resolve(repoRoot, f));
    // An explicit filter that matches nothing is a typo, not an empty suite.
    if (found.length === 0 && args.length) throw new Error(`no test files match ${p}`);
    for (const f of found) files.add(relative(repoRoot, f));
  }
  if (files.size === 0) throw new Error(`no test files found (${patterns.join(', ')})`);
  return [...files].sort();
}

/** Stops the stack; says what failed to stop (each step is tried), and answers whether all of it stopped. */
async function stopStack(stack: Stack): Promise<boolean> {
  try {
    await stack.stop();
    return true;
  } catch (e) {
    say(`FAILED: stopping the stack: ${(e as Error).message}`);
    return false;
  }
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): { done: Promise<number>; kill(sig: NodeJS.Signals): void } {
  const child = spawn(cmd, args, { stdio: 'inherit', env, cwd: repoRoot });
  const done = new Promise<number>((res) => {
    child.on('exit', (code, sig) => res(code ?? (sig ? 128 + 15 : 1)));
    child.on('error', (e) => { console.error(`${cmd}: ${e.message}`); res(1); });
  });
  return { done, kill: (sig) => { child.kill(sig); } };
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const nodeOpts = argv.filter((a) => a.startsWith('--'));
  const files = selectFiles(argv.filter((a) => !a.startsWith('--')));
  const needStack = files.some((f) => !f.startsWith('test/unit/'));
  // The real node (kubelet, containerd) only for the tests that run pods on it.
  const realNode = files.some((f) => f.startsWith('test/e2e/real-node/'));

  // Typecheck and stack start overlap: both take a while and neither needs the other.
  const tTypecheck = Date.now();
  say('typecheck: tsc -p tsconfig.json --noEmit');
  const tsc = run(process.execPath, [join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json', '--noEmit'], process.env);
  let tscAborted = false;
  const typecheck = tsc.done.then((code) => {
    if (!tscAborted) say(`typecheck ${code === 0 ? 'ok' : 'FAILED'} (${secs(tTypecheck)})`);
    return code;
  });
  const abortTsc = () => { tscAborted = true; tsc.kill('SIGTERM'); };

  let stack: Stack | undefined;
  let stackDir: string | undefined;
  let testRun: ReturnType<typeof run> | undefined;
  let stopping = false;
  for (const [sig, n] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]] as const) {
    process.on(sig, () => {
      if (stopping) return;
      stopping = true;
      say(`${sig}: stopping tests and the stack`);
      testRun?.kill(sig);
      abortTsc();
      // Servers still starting are not in `stack` yet: their parent-death signal takes them down on exit.
      void (stack ? stopStack(stack) : Promise.resolve()).finally(() => {
        if (stackDir) say(`interrupted; stack logs in ${stackDir}`);
        process.exit(128 + n);
      });
    });
  }

  if (needStack) {
    const tStack = Date.now();
    stackDir = mkdtempSync(join(tmpdir(), 'pgco-test-'));
    say(`starting the test stack in ${stackDir}`);
    try {
      stack = await startStack({ dir: stackDir, realNode });
    } catch (e) {
      abortTsc();
      console.error(`\n[npm test] FAILED: ${(e as Error).message}\n[npm test] logs: ${stackDir}`);
      return 1;
    }
    say(`stack up in ${secs(tStack)}: ${stack.kube.server}, postgres :${stack.postgres.port}`);
  }

  if ((await typecheck) !== 0) {
    if (stack) await stopStack(stack);
    console.error('[npm test] FAILED: typecheck errors above');
    return 1;
  }

  const tTests = Date.now();
  const slowWaits = join(mkdtempSync(join(tmpdir(), 'pgco-slow-waits-')), 'waits.jsonl');
  const args = ['--test', '--test-reporter=spec', '--test-concurrency=2', '--test-timeout=300000', ...nodeOpts, ...files];
  say(`node ${args.join(' ')}`);
  testRun = run(process.execPath, args, { ...process.env, ...stack?.env, PGCO_SLOW_WAITS: slowWaits });
  let code = await testRun.done;
  if (stopping) await new Promise((r) => setTimeout(r, 60_000)); // the signal handler exits
  say(`tests ${code === 0 ? 'passed' : `FAILED (exit ${code})`} in ${secs(tTests)}`);
  const waits = readSlowWaits(slowWaits);
  rmSync(dirname(slowWaits), { recursive: true, force: true });
  say(`slow waits (passed, but took over half their timeout): ${waits.length}`);
  for (const w of waits.slice(0, 20)) say(`  ${w.tookMs} of ${w.timeoutMs} ms: ${w.message.slice(0, 200)} (${relative(repoRoot, w.file)})`);
  // A server of the stack that died (a kubelet panic, an OOM kill) fails every test after it with a symptom
  // ("pod not Ready"); say the cause, and fail the run even if no test noticed.
  for (const report of stack?.dead() ?? []) {
    say(`FAILED: a stack process died while the tests ran: ${report}`);
    code ||= 1;
  }
  if (stackDir && stack) {
    const leaks = sweepLogs(join(stackDir, 'operator-logs'), stack.env.DATABASE_URL ?? '');
    say(`log sweep: ${leaks.files} operator log(s) read, ${leaks.found.length ? `FAILED: a secret in ${leaks.found.join('; ')}` : 'no secret in any'}`);
    if (leaks.found.length && code === 0) code = 1;
  }

  if (stack && stackDir) {
    if (!await stopStack(stack)) code ||= 1;
    // Keep the process logs of a failed run to read; a passing run leaves nothing behind.
    if (code === 0) rmSync(stackDir, { recursive: true, force: true });
    else {
      rmSync(join(stackDir, 'etcd-data'), { recursive: true, force: true });
      say(`stack logs kept in ${stackDir}`);
    }
  }
  return code;
}

try {
  process.exitCode = await main();
} catch (e) {
  console.error(`[npm test] FAILED: ${(e as Error).message}`);
  process.exitCode = 1;
}
