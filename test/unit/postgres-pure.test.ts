// Pure parts of the Postgres adapter: redaction, URL/sslmode parsing, error classification, timing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  classifyConnectError, classifyListenError, classifyLostConnection, classifySendError, connectTimeout, isServerError, notPostgres,
} from '../../src/postgres/classify.ts';
import { FrameCheck } from '../../src/postgres/wire.ts';
import { parsePgUrl } from '../../src/postgres/connstring.ts';
import { endpointId, quoteIdent } from '../../src/postgres/endpoint.ts';
import { errorText, redact, secretsOfUrl } from '../../src/core/redact.ts';
import { backoffDelay } from '../../src/core/backoff.ts';
import { nextBoundary } from '../../src/postgres/timing.ts';

const URL1 = 'postgres://chatuser:s3cr%40t-Pa55@db.internal.example:6432/chatdb?sslmode=require';

/** A pg DatabaseError look-alike. */
function dbError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code, severity: 'FATAL' });
}

test('redact: URL, password (encoded and decoded), user, host, database, addresses', () => {
  const s = secretsOfUrl(URL1);
  const cases: [string, string][] = [
    [`connecting to ${URL1} failed`, 'connecting to postgres://[redacted] failed'],
    ['password is s3cr@t-Pa55 and s3cr%40t-Pa55', 'password is [redacted] and [redacted]'],
    ['no pg_hba.conf entry for host "10.1.2.3", user "chatuser", database "chatdb", no encryption',
      'no pg_hba.conf entry for host "[address]", user "[redacted]", database "[redacted]", no encryption'],
    ['getaddrinfo ENOTFOUND db.internal.example', 'getaddrinfo ENOTFOUND [redacted]'],
    ['getaddrinfo ENOTFOUND DB.Internal.Example', 'getaddrinfo ENOTFOUND [redacted]'],
    ['connect ECONNREFUSED 127.0.0.1:6432', 'connect ECONNREFUSED [address]'],
    ['connect ECONNREFUSED ::1:5432', 'connect ECONNREFUSED [address]'],
    ['connect ECONNREFUSED [fd00:1:2::3]:5432', 'connect ECONNREFUSED [address]'],
    ['host=db password=hunter2 user=x', 'host=db password=[redacted] user=x'],
    ['at 12:30:00 nothing to hide', 'at 12:30:00 nothing to hide'],
  ];
  for (const [input, want] of cases) assert.equal(redact(input, s), want, input);
});

test('redact: short secrets only as whole tokens, so ordinary words survive', () => {
  const s = secretsOfUrl('postgres://postgres:pw@db:5432/postgres');
  assert.equal(redact('role "postgres" does not exist (PostgreSQL 17)', s), 'role "[redacted]" does not exist (PostgreSQL 17)');
  assert.equal(redact('pw and pwd and mydb and db', s), '[redacted] and pwd and mydb and [redacted]');
});

test('redact: an unparsable URL still has its password found', () => {
  const bad = 'postgres://app:p@ss/w0rd!@host:5432/db';
  const s = secretsOfUrl(bad);
  const out = redact(`the URL ${bad} and the bare password p@ss/w0rd!`, s);
  assert.ok(!out.includes('p@ss'), out);
  assert.ok(!out.includes('w0rd'), out);
  assert.equal(errorText(new Error(`x ${bad}`), s), 'x postgres://[redacted]');
  assert.equal(errorText('plain string'), 'plain string');
  assert.equal(errorText(undefined), 'undefined');
});

test('endpointId: short, stable, distinct per server/user/db, and independent of the password', () => {
  const a = endpointId(URL1);
  assert.match(a, /^[0-9a-f]{12}$/);
  assert.equal(endpointId(URL1), a);
  // The id is shown in status and metric labels: it must not let anyone test password guesses offline.
  assert.equal(endpointId(URL1.replace('Pa55', 'Pa56')), a, 'the id depends on the password');
  assert.equal(endpointId(`${URL1}&password=other`), a, 'the id depends on a password parameter');
  for (const other of [URL1.replace('chatuser', 'otheruser'), URL1.replace('6432', '5432'), URL1.replace('/chatdb', '/otherdb'), URL1.replace('db.internal', 'db2.internal')]) {
    assert.notEqual(endpointId(other), a, other);
  }
});

test('quoteIdent', () => {
  assert.equal(quoteIdent('chat_cluster'), '"chat_cluster"');
  assert.equal(quoteIdent('we"ird'), '"we""ird"');
});

