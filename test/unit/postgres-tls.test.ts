// The pure parts of Postgres TLS and host lists (docs/postgres.md, "TLS", "High availability"), table by table: parsing
// host lists and target_session_attrs, spec.postgres.tls applied to a URL, the checks of the Secrets' PEM,
// pg's ssl option, the fingerprint that names an endpoint, the classification of handshake failures, several
// hosts' failures as one, redaction of host lists, the effective spec, and SecretSource reading it all.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SecretSource } from '../../src/controller/secrets.ts';
import { endpointId, redact, secretsOfUrl } from '../../src/core/redact.ts';
import { effectiveTls } from '../../src/core/spec.ts';
import type { SecretObject } from '../../src/kube/resources.ts';
import type { Failure } from '../../src/postgres/classify.ts';
import { classifyConnectError } from '../../src/postgres/classify.ts';
import { combineFailures } from '../../src/postgres/connect.ts';
import { parsePgUrl, type ParsedPgUrl } from '../../src/postgres/connstring.ts';
import { applyTls, checkTlsMaterial, tlsContext, tlsFingerprint, tlsOptions, type TlsSettings } from '../../src/postgres/tls.ts';
import { issue, makeCa } from '../support/certs.ts';
import { FakeClock } from '../support/fakeClock.ts';

const ok = (u: string): ParsedPgUrl => {
  const r = parsePgUrl(u);
  assert.ok(r.ok, `${u}: ${r.ok ? '' : r.message}`);
  return r.value;
};

test('parsePgUrl: host lists become one connection string per host, in order', () => {
  const rows: [string, string[]][] = [
    ['postgres://u:p@h/db', ['postgres://u:p@h/db']],
    ['postgres://u:p@h1:5432,h2:5433/db?target_session_attrs=read-write',
      ['postgres://u:p@h1:5432/db', 'postgres://u:p@h2:5433/db']],
    ['postgresql://u:p@h1,h2,h3/db?sslmode=verify-full&application_name=x',
      ['postgresql://u:p@h1/db?application_name=x', 'postgresql://u:p@h2/db?application_name=x', 'postgresql://u:p@h3/db?application_name=x']],
    ['postgres://u:p@[::1]:5432,10.0.0.2/db', ['postgres://u:p@[::1]:5432/db', 'postgres://u:p@10.0.0.2/db']],
    ['postgres://u:p%2C@h1,h2/db', ['postgres://u:p%2C@h1/db', 'postgres://u:p%2C@h2/db']],
    ['postgres://h1,h2/db', ['postgres://h1/db', 'postgres://h2/db']],
    ['postgres://u@/db?host=h1,h2&port=5432,5433', ['postgres://u@/db?host=h1&port=5432', 'postgres://u@/db?host=h2&port=5433']],
    ['postgres://u@/db?host=h1,h2&port=6432', ['postgres://u@/db?host=h1&port=6432', 'postgres://u@/db?host=h2&port=6432']],
    ['postgres://u:p@h1,h2/db?target_session_attrs=primary', ['postgres://u:p@h1/db', 'postgres://u:p@h2/db']],
    ['postgres://u:p@h1,h2/db?target_session_attrs=any', ['postgres://u:p@h1/db', 'postgres://u:p@h2/db']],
  ];
  for (const [url, want] of rows) assert.deepEqual(ok(url).connectionStrings, want, url);
  // The options are the URL's, for every host.
  const p = ok('postgres://u:p@h1,h2/db?sslmode=verify-ca&connect_timeout=3');
  assert.equal(p.sslmode, 'verify-ca');
  assert.equal(p.connectTimeoutMs, 3000);
});

