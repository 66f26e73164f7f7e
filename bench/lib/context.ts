// What every scenario gets: the stack, the mode, the report, and where logs and profiles go.
import type { Report } from './report.ts';
import type { BenchStack } from './stack.ts';
import { startOperator, type OperatorProc } from './operator.ts';

export type Mode = 'full' | 'quick' | 'smoke';

export interface BenchCtx {
  stack: BenchStack;
  mode: Mode;
  report: Report;
  /** Operator logs (and CPU profiles with --profile) go here. */
  logDir: string;
  profile: boolean;
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
  });
}

export interface Scenario {
  name: string;
  title: string;
  run(ctx: BenchCtx): Promise<void>;
}
