// Bad inputs of the image build and the real node get errors a person can act on: what is missing, and the
// package that brings it. Each case runs the real script in a child process with a PATH (or a user) that
// lacks what it needs.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runCommand, startProc, waitReady } from '../../harness/proc.ts';
import { requireRealNode } from '../../support/env.ts';

const ROOT = join(import.meta.dirname, '..', '..', '..');
let bin: string;

/** Runs `node <args>` in the repository with env changes (behind `pre`, e.g. setpriv): exit code and output. */
async function node(args: string[], env: NodeJS.ProcessEnv, pre: string[] = []): Promise<{ code: number; out: string }> {
  const [cmd, argv] = pre.length ? [pre[0]!, [...pre.slice(1), process.execPath, ...args]] : [process.execPath, args];
  const r = await runCommand(cmd, argv, { cwd: ROOT, env: { ...process.env, ...env } });
  return { code: r.code, out: r.stdout + r.stderr };
}

before(() => {
  requireRealNode();
  // A PATH with sh and the basics, but none of podman, buildah, containerd, ctr or runc.
  bin = mkdtempSync(join(tmpdir(), 'pgco-path-'));
  for (const c of ['sh', 'cat', 'ip', 'gcc', 'mount', 'tar', 'debootstrap', 'npm']) {
    for (const d of ['/usr/bin', '/bin', '/usr/sbin', '/sbin']) {
      try { symlinkSync(join(d, c), join(bin, c)); break; } catch { /* not there, or done */ }
    }
  }
});
after(() => rmSync(bin, { recursive: true, force: true }));

test('npm run image without podman or buildah names the packages to install', async () => {
  const r = await node(['scripts/image.ts'], { PATH: bin });
  assert.equal(r.code, 1, r.out);
  assert.match(r.out, /needs podman or buildah, and neither is installed.*apt-get install podman/s);
});

test('the real node without containerd or runc lists each missing part with its package', async () => {
  const script = 'import { checkRealNodePrerequisites } from "./test/harness/realnode.ts"; await checkRealNodePrerequisites();';
  const r = await node(['--input-type=module', '-e', script], { PATH: bin });
  assert.notEqual(r.code, 0, r.out);
  assert.match(r.out, /containerd \(package containerd\)/);
  assert.match(r.out, /runc \(package runc\)/);
  assert.match(r.out, /apt-get install containerd runc/);
});

test('the real node as a non-root user says it needs root', async () => {
  const script = 'import { checkRealNodePrerequisites } from "./test/harness/realnode.ts"; await checkRealNodePrerequisites();';
  const r = await node(['--input-type=module', '-e', script], {}, ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', '--']);
  assert.notEqual(r.code, 0, r.out);
  assert.match(r.out, /the real node needs root/);
});

test('a kubelet that exits, or never gets ready, fails with the end of its log', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgco-kubelet-'));
  try {
    // The real kubelet binary of the stack, with a config it cannot read: it exits, and the error says why.
    const p = startProc('kubelet', join(requireRealNode().binDir, 'kubelet'), [`--config=${join(dir, 'missing.yaml')}`], { logFile: join(dir, 'kubelet.log') });
    await assert.rejects(waitReady(p, 'registered and Ready', async () => false, 60_000),
      /kubelet exited early \(\d+\) — last lines of .*kubelet\.log:[\s\S]*missing\.yaml/);
    // One that runs but never registers: the timeout error carries its log too.
    writeFileSync(join(dir, 'fake.log'), '');
    const q = startProc('kubelet', 'sh', ['-c', 'echo "E1129 failed to connect to containerd: no such file"; exec sleep 60'], { logFile: join(dir, 'fake.log') });
    try {
      await assert.rejects(waitReady(q, 'registered and Ready', async () => false, 1500),
        /kubelet \(pid \d+\) not registered and Ready after 1\.5s — last lines of .*fake\.log:\n.*failed to connect to containerd/);
    } finally {
      await q.stop('SIGKILL');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
