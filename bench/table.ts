// `node bench/table.ts [results.json]`: the Markdown table of a results file (default bench/results/latest.json),
// with the machine line, for README.md's Benchmarks section.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatValue, type Row } from './lib/report.ts';
import { repoRoot } from './lib/stack.ts';

const file = process.argv[2] ?? join(repoRoot, 'bench', 'results', 'latest.json');
const doc = JSON.parse(readFileSync(file, 'utf8')) as {
  date: string; mode: string; seconds: number; rows: Row[]; errors: Record<string, string>;
  machine: { cpus: number; cpuModel: string; memoryGiB: number; loadavgAtStart: number[]; loadavgAtEnd: number[] };
  versions: { kubernetes: string; postgres: string; node: string }; git?: { commit: string; srcDirty: boolean };
};
const m = doc.machine;
const lines = [
  `Measured ${doc.date.slice(0, 16).replace('T', ' ')} UTC, \`npm run bench\` (${doc.mode}, ${Math.round(doc.seconds / 60)} min), on ${m.cpus} x ${m.cpuModel}, ${m.memoryGiB} GiB`
    + ` — shared with other work: load average ${m.loadavgAtStart[0]!.toFixed(1)} at the start, ${m.loadavgAtEnd[0]!.toFixed(1)} at the end.`
    + ` Kubernetes ${doc.versions.kubernetes}, Postgres from ${doc.versions.postgres}, Node ${doc.versions.node}`
    + `${doc.git ? `, operator at ${doc.git.commit.slice(0, 7)}${doc.git.srcDirty ? ' (src/ modified)' : ''}` : ''}.`,
  '',
  '| scenario | metric | value | target | result |',
  '|---|---|--:|---|---|',
  ...doc.rows.map((r) => `| ${r.scenario} | ${r.metric} | ${formatValue(r.value, r.unit)} | ${r.target} | ${r.status === 'info' ? '' : r.status} |`),
  ...Object.entries(doc.errors).map(([s, e]) => `| ${s} | FAILED: ${e.split('\n')[0]} | | | error |`),
];
process.stdout.write(lines.join('\n') + '\n');
