// What every scenario gets: the stack, the mode, the report, and where logs and profiles go.
import type { Report } from './report.ts';
import type { BenchStack } from './stack.ts';
import { join } from 'node:path';
import { startOperator, type OperatorProc } from './operator.ts';
import { repoRoot } from './stack.ts';

export type Mode = 'full' | 'quick' | 'smoke';

export interface BenchCtx {
  stack: BenchStack;
  mode: Mode;
  report: Report;
  /** Operator logs (and CPU profiles with --profile) go here. */
  logDir: string;
  profile: boolean;
  /** Preloads from bench/whatif/ for the operator process: experiments that measure a proposed src/ change. */
  whatIf: string[];
  /** NODE_OPTIONS for the operator process (e.g. V8 heap flags), from --operator-node-options. */
  operatorNodeOptions: string;
}

export function pick<T>(mode: Mode, values: { full: T; quick: T; smoke: T }): T {
  return values[mode];
}

export function operator(ctx: BenchCtx, name: string, namespaces: string[]): Promise<OperatorProc> {
  return startOperator({
    kubeconfig: ctx.stack.kubeconfig,
    namespaces,
    logDir: ctx.logDir,
    name,
    ...(ctx.profile ? { cpuProfDir: ctx.logDir } : {}),
    preloads: ctx.whatIf.map((w) => join(repoRoot, 'bench', 'whatif', `${w}.ts`)),
    env: { NODE_OPTIONS: ctx.operatorNodeOptions },
  });
}

export interface Scenario {
  name: string;
  title: string;
  /** Runs pods on the real node (a kubelet on containerd, root only): the stack starts it. */
  needsRealNode?: boolean;
  run(ctx: BenchCtx): Promise<void>;
}
