// Releases: the one version a release names (package.json, Chart.yaml, the CHANGELOG), the tags v<version>,
// and the previous release's sources from git (`npm run release`, the upgrade e2e, the packaging unit test).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Why the tree's versions do not name one release (empty when they do). */
export function versionProblems(version: string, chartYaml: string, changelog: string): string[] {
  const problems: string[] = [];
  if (!/^\d+\.\d+\.\d+$/.test(version)) problems.push(`package.json's version ${version} is not x.y.z`);
  const chartVersion = /^version: (\S+)$/m.exec(chartYaml)?.[1];
  const appVersion = /^appVersion: "?([^"\s]+)"?$/m.exec(chartYaml)?.[1];
  if (chartVersion !== version) problems.push(`Chart.yaml's version is ${chartVersion}, package.json's ${version}`);
  if (appVersion !== version) problems.push(`Chart.yaml's appVersion (the default image tag) is ${appVersion}, package.json's ${version}`);
  const latest = /^## \[(\d+\.\d+\.\d+)\]/m.exec(changelog)?.[1];
  if (latest !== version) problems.push(`the CHANGELOG's latest release is ${latest ?? 'none'}, package.json's ${version}: add a "## [${version}]" section (what was [Unreleased])`);
  return problems;
}

/** oci://<registry>/<path>/charts for the image repository <registry>/<path>/<name>. */
export function defaultChartRepository(imageRepository: string): string {
  const parts = imageRepository.split('/');
  return `oci://${[...parts.slice(0, -1), 'charts'].join('/')}`;
}

/** A release tag: v<x.y.z>, and the version it names. */
export interface ReleaseTag { tag: string; version: string; commit: string }

const semver = (v: string) => v.split('.').map(Number) as [number, number, number];
const newer = (a: string, b: string) => {
  const [x, y] = [semver(a), semver(b)];
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i]! > y[i]!;
  return false;
};

/**
 * The release an upgrade starts from: of the tags v<x.y.z> on commits that HEAD descends from, the highest
 * version, not counting a tag on HEAD itself (that is the release being made). Pure: over `git for-each-ref`'s
 * tags and the set of HEAD's ancestors among their commits.
 */
export function pickPreviousRelease(tags: ReleaseTag[], head: string, isAncestor: (commit: string) => boolean): ReleaseTag | undefined {
  let best: ReleaseTag | undefined;
  for (const t of tags) {
    if (!/^v\d+\.\d+\.\d+$/.test(t.tag) || t.commit === head || !isAncestor(t.commit)) continue;
    if (!best || newer(t.version, best.version)) best = t;
  }
  return best;
}

const git = (args: string[], cwd = repoRoot): string => execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();

/** How to get the releases into a clone that lacks them (a shallow or --no-tags CI checkout). */
export const FETCH_TAGS_HINT = 'git fetch --tags origin (in a shallow clone: git fetch --unshallow --tags origin); '
  + 'a plain `git clone` carries the tags, and the CHANGELOG records each release\'s commit for clones without them. '
  + 'Or name the release to start from: PGCO_UPGRADE_FROM=v0.1.0';

/**
 * The releases the CHANGELOG records with their commit ("## [x.y.z] — date" followed by a line "Released as commit
 * <40 hex digits>."), as tags: a clone made without tags still finds the previous release this way.
 */
export function recordedReleases(changelog: string): ReleaseTag[] {
  const found: ReleaseTag[] = [];
  const re = /^## \[(\d+\.\d+\.\d+)\][^\n]*\n+Released as commit ([0-9a-f]{40})\b/gm;
  for (let m = re.exec(changelog); m; m = re.exec(changelog)) found.push({ tag: `v${m[1]!}`, version: m[1]!, commit: m[2]! });
  return found;
}

/** Tags win over CHANGELOG records of the same version (a tag is what a release made). */
export function mergeReleases(tags: ReleaseTag[], recorded: ReleaseTag[]): ReleaseTag[] {
  const have = new Set(tags.map((t) => t.tag));
  return [...tags, ...recorded.filter((r) => !have.has(r.tag))];
}

/**
 * The previous release of this checkout (pickPreviousRelease over its own tags), or the tag named by
 * PGCO_UPGRADE_FROM. Throws, saying how to fetch the tags, when there is none.
 */
export function previousRelease(root = repoRoot): ReleaseTag {
  const named = process.env.PGCO_UPGRADE_FROM;
  const tags = git(['for-each-ref', '--format=%(refname:short) %(*objectname)%(objectname)', 'refs/tags/v*'], root)
    .split('\n').filter(Boolean).map((l) => {
      const [tag = '', ids = ''] = l.split(' ');
      // Annotated tags print the commit (the peeled object) and then the tag object: the first 40 hex digits.
      return { tag, version: tag.slice(1), commit: ids.slice(0, 40) };
    });
  const refs = mergeReleases(tags, recordedReleases(readFileSync(join(root, 'CHANGELOG.md'), 'utf8')));
  if (named) {
    const t = refs.find((r) => r.tag === named);
    if (!t) throw new Error(`PGCO_UPGRADE_FROM=${named}: no such tag in ${root} (tags: ${refs.map((r) => r.tag).join(', ') || 'none'}). ${FETCH_TAGS_HINT}`);
    return t;
  }
  const head = git(['rev-parse', 'HEAD'], root);
  const shallow = git(['rev-parse', '--is-shallow-repository'], root) === 'true';
  const found = pickPreviousRelease(refs, head, (c) => {
    try {
      git(['merge-base', '--is-ancestor', c, head], root);
      return true;
    } catch {
      return false;
    }
  });
  if (!found) {
    throw new Error(`no release tag v<x.y.z> on an ancestor of HEAD in ${root}${shallow ? ' (a shallow clone)' : ''}: `
      + `the upgrade e2e installs the previous release from its tag (tags here: ${refs.map((r) => r.tag).join(', ') || 'none'}). ${FETCH_TAGS_HINT}`);
  }
  return found;
}

/** The tree of a release's commit unpacked into a new temp dir (`git archive`), and its removal. */
export function checkoutRelease(release: ReleaseTag, root = repoRoot): { dir: string; remove(): void } {
  const { tag, commit } = release;
  const dir = mkdtempSync(join(tmpdir(), `pgco-${tag}-`));
  try {
    mkdirSync(dir, { recursive: true });
    execFileSync('bash', ['-c', `set -o pipefail; git -C "$1" archive --format=tar "$2" | tar -x -C "$3"`, 'bash', root, commit, dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`git archive ${tag} (commit ${commit}): ${(e as { stderr?: Buffer }).stderr?.toString().trim() || (e as Error).message}`);
  }
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

// `node test/harness/release.ts previous`: the release the upgrade e2e starts from, or why there is none
// (.ci/run asks before the tests, and fetches the tags once if the clone lacks them).
if (import.meta.main) {
  if (process.argv[2] !== 'previous') {
    console.error('usage: node test/harness/release.ts previous');
    process.exit(2);
  }
  try {
    const r = previousRelease();
    console.log(`${r.tag} (commit ${r.commit})`);
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  }
}
