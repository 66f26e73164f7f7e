// Figures: one row per metric (scenario, metric, value, target, pass/miss), printed as one table and written
// as JSON with the details each scenario adds.
import { cpus, loadavg, totalmem, release } from 'node:os';

export type Status = 'pass' | 'miss' | 'info';

export interface Row {
  scenario: string;
  /** Stable machine-readable id, e.g. "join.p99_ms". */
  key: string;
  metric: string;
  value: number | null;
  unit: string;
  target: string;
  status: Status;
}

export interface Target {
  /** Printed, e.g. "<= 250 ms". */
  text: string;
  ok(v: number): boolean;
}

export const atMost = (limit: number, unit: string): Target => ({ text: `<= ${limit}${unit ? ` ${unit}` : ''}`, ok: (v) => v <= limit });
export const below = (limit: number, unit: string): Target => ({ text: `< ${limit}${unit ? ` ${unit}` : ''}`, ok: (v) => v < limit });
export const exactly = (want: number, unit = ''): Target => ({ text: `${want}${unit ? ` ${unit}` : ''}`, ok: (v) => Math.abs(v - want) < 1e-9 });

export class Report {
  readonly rows: Row[] = [];
  readonly details: Record<string, unknown> = {};
  readonly errors: Record<string, string> = {};

  add(scenario: string, key: string, metric: string, value: number | null | undefined, unit: string, target?: Target): void {
    const v = value === undefined || value === null || Number.isNaN(value) ? null : value;
    const status: Status = !target ? 'info' : v !== null && target.ok(v) ? 'pass' : 'miss';
    this.rows.push({ scenario, key: `${scenario}.${key}`, metric, value: v, unit, target: target?.text ?? '', status });
  }

  detail(scenario: string, d: Record<string, unknown>): void {
    this.details[scenario] = { ...(this.details[scenario] as Record<string, unknown> | undefined), ...d };
  }

  fail(scenario: string, err: unknown): void {
    this.errors[scenario] = err instanceof Error ? err.message : String(err);
  }

  table(): string {
    const head = ['scenario', 'metric', 'value', 'target', 'result'];
    const body = this.rows.map((r) => [r.scenario, r.metric, formatValue(r.value, r.unit), r.target, r.status === 'info' ? '' : r.status]);
    for (const [s, e] of Object.entries(this.errors)) body.push([s, `FAILED: ${e.split('\n')[0]!.slice(0, 100)}`, '', '', 'error']);
    const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
    const line = (cells: string[]) => cells.map((c, i) => (i === 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
    return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
  }

  /** The same table as Markdown, for README.md. */
  markdown(): string {
    const out = ['| scenario | metric | value | target | result |', '|---|---|--:|---|---|'];
    for (const r of this.rows) out.push(`| ${r.scenario} | ${r.metric} | ${formatValue(r.value, r.unit)} | ${r.target} | ${r.status === 'info' ? '' : r.status} |`);
    for (const [s, e] of Object.entries(this.errors)) out.push(`| ${s} | FAILED: ${e.split('\n')[0]!.slice(0, 100)} | | | error |`);
    return out.join('\n');
  }
}

export function formatValue(v: number | null, unit: string): string {
  if (v === null) return 'n/a';
  const digits = Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : Math.abs(v) >= 1 ? 2 : v === 0 ? 0 : 3;
  const n = v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
  return unit ? `${n} ${unit}` : n;
}

export interface Machine { cpus: number; cpuModel: string; memoryGiB: number; kernel: string; node: string; loadavg: number[] }

export function machine(): Machine {
  const c = cpus();
  return {
    cpus: c.length,
    cpuModel: c[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    loadavg: loadavg(),
  };
}
