// PgEndpoint behaviour that needs no server: URL validation without throwing, argument checks, redacted logs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { PgEndpoint } from '../../src/postgres/endpoint.ts';

function capture() {
  const lines: string[] = [];
  return { lines, log: pino({ level: 'trace' }, { write: (s: string) => { lines.push(s); } }) };
}

test('an unparsable URL: Failed/InvalidURL from the constructor, no throw, no connection, nothing leaked', async () => {
  const { lines, log } = capture();
  const url = 'postgres://app:TopSecret99@db.example:5432,,db2.example:5432/chat';
  const ep = new PgEndpoint({ url, log });
  const s = ep.state();
  assert.equal(s.phase, 'Failed');
  assert.ok(s.phase === 'Failed' && s.reason === 'InvalidURL');
  assert.match(s.message, /the host list has an empty entry/);
  assert.match(ep.id, /^[0-9a-f]{12}$/);
  const seen: unknown[] = [];
  ep.onState((x) => seen.push(x));
  // Usable as any endpoint; nothing happens.
  const sub = ep.subscribe('chat', () => {});
  ep.setAnnouncer('ns/chat', { channel: 'chat', intervalMs: 1000, names: ['chat@10.0.0.1'] });
  sub.close();
  await ep.close();
  assert.deepEqual(seen, []);
  assert.ok(lines.length >= 1);
  for (const l of [...lines, JSON.stringify(s)]) {
    assert.ok(!l.includes('TopSecret99') && !l.includes('db.example') && !l.includes(url), l);
  }
  assert.ok(lines.every((l) => JSON.parse(l).endpoint === ep.id));
});

test('other invalid URLs', async () => {
  for (const url of ['', 'not a url', 'mysql://u:p@h/db', 'postgres://u:p@h/db?sslmode=maybe']) {
    const ep = new PgEndpoint({ url, log: capture().log });
    const s = ep.state();
    assert.ok(s.phase === 'Failed' && s.reason === 'InvalidURL', `${url}: ${JSON.stringify(s)}`);
    await ep.close();
  }
});

test('argument checks: channels pg_notify cannot use throw; unsendable names are dropped with a warning', async () => {
  const { lines, log } = capture();
  const ep = new PgEndpoint({ url: 'postgres://u:p@h/db?sslmode=maybe', log });
  for (const channel of ['', 'x'.repeat(64), 'a\0b']) {
    assert.throws(() => ep.subscribe(channel, () => {}), TypeError);
    assert.throws(() => ep.setAnnouncer('k', { channel, intervalMs: 1000, names: [] }), TypeError);
  }
  assert.doesNotThrow(() => ep.subscribe('é'.repeat(31), () => {})); // 62 bytes
  for (const intervalMs of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(() => ep.setAnnouncer('k', { channel: 'c', intervalMs, names: [] }), TypeError);
  }
  ep.setAnnouncer('ns/k', { channel: 'c', intervalMs: 1000, names: ['ok@h', '', 'a\0b@h', 'x'.repeat(8000)] });
  const warn = lines.map((l) => JSON.parse(l) as { msg: string; dropped?: number; announcer?: string }).find((l) => l.dropped !== undefined);
  assert.equal(warn?.dropped, 3);
  assert.equal(warn?.announcer, 'ns/k');
  await ep.close();
});