test('parsePgUrl: host lists, target_session_attrs and sslrootcert=system that are refused, without the URL', () => {
  const rows: [string, RegExp][] = [
    ['postgres://u:secretpw@h1,,h2/db', /empty entry/],
    ['postgres://u:secretpw@h1,/db', /empty entry/],
    ['postgres://u:secretpw@h1,:5432/db', /empty entry/],
    ['postgres://u:secretpw@h1:99999,h2/db', /does not parse|out of range/],
    ['postgres://u:secretpw@h1,h2/db?target_session_attrs=read-only', /target_session_attrs must be any, read-write, primary: the operator NOTIFYs/],
    ['postgres://u:secretpw@h1/db?target_session_attrs=standby', /target_session_attrs must be/],
    ['postgres://u:secretpw@h1/db?target_session_attrs=prefer-standby', /target_session_attrs must be/],
    ['postgres://u:secretpw@/db?host=h1,h2&port=1,2,3', /one port, or one per host/],
    ['postgres://u:secretpw@/db?host=h1,,h2', /empty entry/],
    ['postgres://u:secretpw@h0/db?host=h1,h2', /either before the path or as \?host=/],
    ['postgres://u:secretpw@h/db?sslrootcert=system&sslmode=verify-ca', /sslrootcert=system needs sslmode=verify-full/],
    ['postgres://u:secretpw@h/db?sslrootcert=system&sslmode=require', /sslrootcert=system needs sslmode=verify-full/],
    ['mysql://u:secretpw@h1,h2/db', /postgres:\/\//],
  ];
  for (const [url, re] of rows) {
    const r = parsePgUrl(url);
    assert.equal(r.ok, false, url);
    if (r.ok) continue;
    assert.match(r.message, re, url);
    assert.ok(!r.message.includes('secretpw') && !r.message.includes('h1'), r.message);
  }
});

test('parsePgUrl: sslmode given or defaulted (sslrootcert=system defaults to verify-full, as libpq 16)', () => {
  const rows: [string, string, boolean][] = [
    ['postgres://h/db', 'prefer', false],
    ['postgres://h/db?sslmode=require', 'require', true],
    ['postgres://h/db?ssl=true', 'verify-full', true],
    ['postgres://h/db?sslrootcert=system', 'verify-full', false],
    ['postgres://h/db?sslrootcert=system&sslmode=verify-full', 'verify-full', true],
  ];
  for (const [url, mode, given] of rows) {
    const p = ok(url);
    assert.deepEqual([p.sslmode, p.sslmodeGiven], [mode, given], url);
  }
});

test('applyTls: spec.postgres.tls over the URL', () => {
  const ca = 'CA-PEM';
  const rows: [string, TlsSettings | undefined, { sslmode?: string; rootcert?: string | undefined; cert?: string | undefined } | RegExp][] = [
    ['postgres://h/db', undefined, { sslmode: 'prefer' }],
    // A CA and no sslmode anywhere: verify-full (a CA is for verifying).
    ['postgres://h/db', { ca }, { sslmode: 'verify-full' }],
    ['postgres://h/db?sslmode=verify-ca', { ca }, { sslmode: 'verify-ca' }],
    ['postgres://h/db?sslmode=require', { ca }, { sslmode: 'require' }],
    // spec's sslmode wins over the URL's.
    ['postgres://h/db?sslmode=require', { sslmode: 'verify-full', ca }, { sslmode: 'verify-full' }],
    ['postgres://h/db?sslmode=verify-full', { sslmode: 'require' }, { sslmode: 'require' }],
    // The Secret's CA replaces the URL's sslrootcert (file or system), its certificate sslcert/sslkey.
    ['postgres://h/db?sslmode=verify-full&sslrootcert=/etc/ca.pem', { ca }, { sslmode: 'verify-full', rootcert: undefined }],
    ['postgres://h/db?sslrootcert=system', { ca }, { sslmode: 'verify-full', rootcert: undefined }],
    ['postgres://h/db?sslrootcert=system', { sslmode: 'verify-full' }, { sslmode: 'verify-full', rootcert: 'system' }],
    ['postgres://h/db?sslmode=require&sslcert=/a&sslkey=/b', { cert: 'C', key: 'K' }, { sslmode: 'require', cert: undefined }],
    ['postgres://h/db?sslmode=require&sslcert=/a&sslkey=/b', { ca }, { sslmode: 'require', cert: '/a' }],
    // Material the sslmode would not use: refused, saying what to set.
    ['postgres://h/db?sslmode=prefer', { ca }, /gives a CA \(spec\.postgres\.tls\.caSecretRef\), but sslmode is prefer \(from the URL\).*set spec\.postgres\.tls\.sslmode to verify-full/],
    ['postgres://h/db?sslmode=disable', { cert: 'C', key: 'K' }, /gives a client certificate .* but sslmode is disable/],
    ['postgres://h/db', { cert: 'C', key: 'K' }, /but sslmode is prefer/],
    ['postgres://h/db', { sslmode: 'allow', ca }, /but sslmode is allow \(from spec\.postgres\.tls\.sslmode\)/],
    ['postgres://h/db?sslrootcert=system', { sslmode: 'verify-ca' }, /sslrootcert=system needs sslmode=verify-full, but spec\.postgres\.tls\.sslmode is verify-ca/],
  ];
  for (const [url, s, want] of rows) {
    const r = applyTls(ok(url), s);
    const name = `${url} + ${JSON.stringify(s)}`;
    if (want instanceof RegExp) {
      assert.equal(typeof r, 'string', name);
      assert.match(r as string, want, name);
      continue;
    }
    assert.notEqual(typeof r, 'string', `${name}: ${String(r)}`);
    const p = r as ParsedPgUrl;
    if (want.sslmode) assert.equal(p.sslmode, want.sslmode, name);
    if ('rootcert' in want) assert.equal(p.sslrootcert, want.rootcert, name);
    if ('cert' in want) assert.equal(p.sslcert, want.cert, name);
  }
});

test('checkTlsMaterial: what the Secrets hold is checked before connecting', () => {
  const ca = makeCa('unit CA');
  const other = makeCa('other CA');
  const client = issue(ca, { cn: 'app' });
  const where = { ca: 'Secret ns/ca key "ca.crt"', cert: 'Secret ns/c key "tls.crt"', key: 'Secret ns/c key "tls.key"' };
  const rows: [string, Parameters<typeof checkTlsMaterial>[0], RegExp | undefined][] = [
    ['nothing', {}, undefined],
    ['a CA', { ca: ca.cert }, undefined],
    ['a bundle of two CAs', { ca: ca.cert + other.cert }, undefined],
    ['a bundle with text around it (as RDS bundles have)', { ca: `# RDS\n${ca.cert}\nsome comment\n${other.cert}` }, undefined],
    ['a client certificate and its key', { ca: ca.cert, cert: client.cert, key: client.key }, undefined],
    ['a CA that is not PEM', { ca: 'not a certificate' }, /^Secret ns\/ca key "ca.crt" holds no PEM certificate .*CloudNativePG's <cluster>-ca/],
    ['a CA whose PEM block is broken', { ca: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' }, /holds a PEM block that is not a valid certificate \(certificate 1 of 1\)/],
    ['a certificate without its key', { cert: client.cert }, /needs both Secret ns\/c key "tls.crt" and Secret ns\/c key "tls.key"/],
    ['a key that is not PEM', { cert: client.cert, key: 'nope' }, /Secret ns\/c key "tls.key" is not an unencrypted PEM private key/],
    ['the key of another certificate', { cert: client.cert, key: other.key }, /Secret ns\/c key "tls.key" is not the private key of the certificate in Secret ns\/c key "tls.crt"/],
    ['a certificate that is not PEM', { cert: 'x', key: client.key }, /Secret ns\/c key "tls.crt" holds no PEM certificate/],
  ];
  for (const [name, m, want] of rows) {
    const r = checkTlsMaterial(m, where);
    if (want === undefined) assert.equal(r, undefined, name);
    else {
      assert.match(r ?? '', want, name);
      assert.ok(!(r ?? '').includes('PRIVATE KEY') && !(r ?? '').includes('BEGIN CERTIFICATE-----\nMI'), `${name}: no PEM in the message`);
    }
  }
});

test('tlsOptions: pg\'s ssl option per sslmode and source of the CA', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgco-unit-'));
  try {
    writeFileSync(join(dir, 'ca.pem'), 'FILEPEM');
    const file = join(dir, 'ca.pem');
    const system = () => ['SYS1', 'SYS2'];
    const noCheck = Symbol('checkServerIdentity');
    const rows: [string, TlsSettings | undefined, boolean, unknown][] = [
      ['postgres://h/db?sslmode=disable', undefined, false, false],
      ['postgres://h/db?sslmode=allow', { ca: 'PEM' }, false, false],
      ['postgres://h/db', undefined, true, false], // plain: the prefer fallback
      ['postgres://h/db', undefined, false, { rejectUnauthorized: false }],
      ['postgres://h/db?sslmode=require', undefined, false, { rejectUnauthorized: false }],
      ['postgres://h/db?sslmode=require', { ca: 'PEM' }, false, { ca: 'PEM', checkServerIdentity: noCheck }],
      ['postgres://h/db?sslmode=verify-ca', { ca: 'PEM' }, false, { ca: 'PEM', checkServerIdentity: noCheck }],
      ['postgres://h/db?sslmode=verify-full', { ca: 'PEM' }, false, { ca: 'PEM' }],
      ['postgres://h/db?sslmode=verify-full', undefined, false, {}], // Node's built-in roots
      ['postgres://h/db?sslrootcert=system', undefined, false, { ca: ['SYS1', 'SYS2'] }],
      ['postgres://h/db?sslrootcert=system', { ca: 'PEM' }, false, { ca: 'PEM' }],
      [`postgres://h/db?sslmode=verify-full&sslrootcert=${file}`, undefined, false, { ca: 'FILEPEM' }],
      [`postgres://h/db?sslmode=verify-full&sslrootcert=${file}`, { ca: 'PEM' }, false, { ca: 'PEM' }],
      ['postgres://h/db?sslmode=verify-full', { ca: 'PEM', cert: 'C', key: 'K' }, false, { ca: 'PEM', cert: 'C', key: 'K' }],
      [`postgres://h/db?sslmode=verify-full&sslcert=${file}&sslkey=${file}`, undefined, false, { cert: 'FILEPEM', key: 'FILEPEM' }],
      [`postgres://h/db?sslmode=verify-full&sslcert=${file}&sslkey=${file}`, { cert: 'C', key: 'K' }, false, { cert: 'C', key: 'K' }],
    ];
    for (const [url, tls, plain, want] of rows) {
      const got = tlsOptions(ok(url), { tls, plain, system });
      const shown = got && Object.fromEntries(Object.entries(got).map(([k, v]) => [k, typeof v === 'function' ? noCheck : v]));
      assert.deepEqual(shown, want, `${url} + ${JSON.stringify(tls)}`);
    }
    assert.throws(() => tlsOptions(ok(`postgres://h/db?sslmode=verify-full&sslrootcert=${join(dir, 'nope.pem')}`), {}),
      /cannot read the file named by sslrootcert in the Postgres URL \(ENOENT\); mount it into the operator's pod \(the chart's extraVolumes\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tlsFingerprint: equal settings, equal fingerprint; any change, another; none for no settings; never the material', () => {
  const base: TlsSettings = { sslmode: 'verify-full', ca: 'CA', cert: 'C', key: 'K' };
  assert.equal(tlsFingerprint(undefined), '');
  assert.equal(tlsFingerprint({}), '');
  assert.equal(tlsFingerprint({ ...base }), tlsFingerprint(base));
  assert.match(tlsFingerprint(base), /^[0-9a-f]{16}$/);
  const changed = [{ ...base, sslmode: 'verify-ca' as const }, { ...base, ca: 'CA2' }, { ...base, cert: 'C2' }, { ...base, key: 'K2' }, { ...base, ca: undefined }];
  const all = new Set([tlsFingerprint(base), ...changed.map((c) => tlsFingerprint(c))]);
  assert.equal(all.size, changed.length + 1);
  // An endpoint id with TLS settings differs from the URL's alone.
  assert.notEqual(endpointId('postgres://u:p@h/db', tlsFingerprint(base)), endpointId('postgres://u:p@h/db'));
});

test('tlsContext: where the CA comes from, for the messages', () => {
  const rows: [string, TlsSettings | undefined, string, string | undefined][] = [
    ['postgres://h/db', undefined, 'none', undefined],
    ['postgres://h/db?sslmode=require', undefined, 'none', undefined],
    ['postgres://h/db?sslmode=require', { ca: 'X' }, 'secret', undefined],
    ['postgres://h/db?sslmode=verify-full', undefined, 'builtin', undefined],
    ['postgres://h/db?sslrootcert=system', undefined, 'system', undefined],
    ['postgres://h/db?sslmode=verify-ca&sslrootcert=/x&sslcert=/c&sslkey=/k', undefined, 'file', 'file'],
    ['postgres://h/db?sslmode=verify-full', { ca: 'X', cert: 'C', key: 'K' }, 'secret', 'secret'],
  ];
  for (const [url, m, ca, cert] of rows) assert.deepEqual(tlsContext(ok(url), m), { ca, clientCert: cert }, url);
});

test('classifyConnectError: TLS failures, each with what to fix, never the host or user', () => {
  const tlsErr = (code: string, message = code) => Object.assign(new Error(message), { code });
  const dbErr = (code: string, message: string) => Object.assign(new Error(message), { code, severity: 'FATAL' });
  const secret = { ca: 'secret' as const, clientCert: 'secret' as const };
  const rows: [string, unknown, Parameters<typeof classifyConnectError>[2]['tls'], string, RegExp][] = [
    ['wrong CA (chain sent)', tlsErr('SELF_SIGNED_CERT_IN_CHAIN'), secret, 'CertificateUntrusted', /not signed by the CA in spec\.postgres\.tls\.caSecretRef \(SELF_SIGNED_CERT_IN_CHAIN\): put the CA that issued/],
    ['wrong CA (leaf only)', tlsErr('UNABLE_TO_VERIFY_LEAF_SIGNATURE'), secret, 'CertificateUntrusted', /caSecretRef/],
    ['wrong CA from a file', tlsErr('UNABLE_TO_GET_ISSUER_CERT_LOCALLY'), { ca: 'file', clientCert: undefined }, 'CertificateUntrusted', /file named by sslrootcert.*mount the CA/],
    ['private CA, system store', tlsErr('SELF_SIGNED_CERT_IN_CHAIN'), { ca: 'system', clientCert: undefined }, 'CertificateUntrusted', /system CA store \(sslrootcert=system\).*caSecretRef/],
    ['private CA, no CA given', tlsErr('DEPTH_ZERO_SELF_SIGNED_CERT'), { ca: 'builtin', clientCert: undefined }, 'CertificateUntrusted', /no CA was given.*sslmode=require to encrypt without verifying/],
    ['expired server certificate', tlsErr('CERT_HAS_EXPIRED'), secret, 'CertificateUntrusted', /has expired \(CERT_HAS_EXPIRED\): renew it on the server/],
    ['host name mismatch', tlsErr('ERR_TLS_CERT_ALTNAME_INVALID', "Hostname/IP does not match certificate's altnames: Host: db.internal. is not cert's CN: 10.1.2.3"), secret, 'HostnameMismatch', /not issued for the host name.*<cluster>-rw.*sslmode=verify-ca/],
    ['client certificate from an unknown CA', tlsErr('ERR_SSL_TLSV1_ALERT_UNKNOWN_CA'), secret, 'ClientCertificateRefused', /refused the client certificate of spec\.postgres\.tls\.clientCertSecretRef during the TLS handshake \(ERR_SSL_TLSV1_ALERT_UNKNOWN_CA\): it does not trust the CA that issued it; issue .* from a CA in the server's ssl_ca_file/],
    ['client certificate expired', tlsErr('ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED'), secret, 'ClientCertificateRefused', /it has expired; renew it/],
    ['client certificate required (TLS 1.3 alert)', tlsErr('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED'), { ca: 'secret', clientCert: undefined }, 'ClientCertificateRefused', /none was given.*set spec\.postgres\.tls\.clientCertSecretRef/],
    ['pg_hba cert, no certificate', dbErr('28000', 'connection requires a valid client certificate'), { ca: 'secret', clientCert: undefined }, 'ClientCertificateRefused', /requires a client certificate for this user and address.*clientCertSecretRef/],
    ['wrong CN', dbErr('28000', 'certificate authentication failed for user "chatuser"'), secret, 'ClientCertificateRefused', /common name \(CN\) is not the user of the Secret's URL.*pg_ident\.conf/],
    ['no pg_hba entry is not a certificate problem', dbErr('28000', 'no pg_hba.conf entry for host "10.1.2.3", user "chatuser"'), secret, 'AuthenticationFailed', /pg_hba\.conf/],
  ];
  const s = secretsOfUrl('postgres://chatuser:pw@db.internal:5432/chatdb');
  for (const [name, err, tls, reason, re] of rows) {
    const f = classifyConnectError(err, s, { timeoutMs: 10_000, tls });
    assert.equal(f.reason, reason, name);
    assert.match(f.message, re, name);
    for (const leak of ['chatuser', 'db.internal', '10.1.2.3', 'chatdb']) assert.ok(!f.message.includes(leak), `${name}: ${f.message}`);
  }
});

test('combineFailures: one host as it is; several, each by position, with a reason that says the most', () => {
  const u: Failure = { reason: 'Unreachable', message: 'cannot reach (ECONNREFUSED)' };
  const r: Failure = { reason: 'ReadReplica', message: 'a read replica' };
  const a: Failure = { reason: 'AuthenticationFailed', message: 'password authentication failed' };
  const rows: [Failure[], number, string, RegExp][] = [
    [[u], 1, 'Unreachable', /^cannot reach \(ECONNREFUSED\)$/],
    [[r, u], 2, 'ReadReplica', /^no writable primary found \(all 2 hosts of the Secret's URL were tried in order\): host 1: a read replica \| host 2: cannot reach/],
    [[u, r], 2, 'ReadReplica', /host 1: cannot reach .* \| host 2: a read replica$/],
    [[u, u], 2, 'Unreachable', /all 2 hosts/],
    [[r, r, r], 3, 'ReadReplica', /all 3 hosts/],
    // A refused login ends the attempt: the hosts after it are not tried.
    [[u, a], 3, 'Unreachable', /host 2 of the 3 in the Secret's URL ended the attempt\): host 1: .* \| host 2: password authentication failed$/],
    [[a], 2, 'AuthenticationFailed', /host 1 of the 2/],
  ];
  for (const [fs, hosts, reason, re] of rows) {
    const f = combineFailures(fs, hosts);
    assert.equal(f.reason, reason, JSON.stringify(fs));
    assert.match(f.message, re);
  }
});

test('redaction and endpoint ids of host lists', () => {
  const url = 'postgres://chat:Secr3tPassw0rd@db-a.internal:5432,db-b.internal:5433,[fd00::7]:5432/chatdb?target_session_attrs=read-write';
  const s = secretsOfUrl(url);
  const text = redact('could not reach db-a.internal, DB-B.internal or fd00::7 for chatdb as chat with Secr3tPassw0rd', s);
  for (const leak of ['db-a', 'DB-B', 'fd00', 'chatdb', 'Secr3t']) assert.ok(!text.includes(leak), text);
  const q = secretsOfUrl('postgres://u@/db?host=qa.internal,qb.internal&port=1,2');
  assert.ok(!redact('qa.internal qb.internal', q).includes('internal'));
  // Independent of the password (a rotation keeps the id), distinct per host list.
  assert.equal(endpointId(url), endpointId(url.replace('Secr3tPassw0rd', 'another')));
  assert.notEqual(endpointId(url), endpointId(url.replace('db-b', 'db-c')));
  assert.match(endpointId(url), /^[0-9a-f]{12}$/);
});

test('effectiveTls: defaults and what is refused', () => {
  const rows: [Parameters<typeof effectiveTls>[0], unknown][] = [
    [undefined, undefined],
    [{}, { sslmode: undefined, ca: undefined, clientCert: undefined }],
    [{ caSecretRef: { name: 'db-ca' } }, { sslmode: undefined, ca: { secretName: 'db-ca', key: 'ca.crt' }, clientCert: undefined }],
    [{ sslmode: 'verify-ca', caSecretRef: { name: 'db-ca', key: 'bundle.pem' }, clientCertSecretRef: { name: 'me' } },
      { sslmode: 'verify-ca', ca: { secretName: 'db-ca', key: 'bundle.pem' }, clientCert: { secretName: 'me' } }],
    [{ sslmode: 'bogus' }, /sslmode "bogus" must be one of/],
    [{ caSecretRef: {} }, /caSecretRef\.name is required/],
    [{ clientCertSecretRef: {} }, /clientCertSecretRef\.name is required/],
    [{ sslmode: 'prefer', caSecretRef: { name: 'x' } }, /would not use the CA or client certificate/],
    [{ sslmode: 'disable', clientCertSecretRef: { name: 'x' } }, /would not use/],
  ];
  for (const [input, want] of rows) {
    const got = effectiveTls(input);
    if (want instanceof RegExp) assert.match(String(got), want, JSON.stringify(input));
    else assert.deepEqual(got, want, JSON.stringify(input));
  }
});

const b64 = (s: string) => Buffer.from(s).toString('base64');

test('SecretSource: the URL with spec.postgres.tls from Secrets, every outcome', async () => {
  const ca = makeCa('unit CA');
  const client = issue(ca, { cn: 'app' });
  const other = issue(makeCa('other'), { cn: 'app' });
  const URL_OK = 'postgres://app:pw@db.example:5432/app';
  type Secrets = Record<string, Record<string, string> | undefined>;
  const world: Secrets = {
    db: { url: b64(URL_OK), uri: b64(`${URL_OK}?sslmode=prefer`) },
    'db-ca': { 'ca.crt': b64(ca.cert) },
    'db-garbage': { 'ca.crt': b64('hello') },
    'client-tls': { 'tls.crt': b64(client.cert), 'tls.key': b64(client.key), 'ca.crt': b64(ca.cert) },
    'client-mixed': { 'tls.crt': b64(client.cert), 'tls.key': b64(other.key) },
    'client-nokey': { 'tls.crt': b64(client.cert) },
  };
  const reads: string[] = [];
  const src = new SecretSource(async (ns, name) => {
    reads.push(name);
    const data = world[name];
    return data ? ({ metadata: { name, namespace: ns }, data } as SecretObject) : undefined;
  }, new FakeClock());
  const ref = { namespace: 'prod', name: 'db', key: 'url' };
  const tls = (t: object) => ({ sslmode: undefined, ca: undefined, clientCert: undefined, ...t });
  const rows: [string, typeof ref, ReturnType<typeof tls> | undefined, RegExp | { sslmode: string; cert: boolean }][] = [
    ['no tls', ref, undefined, { sslmode: 'prefer', cert: false }],
    ['a CA: verify-full', ref, tls({ ca: { secretName: 'db-ca', key: 'ca.crt' } }), { sslmode: 'verify-full', cert: false }],
    ['a CA and a client certificate', ref, tls({ ca: { secretName: 'db-ca', key: 'ca.crt' }, clientCert: { secretName: 'client-tls' } }), { sslmode: 'verify-full', cert: true }],
    ['the CA of a cert-manager Secret', ref, tls({ ca: { secretName: 'client-tls', key: 'ca.crt' }, clientCert: { secretName: 'client-tls' } }), { sslmode: 'verify-full', cert: true }],
    ['CA Secret missing', ref, tls({ ca: { secretName: 'nope', key: 'ca.crt' } }), /^SecretNotFound: Secret prod\/nope not found: create it with the Postgres server's CA certificate \(PEM\) for spec\.postgres\.tls\.caSecretRef under key "ca\.crt"/],
    ['CA key missing', ref, tls({ ca: { secretName: 'db-ca', key: 'root.pem' } }), /^SecretKeyMissing: Secret prod\/db-ca has no key "root\.pem": add it, or set spec\.postgres\.tls\.caSecretRef\.key to the key that holds the CA certificate$/],
    ['CA not PEM', ref, tls({ ca: { secretName: 'db-garbage', key: 'ca.crt' } }), /^InvalidTLS: Secret prod\/db-garbage key "ca\.crt" holds no PEM certificate/],
    ['client Secret missing', ref, tls({ clientCert: { secretName: 'nope' } }), /^SecretNotFound: Secret prod\/nope not found: create it with the client certificate of spec\.postgres\.tls\.clientCertSecretRef/],
    ['client key missing', ref, tls({ clientCert: { secretName: 'client-nokey' } }), /^SecretKeyMissing: Secret prod\/client-nokey has no key "tls\.key": spec\.postgres\.tls\.clientCertSecretRef names a kubernetes\.io\/tls Secret/],
    ['client key of another certificate', ref, tls({ clientCert: { secretName: 'client-mixed' } }), /^InvalidTLS: Secret prod\/client-mixed key "tls\.key" is not the private key of the certificate/],
    ['the URL\'s sslmode=prefer with a CA', { ...ref, key: 'uri' }, tls({ ca: { secretName: 'db-ca', key: 'ca.crt' } }), /^InvalidTLS: spec\.postgres\.tls gives a CA .* but sslmode is prefer \(from the URL\)/],
    ['spec\'s sslmode over the URL\'s', { ...ref, key: 'uri' }, tls({ sslmode: 'verify-ca', ca: { secretName: 'db-ca', key: 'ca.crt' } }), { sslmode: 'verify-ca', cert: false }],
  ];
  const keys = new Set<string>();
  for (const [name, r, t, want] of rows) {
    reads.length = 0;
    const got = await src.url(`prod/${name}`, r, t);
    if (want instanceof RegExp) {
      assert.match(got.ok ? 'ok' : `${got.reason}: ${got.message}`, want, name);
      if (!got.ok) assert.ok(!got.message.includes('hello') && !got.message.includes('MI') && !got.message.includes('pw@'), name);
      continue;
    }
    assert.ok(got.ok, `${name}: ${got.ok ? '' : got.message}`);
    assert.equal(got.parsed.sslmode, want.sslmode, name);
    assert.equal(got.tls?.cert !== undefined, want.cert, name);
    assert.equal(new Set(reads).size, reads.length, `${name}: one GET per Secret (${reads.join(', ')})`);
    assert.equal(got.key.startsWith(got.url), true);
    keys.add(got.key);
  }
  // Five found, four distinct: the same CA and certificate from another Secret is the same endpoint.
  assert.equal(keys.size, 4, 'each TLS configuration names an endpoint of its own');
  // An empty spec.postgres.tls changes nothing: the endpoint of the URL alone.
  const empty = await src.url('prod/empty', ref, tls({}));
  const none = await src.url('prod/none', ref);
  assert.ok(empty.ok && none.ok && empty.key === none.key && empty.key === URL_OK);
  // A rotated CA (after the cache's time) is another endpoint.
  const before = await src.url('prod/rot', ref, tls({ ca: { secretName: 'db-ca', key: 'ca.crt' } }));
  src.forget('prod/rot');
  world['db-ca'] = { 'ca.crt': b64(makeCa('rotated').cert) };
  const afterRotation = await src.url('prod/rot', ref, tls({ ca: { secretName: 'db-ca', key: 'ca.crt' } }));
  assert.ok(before.ok && afterRotation.ok && before.key !== afterRotation.key);
});
