// `npm run release [-- options]`: the artifacts of a release, in dist/release/ — nothing is pushed anywhere.
//
//   pgcluster-operator-<version>.tgz            the Helm chart (`helm package`), ready for `helm push oci://...`
//   pgcluster-operator-<version>.oci.tar        the operator image as an OCI archive (`npm run image`'s build)
//   install.yaml                                the chart rendered for kubectl users, naming --image-repository
//   SHA256SUMS
//
// and it prints the commands a maintainer runs to publish them (image push, `helm push`, the git tag).
//
// Options:
//   --image-repository <repo>   where the image will be pushed, e.g. registry.example.com/acme/pgcluster-operator
//                               (install.yaml and the printed commands name it; default: the local build's
//                               name, localhost/pgcluster-operator, and placeholders in the commands)
//   --chart-repository <oci>    where the chart will be pushed (default: oci://<the image repository's parent>/charts)
//   --out <dir>                 default dist/release
//   --snapshot                  build anyway from a tree that is not a release: uncommitted changes, a tag
//                               v<version> on another commit, or base images that are local stand-ins. The
//                               artifacts are for testing (the upgrade e2e installs them), never for publishing.
//   --no-cache                  rebuild the image even if the cached one matches
//
// The version is package.json's; Chart.yaml (version, appVersion) and the CHANGELOG's latest release must name
// it (as test/unit/packaging.test.ts checks).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildImage, packageVersion, saveImage } from '../test/harness/image.ts';
import { defaultChartRepository, versionProblems } from '../test/harness/release.ts';
import { findHelm, installText, LOCAL_IMAGE_REPOSITORY } from './sync-manifests.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const chartDir = join(repoRoot, 'charts', 'pgcluster-operator');
const say = (l: string) => console.error(`[release] ${l}`);

const git = (args: string[]): string => execFileSync('git', args, { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
const gitOptional = (args: string[]): string | undefined => {
  try {
    return git(args);
  } catch {
    return undefined;
  }
};

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

async function main(): Promise<number> {
  const { values: o } = parseArgs({
    options: {
      'image-repository': { type: 'string' },
      'chart-repository': { type: 'string' },
      out: { type: 'string', default: join(repoRoot, 'dist', 'release') },
      snapshot: { type: 'boolean', default: false },
      'no-cache': { type: 'boolean', default: false },
    },
  });
  const version = packageVersion();
  const tag = `v${version}`;
  const out = resolve(o.out);
  const blockers: string[] = [];
  const problems = versionProblems(version, readFileSync(join(chartDir, 'Chart.yaml'), 'utf8'), readFileSync(join(repoRoot, 'CHANGELOG.md'), 'utf8'));
  if (problems.length) {
    for (const p of problems) say(`ERROR: ${p}`);
    return 1; // not even a snapshot: the chart would name another image than the one built
  }
  const head = gitOptional(['rev-parse', 'HEAD']);
  const dirty = gitOptional(['status', '--porcelain', '--untracked-files=no']);
  if (head === undefined) blockers.push('not a git checkout');
  if (dirty) blockers.push(`uncommitted changes:\n${dirty}`);
  const tagged = gitOptional(['rev-parse', '--verify', '--quiet', `refs/tags/${tag}^{commit}`]);
  if (tagged && tagged !== head) blockers.push(`tag ${tag} already names commit ${tagged.slice(0, 12)}, not HEAD: version ${version} is released; bump the version (package.json, Chart.yaml, CHANGELOG, npm run manifests)`);

  const refuse = (): number => {
    for (const b of blockers) say(`ERROR: ${b}`);
    say('nothing written. --snapshot builds the artifacts anyway, for testing only');
    return 1;
  };
  if (blockers.length && !o.snapshot) return refuse(); // before the build: these are known now

  say(`pgcluster-operator ${version}${o.snapshot ? ' (SNAPSHOT: for testing, not for publishing)' : ''} -> ${relative(process.cwd(), out) || '.'}`);
  const image = await buildImage({ noCache: o['no-cache'], log: (l) => { if (!l.startsWith('  ')) say(l); } });
  if (image.standIns.length) blockers.push(`the image was built on LOCAL STAND-IN base images (${image.standIns.join(', ')}), not the official ones: build on a machine that can pull them`);
  if (blockers.length && !o.snapshot) return refuse();
  for (const b of blockers) say(`SNAPSHOT because: ${b}`);

  mkdirSync(out, { recursive: true });
  for (const f of readdirSync(out)) rmSync(join(out, f), { recursive: true, force: true });
  const helm = findHelm();
  execFileSync(helm, ['package', chartDir, '--destination', out], { stdio: ['ignore', 'ignore', 'inherit'] });
  const chartFile = join(out, `pgcluster-operator-${version}.tgz`);
  const imageFile = join(out, `pgcluster-operator-${version}.oci.tar`);
  say(`saving ${image.ref} as an OCI archive`);
  await saveImage(image.ref, imageFile, 'oci-archive');
  const imageRepository = o['image-repository'] ?? LOCAL_IMAGE_REPOSITORY;
  writeFileSync(join(out, 'install.yaml'), installText(helm, imageRepository));
  const files = readdirSync(out).sort();
  writeFileSync(join(out, 'SHA256SUMS'), files.map((f) => `${sha256(join(out, f))}  ${f}\n`).join(''));

  const repo = o['image-repository'] ?? '<registry>/<path>/pgcluster-operator';
  const charts = o['chart-repository'] ?? defaultChartRepository(repo);
  const rel = (f: string) => relative(process.cwd(), f);
  const lines = [
    `Artifacts of pgcluster-operator ${version} in ${rel(out)}/: ${[...files, 'SHA256SUMS'].join(', ')}`,
    `Image ${image.ref}${image.built ? ' (built now)' : ' (cached build)'}; install.yaml names ${imageRepository}:${version}.`,
    '',
    ...(o.snapshot
      ? ['SNAPSHOT: do not publish these. The commands a release would run:']
      : ['Nothing was pushed. To publish, from a machine that reaches your registries:']),
    ...(o['image-repository'] ? [] : ['  (placeholders: rerun with --image-repository <registry>/<path>/pgcluster-operator to fill them in, and to render install.yaml for it)']),
    '',
    `  skopeo copy oci-archive:${rel(imageFile)} docker://${repo}:${version}`,
    `  #  or: podman push ${image.ref} docker://${repo}:${version}`,
    `  helm push ${rel(chartFile)} ${charts}`,
    ...(tagged ? [] : [`  git tag -a ${tag} -m 'pgcluster-operator ${version}' && git push origin ${tag}`]),
    '',
    'Users then install it with:',
    '',
    `  helm install pgcluster-operator ${charts}/pgcluster-operator --version ${version} \\`,
    `    --namespace pgcluster-system --create-namespace --set image.repository=${repo}`,
    `  helm test pgcluster-operator --namespace pgcluster-system`,
    `  #  or: kubectl apply -f install.yaml (attached to the release)`,
  ];
  console.log(lines.join('\n'));
  return 0;
}

if (import.meta.main) {
  try {
    process.exitCode = await main();
  } catch (e) {
    const err = e as Error & { stderr?: Buffer | string };
    say(`FAILED: ${err.stderr?.toString().trim() || err.message}`);
    process.exitCode = 1;
  }
}
