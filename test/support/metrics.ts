// Reading the operator's /metrics (Prometheus text format), one way for tests and the benchmark.

/** Series text (name and labels, as exposed) -> value, e.g. `pgcluster_kube_writes_total{verb="patch",resource="pods"}`. */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    if (i > 0) out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/** A series text split into its metric name and labels. */
export function seriesParts(series: string): { name: string; labels: Record<string, string> } {
  const brace = series.indexOf('{');
  if (brace < 0) return { name: series, labels: {} };
  const labels = Object.fromEntries([...series.slice(brace + 1, -1).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1] as string, m[2] as string]));
  return { name: series.slice(0, brace), labels };
}

/** A metric's value summed over the series whose labels include `labels`. */
export function sumMetric(series: ReadonlyMap<string, number>, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const [k, v] of series) {
    if (k !== name && !k.startsWith(`${name}{`)) continue;
    const have = seriesParts(k).labels;
    if (Object.entries(labels).every(([l, val]) => have[l] === val)) sum += v;
  }
  return sum;
}
