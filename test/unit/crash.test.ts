// An exception or a rejected promise that nothing handled ends the process (non-zero) after one fatal log
// line whose message is redacted: a bug must not leave the operator running in a state nobody planned for,
// nor print a Postgres URL. Each case runs in a child process with the handlers src/main.ts installs.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';

const LOG = join(import.meta.dirname, '..', '..', 'src', 'log.ts');
const SECRET_URL = 'postgres://app:hunter2-s3cret@db.internal:5432/chat';

function crash(body: string) {
  const script = `import { createLogger, installCrashHandlers } from ${JSON.stringify(LOG)};
installCrashHandlers(createLogger());
${body}
setTimeout(() => { console.log('STILL RUNNING'); process.exit(0); }, 2000);`;
  return spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
}

for (const [what, body, msg] of [
  ['an uncaught exception', `setTimeout(() => { throw new Error('connect to ${SECRET_URL} failed'); }, 10);`, 'uncaught exception: exiting'],
  ['an unhandled rejection', `void Promise.reject(new Error('connect to ${SECRET_URL} failed'));`, 'unhandled promise rejection: exiting'],
] as const) {
  test(`${what}: one fatal JSON line, redacted, and a non-zero exit`, () => {
    const r = crash(body);
    assert.notEqual(r.status, 0, `exit ${r.status}; stdout: ${r.stdout}`);
    assert.doesNotMatch(r.stdout, /STILL RUNNING/, 'the process kept running');
    const out = r.stdout + r.stderr;
    assert.doesNotMatch(out, /hunter2|db\.internal/, `a secret in the output:\n${out}`);
    const line = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { level: number; msg: string; error?: string }).find((l) => l.msg === msg);
    assert.ok(line, `a "${msg}" line in:\n${r.stdout}`);
    assert.equal(line.level, 60, 'fatal');
    assert.match(line.error ?? '', /connect to postgres:\/\/\[redacted\] failed/);
  });
}
