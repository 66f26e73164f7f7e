// The examples under examples/ as the end-to-end test takes them (test/e2e/real-node/examples.test.ts), checked
// without a cluster: each README builds the image its manifests run, applies its k8s/, creates exactly the
// Secrets they use, and no manifest names a namespace; replacing the image changes nothing else; each Dockerfile
// starts from an image the harness can stand in for.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { EXAMPLES, exampleDir, exampleManifests, exampleProblems, readmeCommands, withImage, type K8sObject } from '../harness/examples.ts';
import { fromImages, runtimeInstructions } from '../harness/image.ts';

for (const name of EXAMPLES) {
  test(`examples/${name}: the README and the manifests agree`, () => {
    assert.deepEqual(exampleProblems(name), []);
    const readme = readmeCommands(name);
    assert.equal(readme.secrets.length, 2, 'a Postgres URI and an Erlang cookie');
  });

  test(`examples/${name}: withImage changes every container's image and nothing else`, () => {
    const before = exampleManifests(name);
    const { objects, replaced } = withImage(before, 'localhost/test:1');
    assert.ok(replaced.length > 0);
    const images: string[] = [];
    const restore = JSON.parse(JSON.stringify(objects), (k, v: unknown) => {
      if (k === 'image' && v === 'localhost/test:1') { images.push(v); return replaced[images.length - 1]; }
      return v;
    }) as K8sObject[];
    assert.deepEqual(restore, before);
    assert.equal(images.length, replaced.length);
    assert.notDeepEqual(objects, before, 'the originals were not changed in place');
  });

  test(`examples/${name}: the Dockerfile starts from Debian bookworm and runs its script as <basename>@<pod IP>`, () => {
    const dockerfile = readFileSync(join(exampleDir(name), 'Dockerfile'), 'utf8');
    assert.deepEqual(fromImages(dockerfile), ['debian:bookworm-slim']);
    const cmd = runtimeInstructions(dockerfile).find((l) => l.startsWith('CMD '));
    assert.match(cmd ?? '', /exec elixir --name \\"\$NODE_BASENAME@\$POD_IP\\" --cookie \\"\$RELEASE_COOKIE\\" \/app\/\w+\.exs/);
  });
}

test('withImage refuses a container without an image, and manifests without containers', () => {
  const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'a' }] } };
  assert.throws(() => withImage([pod], 'x'), /a container without an image/);
  assert.throws(() => withImage([{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' } }], 'x'), /no container image/);
});
