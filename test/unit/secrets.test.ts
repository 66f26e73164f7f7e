// SecretSource: every outcome, and the cache on an injected clock.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SECRET_TTL_MS, SecretSource } from '../../src/controller/secrets.ts';
import { KubeApiError } from '../../src/kube/client.ts';
import type { SecretObject } from '../../src/kube/resources.ts';
import { FakeClock } from '../support/fakeClock.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const secret = (data: Record<string, string>): SecretObject => ({ metadata: { name: 'db', namespace: 'prod' }, data });
const ref = { namespace: 'prod', name: 'db', key: 'url' };
const URL_OK = 'postgres://u:p@db.example:5432/app';

function source(answer: () => SecretObject | undefined | Error) {
  const clock = new FakeClock();
  let reads = 0;
  const s = new SecretSource(async () => {
    reads++;
    const a = answer();
    if (a instanceof Error) throw a;
    return a;
  }, clock);
  return { s, clock, reads: () => reads };
}

test('outcomes', async () => {
  const cases: [string, () => SecretObject | undefined | Error, string | RegExp][] = [
    ['found', () => secret({ url: b64(`  ${URL_OK}\n`) }), URL_OK],
    ['missing', () => undefined, /^SecretNotFound: Secret prod\/db not found/],
    // The Secret's other keys are not named: people who read status and Events may not read the Secret.
    ['no key', () => secret({ 'other-key': b64('x'), 'more-key': b64('y') }), /^SecretKeyMissing: (?![\s\S]*(other-key|more-key))[\s\S]*has no key "url"/],
    ['bad URL', () => secret({ url: b64('mysql://u:hunter2@h/db') }), /^InvalidURL: Secret prod\/db key "url": /],
    ['forbidden', () => new KubeApiError('GET', '/x', 403, 'Forbidden', 'no'), /^SecretForbidden: the operator may not read/],
  ];
  for (const [name, answer, want] of cases) {
    const r = await source(answer).s.url('prod/chat', ref);
    const got = r.ok ? r.url : `${r.reason}: ${r.message}`;
    if (typeof want === 'string') assert.equal(got, want, name);
    else assert.match(got, want, name);
    assert.ok(!got.includes('hunter2'), `${name}: no password in the message`);
  }
});

test('other API failures are thrown (the queue retries them)', async () => {
  await assert.rejects(source(() => new KubeApiError('GET', '/x', 500, 'InternalError', 'boom')).s.url('prod/chat', ref), /500/);
});

test('a good lookup is cached for SECRET_TTL_MS per PgCluster and reference; a failure is not', async () => {
  let answer: SecretObject | undefined = secret({ url: b64(URL_OK) });
  const { s, clock, reads } = source(() => answer);
  await s.url('prod/chat', ref);
  await s.url('prod/chat', ref);
  assert.equal(reads(), 1);
  await s.url('prod/other', ref);
  assert.equal(reads(), 2, 'per PgCluster');
  await s.url('prod/chat', { ...ref, key: 'url2' });
  assert.equal(reads(), 3, 'a new reference is read');
  await s.url('prod/chat', ref);
  clock.advance(SECRET_TTL_MS - 1);
  await s.url('prod/chat', ref);
  assert.equal(reads(), 4, 'fresh within the TTL');
  clock.advance(1);
  answer = undefined;
  assert.equal((await s.url('prod/chat', ref)).ok, false, 'read again at the TTL');
  answer = secret({ url: b64(URL_OK) });
  await s.url('prod/chat', ref);
  assert.equal(reads(), 6, 'a failure is not cached');
  s.forget('prod/chat');
  await s.url('prod/chat', ref);
  assert.equal(reads(), 7, 'forget drops the entry');
});
