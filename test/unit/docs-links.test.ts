// The documentation is split between README.md and docs/: every relative link in them (and in the examples'
// and the chart's READMEs) must name a file that exists and, with a #fragment, a heading of that file, as
// GitHub renders anchors. A section renamed or moved without its links fails here.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';

const root = resolve(import.meta.dirname, '..', '..');

/** GitHub's anchor of a heading: lower case, markup and punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading.trim().toLowerCase().replace(/[`*_]{2,}|`/g, '').replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
}

function headings(markdown: string): Set<string> {
  const out = new Set<string>();
  const seen = new Map<string, number>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const m = !fenced && /^#{1,6} (.+)$/.exec(line);
    if (!m) continue;
    const s = slug(m[1]!);
    const n = seen.get(s) ?? 0;
    seen.set(s, n + 1);
    out.add(n === 0 ? s : `${s}-${n}`);
  }
  return out;
}

function links(markdown: string): string[] {
  const body = markdown.replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '');
  return [...body.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!).filter((l) => !/^[a-z]+:/.test(l));
}

function docs(): string[] {
  const files = ['README.md', 'CHANGELOG.md', 'charts/pgcluster-operator/README.md'];
  for (const dir of ['docs', 'examples']) {
    const walk = (d: string): void => {
      if (!existsSync(join(root, d))) return;
      for (const e of readdirSync(join(root, d))) {
        const p = join(d, e);
        if (statSync(join(root, p)).isDirectory()) walk(p);
        else if (e.endsWith('.md')) files.push(p);
      }
    };
    walk(dir);
  }
  return files;
}

test('slug: GitHub anchors of headings', () => {
  assert.equal(slug('The DNS route (`dns_cluster`, `DNSPoll`)'), 'the-dns-route-dns_cluster-dnspoll');
  assert.equal(slug('gate: rollouts with and without the readiness gate'), 'gate-rollouts-with-and-without-the-readiness-gate');
  assert.equal(slug('API stability of `pgcluster.io/v1alpha1`'), 'api-stability-of-pgclusteriov1alpha1');
});

test('every relative link in the documentation names a file and a heading that exist', () => {
  const broken: string[] = [];
  for (const file of docs()) {
    const text = readFileSync(join(root, file), 'utf8');
    for (const link of links(text)) {
      const [path = '', fragment] = link.split('#');
      const target = path === '' ? join(root, file) : resolve(join(root, dirname(file)), path);
      if (!existsSync(target)) {
        broken.push(`${file}: ${link} (no ${relative(root, target)})`);
        continue;
      }
      if (fragment && target.endsWith('.md') && !headings(readFileSync(target, 'utf8')).has(fragment)) {
        broken.push(`${file}: ${link} (no heading #${fragment} in ${relative(root, target)})`);
      }
    }
  }
  assert.deepEqual(broken, []);
});
