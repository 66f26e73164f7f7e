// The examples under examples/ (each: README.md, a Dockerfile, its app, k8s/), as the tests take them: their
// images built from their own Dockerfiles, unchanged (test/harness/image.ts; on a local stand-in of
// debian:bookworm-slim where it cannot be pulled); their manifests parsed from k8s/ with only the containers'
// image replaced; and the commands their README gives, read from the README itself, so that a README that
// drifts from the manifests fails the test as a user following it would.
import { globSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { buildDockerfile } from './image.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export const EXAMPLES = ['mounted-files', 'dns-cluster'] as const;
export type ExampleName = (typeof EXAMPLES)[number];

export const exampleDir = (name: ExampleName) => join(repoRoot, 'examples', name);

/** The image the tests build from an example's Dockerfile (the manifests name the one the README builds). */
export const exampleImage = (name: ExampleName) => `localhost/pgco-example-${name}:1`;

/** The files an example's image is made of: all but its manifests and README (its .dockerignore says the same). */
function imageFiles(dir: string): string[] {
  return globSync('**/*', { cwd: dir, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => join(d.parentPath, d.name).slice(dir.length + 1))
    .filter((f) => !f.startsWith('k8s/') && !f.endsWith('.md'));
}

/** Builds every example's Dockerfile into exampleImage(name); a label check when nothing changed. */
export async function buildExampleImages(log?: (line: string) => void): Promise<void> {
  for (const name of EXAMPLES) {
    const dir = exampleDir(name);
    await buildDockerfile({ root: dir, files: imageFiles(dir), ref: exampleImage(name), ...(log ? { log } : {}) });
  }
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
}

/** Every object of the example's k8s/*.yaml, in file order, as written. */
export function exampleManifests(name: ExampleName): K8sObject[] {
  const dir = join(exampleDir(name), 'k8s');
  return globSync('*.yaml', { cwd: dir }).sort().flatMap((f) => parseAllDocuments(readFileSync(join(dir, f), 'utf8')).map((doc) => {
    if (doc.errors.length) throw new Error(`${name}/k8s/${f}: ${doc.errors.map((e) => e.message).join('; ')}`);
    return doc.toJS() as K8sObject;
  })).filter(Boolean);
}

const CONTAINER_LISTS = ['containers', 'initContainers'];

/**
 * The objects with every container's `image` set to `image` and nothing else changed (copies); also the images
 * they named. Throws if no container had an image.
 */
export function withImage(objects: readonly K8sObject[], image: string): { objects: K8sObject[]; replaced: string[] } {
  const replaced: string[] = [];
  const visit = (v: unknown): void => {
    if (Array.isArray(v)) { v.forEach(visit); return; }
    if (!v || typeof v !== 'object') return;
    for (const [k, child] of Object.entries(v)) {
      if (CONTAINER_LISTS.includes(k) && Array.isArray(child)) {
        for (const c of child as { image?: unknown }[]) {
          if (typeof c.image !== 'string') throw new Error(`a container without an image: ${JSON.stringify(c).slice(0, 200)}`);
          replaced.push(c.image);
          c.image = image;
        }
      } else visit(child);
    }
  };
  const copies = structuredClone(objects) as K8sObject[];
  visit(copies);
  if (!replaced.length) throw new Error('no container image in the manifests');
  return { objects: copies, replaced };
}

/** What an example's README tells a user to run, read from its shell lines. */
export interface ReadmeCommands {
  /** `podman build -t <image> examples/<name>` */
  builds: string[];
  /** The namespace of its `kubectl -n <ns> ...` lines (one for all). */
  namespace: string;
  /** `kubectl -n <ns> create secret generic <name> --from-literal=<key>=...` */
  secrets: { name: string; key: string }[];
  /** `kubectl -n <ns> apply -f <path>`: the paths. */
  applies: string[];
}

export function readmeCommands(name: ExampleName): ReadmeCommands {
  const text = readFileSync(join(exampleDir(name), 'README.md'), 'utf8');
  const namespaces = new Set([...text.matchAll(/^kubectl -n (\S+) /gm)].map((m) => m[1]!));
  if (namespaces.size !== 1) throw new Error(`examples/${name}/README.md: its kubectl -n lines name ${namespaces.size} namespaces (${[...namespaces].join(', ')}), not one`);
  return {
    builds: [...text.matchAll(/^podman build -t (\S+) examples\/([\w-]+)\/?$/gm)].filter((m) => m[2] === name).map((m) => m[1]!),
    namespace: [...namespaces][0]!,
    secrets: [...text.matchAll(/^kubectl -n \S+ create secret generic (\S+) --from-literal=([\w.-]+)=/gm)].map((m) => ({ name: m[1]!, key: m[2]! })),
    applies: [...text.matchAll(/^kubectl -n \S+ apply -f (\S+)$/gm)].map((m) => m[1]!),
  };
}

/** Every Secret name/key the objects refer to (a container's secretKeyRef, a PgCluster's urlSecretRef). */
export function secretRefs(objects: readonly K8sObject[]): string[] {
  const refs = new Set<string>();
  const visit = (v: unknown): void => {
    if (Array.isArray(v)) { v.forEach(visit); return; }
    if (!v || typeof v !== 'object') return;
    for (const [k, child] of Object.entries(v)) {
      if ((k === 'secretKeyRef' || k === 'urlSecretRef') && child && typeof child === 'object') {
        const ref = child as { name: string; key?: string };
        refs.add(`${ref.name}/${ref.key ?? 'url'}`);
      } else visit(child);
    }
  };
  visit(objects);
  return [...refs].sort();
}

/**
 * Where an example's README and manifests disagree, or a manifest cannot be applied into a user's namespace:
 * the README must build the image the manifests run, apply k8s/, and create exactly the Secrets they use; no
 * object may name a namespace; there must be one Deployment and one PgCluster. Empty when all is well.
 */
export function exampleProblems(name: ExampleName): string[] {
  const problems: string[] = [];
  const manifests = exampleManifests(name);
  let readme: ReadmeCommands;
  try { readme = readmeCommands(name); } catch (e) { return [(e as Error).message]; }
  const { replaced } = withImage(manifests, 'x');
  for (const image of new Set(replaced)) {
    if (!readme.builds.includes(image)) problems.push(`the manifests run ${image}; README.md builds ${readme.builds.join(', ') || 'no image'} (podman build -t <image> examples/${name})`);
  }
  if (!readme.applies.some((p) => p.replace(/\/$/, '') === `examples/${name}/k8s`)) problems.push(`README.md does not apply examples/${name}/k8s/ (it applies ${readme.applies.join(', ') || 'nothing'})`);
  const created = readme.secrets.map((s) => `${s.name}/${s.key}`).sort();
  const used = secretRefs(manifests);
  if (created.join() !== used.join()) problems.push(`README.md creates the Secret keys [${created.join(', ')}], the manifests use [${used.join(', ')}]`);
  for (const o of manifests.filter((m) => m.metadata.namespace)) problems.push(`${o.kind}/${o.metadata.name} names namespace ${o.metadata.namespace} (kubectl apply -n puts it in the user's)`);
  for (const kind of ['Deployment', 'PgCluster']) {
    const n = manifests.filter((o) => o.kind === kind).length;
    if (n !== 1) problems.push(`the manifests hold ${n} ${kind}s, not one`);
  }
  return problems.map((p) => `examples/${name}: ${p}`);
}