test('parsePgUrl: valid URIs and libpq sslmode semantics', () => {
  const ok = (u: string) => {
    const r = parsePgUrl(u);
    assert.ok(r.ok, `${u}: ${r.ok ? '' : r.message}`);
    return r.value;
  };
  const a = ok('postgres://u:p@h:5432/db');
  assert.equal(a.sslmode, 'prefer');
  assert.deepEqual(a.connectionStrings, ['postgres://u:p@h:5432/db']);
  const b = ok('postgresql://u:p@h/db?sslmode=verify-full&application_name=x&connect_timeout=5');
  assert.equal(b.sslmode, 'verify-full');
  assert.equal(b.connectTimeoutMs, 5000);
  assert.ok(!b.connectionStrings[0]!.includes('sslmode'));
  assert.ok(!b.connectionStrings[0]!.includes('connect_timeout'));
  assert.ok(b.connectionStrings[0]!.includes('application_name=x'));
  assert.equal(ok('postgres://u@h/db?ssl=true').sslmode, 'verify-full');
  assert.equal(ok('postgres://u@[::1]:5432/db').sslmode, 'prefer');
  assert.equal(ok('postgres://u@/db?host=/var/run/postgresql').sslmode, 'prefer');
  assert.equal(ok('postgres://u@h/db?sslmode=disable').sslmode, 'disable');

  // tlsOptions: test/unit/postgres-tls.test.ts.
});

test('parsePgUrl: invalid URIs give a message without the URL', () => {
  const bad = [
    ['', /empty/],
    ['   ', /empty/],
    ['mysql://u:secretpw@h/db', /postgres:\/\//],
    ['host=h user=u password=secretpw', /key=value/],
    ['postgres://u:secretpw@h1:5432,,h2:5432/db', /empty entry/],
    ['postgres://u:sec/ret#pw@h/db', /percent-encoded|names no host/],
    ['postgres://u:secretpw@h:99999/db', /./],
    ['postgres://u:secretpw@/db', /names no host/],
    ['postgres://u:secretpw@h/db?sslmode=bogus', /sslmode must be one of/],
    ['postgres://u:secretpw@h/db?sslcert=/a', /together/],
    ['postgres://u:secretpw@h/db?connect_timeout=abc', /connect_timeout/],
    ['postgres://u:secretpw@h/db?sslmode=prefer&sslnegotiation=direct', /sslnegotiation/],
    ['postgres://u:secret%zzpw@h/db', /percent/],
  ] as const;
  for (const [u, re] of bad) {
    const r = parsePgUrl(u);
    assert.equal(r.ok, false, u);
    if (r.ok) continue;
    assert.match(r.message, re, u);
    assert.match(r.message, /^the Postgres URL is not a valid libpq URI: /);
    assert.ok(!r.message.includes('secret'), r.message);
  }
});

test('classifyConnectError', () => {
  const s = secretsOfUrl(URL1);
  const ctx = { timeoutMs: 10_000 };
  const c = (e: unknown) => classifyConnectError(e, s, ctx);
  assert.equal(c(dbError('28P01', 'password authentication failed for user "chatuser"')).reason, 'AuthenticationFailed');
  const hba = c(dbError('28000', 'no pg_hba.conf entry for host "10.0.0.9", user "chatuser", database "chatdb", no encryption'));
  assert.equal(hba.reason, 'AuthenticationFailed');
  assert.ok(!hba.message.includes('chatuser') && !hba.message.includes('10.0.0.9'), hba.message);
  assert.match(hba.message, /pg_hba\.conf/);
  const refused = c(Object.assign(new Error('connect ECONNREFUSED 10.0.0.9:6432'), { code: 'ECONNREFUSED', address: '10.0.0.9' }));
  assert.equal(refused.reason, 'Unreachable');
  assert.match(refused.message, /ECONNREFUSED/);
  assert.ok(!refused.message.includes('10.0.0.9'));
  const agg = Object.assign(new AggregateError([Object.assign(new Error('x'), { code: 'ECONNREFUSED' })], ''));
  assert.equal(c(agg).reason, 'Unreachable');
  const dns = c(Object.assign(new Error('getaddrinfo ENOTFOUND db.internal.example'), { code: 'ENOTFOUND' }));
  assert.equal(dns.reason, 'Unreachable');
  assert.match(dns.message, /resolve/);
  assert.equal(c(new Error('timeout expired')).reason, 'Unreachable');
  assert.match(c(new Error('timeout expired')).message, /timed out after 10s/);
  assert.equal(c(dbError('57P03', 'the database system is starting up')).reason, 'Unreachable');
  const noConnect = c(dbError('42501', 'permission denied for database "chatdb"'));
  assert.equal(noConnect.reason, 'AuthenticationFailed');
  assert.match(noConnect.message, /may not connect to its database \(SQLSTATE 42501.*GRANT CONNECT ON DATABASE <database> TO <user>/);
  assert.ok(!noConnect.message.includes('chatdb'));
  assert.equal(c(dbError('3D000', 'database "chatdb" does not exist')).reason, 'Error');
  assert.ok(!c(dbError('3D000', 'database "chatdb" does not exist')).message.includes('chatdb'));
  assert.match(c(new Error('The server does not support SSL connections')).message, /does not support TLS/);
  const tls = c(Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }));
  assert.equal(tls.reason, 'CertificateUntrusted');
  assert.match(tls.message, /not signed by a public CA known to Node\.js, and no CA was given \(DEPTH_ZERO_SELF_SIGNED_CERT\)/);
  const otherTls = c(Object.assign(new Error('wrong version number'), { code: 'ERR_SSL_WRONG_VERSION_NUMBER' }));
  assert.equal(otherTls.reason, 'Error');
  assert.match(otherTls.message, /TLS handshake failed \(ERR_SSL_WRONG_VERSION_NUMBER\)/);
  const other = c(new Error(`weird failure talking to ${URL1}`));
  assert.equal(other.reason, 'Error');
  assert.ok(!other.message.includes('s3cr'), other.message);
});

test('classify: lost connection, LISTEN, NOTIFY', () => {
  const s = secretsOfUrl(URL1);
  const t = classifyLostConnection(dbError('57P01', 'terminating connection due to administrator command'), 'listener', s);
  assert.equal(t.reason, 'Unreachable');
  assert.match(t.message, /listening connection.*57P01/);
  assert.match(classifyLostConnection(undefined, 'sender', s).message, /sending connection/);
  assert.match(classifyLostConnection(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }), 'sender', s).message, /ECONNRESET/);
  assert.equal(classifyListenError(dbError('25006', 'cannot execute LISTEN during recovery'), s).reason, 'ReadReplica');
  const lr = classifyListenError(dbError('0A000', 'LISTEN is not supported'), s);
  assert.equal(lr.reason, 'ListenRefused');
  assert.match(lr.message, /refused LISTEN: LISTEN is not supported.*SQLSTATE 0A000/);
  assert.equal(classifySendError(dbError('25006', 'cannot execute pg_notify() in a read-only transaction'), s).reason, 'ReadReplica');
  assert.match(classifySendError(dbError('54000', 'too many notifications in the NOTIFY queue'), s).message, /queue is full/);
  assert.equal(isServerError(dbError('XX000', 'x')), true);
  assert.equal(isServerError(Object.assign(new Error('x'), { code: 'ECONNRESET' })), false);
});

test('nextBoundary: aligned to multiples of the interval, strictly after t', () => {
  assert.equal(nextBoundary(0, 5000), 5000);
  assert.equal(nextBoundary(4999, 5000), 5000);
  assert.equal(nextBoundary(5000, 5000), 10000);
  assert.equal(nextBoundary(1_700_000_001_234, 5000), 1_700_000_005_000);
  // Intervals that divide each other meet on the larger one's boundaries.
  assert.equal(nextBoundary(1_700_000_001_234, 1000) % 1000, 0);
});

test('backoffDelay: full jitter under a capped exponential ceiling', () => {
  const b = { baseMs: 250, maxMs: 30_000 };
  assert.equal(backoffDelay(0, b, () => 0.999999), 249);
  assert.equal(backoffDelay(3, b, () => 0.5), 1000);
  assert.equal(backoffDelay(20, b, () => 0.999999), 29_999);
  assert.equal(backoffDelay(1000, b, () => 0.5), 15_000);
  assert.equal(backoffDelay(5, b, () => 0), 0);
});

test('FrameCheck: follows message headers across chunks, answers a length over the limit', () => {
  const msg = (code: string, body: number) => {
    const b = Buffer.alloc(5 + body);
    b.write(code, 0, 'latin1');
    b.writeUInt32BE(4 + body, 1);
    return b;
  };
  const ok = new FrameCheck(100);
  const stream = Buffer.concat([msg('R', 4), msg('S', 90), msg('Z', 1), msg('A', 96)]);
  // Every split of the stream into two chunks, including splits inside a header.
  for (let cut = 0; cut <= stream.length; cut++) {
    const f = new FrameCheck(100);
    assert.equal(f.feed(stream.subarray(0, cut)), undefined, `cut ${cut}`);
    assert.equal(f.feed(stream.subarray(cut)), undefined, `cut ${cut}`);
  }
  assert.equal(ok.feed(stream), undefined);
  assert.equal(ok.feed(msg('A', 97)), 101, 'one byte over the limit');
  const huge = new FrameCheck(1 << 20);
  assert.equal(huge.feed(Buffer.from([0x52, 0x7f])), undefined, 'half a header: not yet');
  assert.equal(huge.feed(Buffer.from([0xff, 0xff, 0xff, 0, 0])), 0x7fffffff);
  assert.equal(new FrameCheck(100).feed(Buffer.from([0x52, 0, 0, 0, 3])), 3, 'a length under 4 is impossible');
});

test('classify: not Postgres, connect timeouts', () => {
  const np = notPostgres('its first byte was \'H\' (0x48), like an HTTP server');
  assert.equal(np.reason, 'NotPostgres');
  assert.match(np.message, /does not speak the Postgres protocol: its first byte was 'H'.*check the host and port/);
  const startup = connectTimeout(2000);
  assert.equal(startup.reason, 'ConnectTimeout');
  assert.match(startup.message, /did not complete the Postgres startup within 2s/);
  assert.match(connectTimeout(10_000, 'LISTEN').message, /did not answer LISTEN within 10s/);
});
