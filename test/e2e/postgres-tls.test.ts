// Postgres TLS from Secrets (issue 25 item 5; README "TLS"): a real Postgres with ssl = on, a certificate for
// 127.0.0.1 from a private CA, and `hostssl ... cert` in pg_hba.conf for a user that logs in by client
// certificate. PgClusters take the CA and the client certificate from Secrets of their namespace
// (spec.postgres.tls) — CloudNativePG's shape: the `uri` key of <cluster>-app and ca.crt of <cluster>-ca —
// and `sslrootcert=system` means the operator's OS store (here SSL_CERT_FILE, holding the private CA). Every
// misconfiguration is Connected=False with a reason of its own and a message that says what to fix, never a
// password or a key; a CA Secret fixed while the operator runs takes effect without a restart.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startPostgres, type PostgresServer } from '../harness/postgres.ts';
import { paths } from '../../src/kube/resources.ts';
import { issue, makeCa, type Pem } from '../support/certs.ts';
import { createNamespace, waitFor } from '../support/env.ts';
import { installCrd } from '../support/crd.ts';
import {
  condition, createPgCluster, createPod, createSecret, getPgCluster, pgclusterEvents, startOperator, testKube, waitForPeers, type OperatorProcess,
} from '../support/operator.ts';
import { enableTls, passwordOf, sql } from '../support/pgServers.ts';

const kube = testKube();
let srv: PostgresServer;
let ns: { name: string; cleanup(): Promise<void> };
let op: OperatorProcess;
let dir: string;
let ca: Pem;
let otherCa: Pem;
let client: Pem;

/** A kubernetes.io/tls Secret, as cert-manager writes it. */
async function tlsSecret(name: string, pem: Pem, caPem?: string): Promise<void> {
  await kube.create(paths.secrets(ns.name), {
    apiVersion: 'v1', kind: 'Secret', metadata: { name }, type: 'kubernetes.io/tls',
    stringData: { 'tls.crt': pem.cert, 'tls.key': pem.key, ...(caPem ? { 'ca.crt': caPem } : {}) },
  }, 'secrets');
}

const url = (user: string, host = '127.0.0.1', query = '') =>
  `postgresql://${user}${user === 'pgco' ? `:${encodeURIComponent(passwordOf(srv.url))}` : ''}@${host}:${srv.port}/pgco${query}`;

before(async () => {
  ca = makeCa('pgco e2e CA');
  otherCa = makeCa('some other CA');
  client = issue(ca, { cn: 'certuser' });
  srv = await startPostgres();
  await sql(srv.url, 'CREATE ROLE certuser LOGIN');
  await enableTls(srv, { cert: issue(ca, { cn: '127.0.0.1', san: 'IP:127.0.0.1' }), clientCa: ca.cert, hba: ['hostssl all certuser 127.0.0.1/32 cert'] });
  // The operator's OS CA store for sslrootcert=system: a bundle holding the private CA.
  dir = mkdtempSync(join(tmpdir(), 'pgco-tls-e2e-'));
  writeFileSync(join(dir, 'system-bundle.crt'), otherCa.cert + ca.cert);
  await installCrd(kube);
  ns = await createNamespace('e2e-pgtls');
  // CloudNativePG's Secrets: <cluster>-app with the URI under `uri` (no sslmode), <cluster>-ca with ca.crt and ca.key.
  await createSecret(kube, ns.name, 'chat-app', { uri: url('pgco'), username: 'pgco', password: passwordOf(srv.url) });
  await createSecret(kube, ns.name, 'chat-ca', { 'ca.crt': ca.cert, 'ca.key': ca.key });
  await createSecret(kube, ns.name, 'other-ca', { 'ca.crt': otherCa.cert });
  await createSecret(kube, ns.name, 'rotating-ca', { 'ca.crt': otherCa.cert });
  await createSecret(kube, ns.name, 'not-pem', { 'ca.crt': 'this is not a certificate' });
  await createSecret(kube, ns.name, 'urls', {
    certuser: url('certuser'),
    localhost: url('pgco', 'localhost'),
    system: url('pgco', '127.0.0.1', '?sslmode=verify-full&sslrootcert=system'),
    'system-localhost': url('pgco', 'localhost', '?sslrootcert=system'),
    prefer: url('pgco', '127.0.0.1', '?sslmode=prefer'),
  });
  await tlsSecret('client-tls', client, ca.cert);
  await tlsSecret('client-unknown-ca', issue(otherCa, { cn: 'certuser' }));
  await tlsSecret('client-wrong-cn', issue(ca, { cn: 'someone-else' }));
  await createSecret(kube, ns.name, 'client-no-key', { 'tls.crt': client.cert });
  op = await startOperator({ namespaces: [ns.name], env: { SSL_CERT_FILE: join(dir, 'system-bundle.crt') } });
});

after(async () => {
  await op?.stop();
  await ns?.cleanup();
  await srv?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

type Postgres = { urlSecretRef: { name: string; key: string }; tls?: Record<string, unknown> };
const app: Postgres['urlSecretRef'] = { name: 'chat-app', key: 'uri' };
const urls = (key: string) => ({ name: 'urls', key });

async function pgcluster(name: string, postgres: Postgres, ip?: string): Promise<void> {
  await createPgCluster(kube, ns.name, name, {
    selector: { matchLabels: { app: name } }, postgres, heartbeatInterval: '1s', output: { podAnnotation: `pgcluster.io/peers-${name}` },
  });
  if (ip) await createPod(kube, ns.name, { name: `${name}-1`, labels: { app: name }, ip });
}

async function connected(name: string, status: 'True' | 'False', reason?: string, timeoutMs = 60_000) {
  return waitFor(async () => {
    const c = condition(await getPgCluster(kube, ns.name, name), 'Connected');
    return c?.status === status && (reason === undefined || c.reason === reason) && c;
  }, { timeoutMs, message: `${name}: Connected ${status}${reason ? ` ${reason}` : ''}` });
}

/** The operator's sessions of one user: whether TLS is on, and the client certificate's DN. */
const sessions = (user: string) => sql<{ ssl: boolean; dn: string | null }>(srv.url,
  `SELECT s.ssl, s.client_dn AS dn FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
    WHERE a.application_name LIKE 'pgcluster-operator/%' AND a.usename = $1`, [user]);

test('a CA from a Secret (CloudNativePG: <cluster>-ca, the uri key of <cluster>-app): verified (verify-full by default), encrypted, heartbeats published', async () => {
  await pgcluster('cnpg', { urlSecretRef: app, tls: { caSecretRef: { name: 'chat-ca' } } }, '10.95.0.1');
  // The same URL with another CA: refused, so the server's certificate is really checked against the Secret's CA.
  await pgcluster('wrong-ca', { urlSecretRef: app, tls: { caSecretRef: { name: 'other-ca' } } });
  await connected('cnpg', 'True', 'Listening');
  await waitForPeers(kube, ns.name, 'cnpg-peers', [], ['cnpg@10.95.0.1']);
  const s = await sessions('pgco');
  assert.ok(s.length >= 2 && s.every((x) => x.ssl), JSON.stringify(s));
  const c = await connected('wrong-ca', 'False', 'CertificateUntrusted');
  assert.match(c.message, /^the server's TLS certificate is not signed by the CA in spec\.postgres\.tls\.caSecretRef \(\w+\): put the CA that issued the server's certificate in that Secret/);
});

test('a client certificate from a kubernetes.io/tls Secret logs in where pg_hba.conf says cert', async () => {
  await pgcluster('clientcert', { urlSecretRef: urls('certuser'), tls: { caSecretRef: { name: 'chat-ca' }, clientCertSecretRef: { name: 'client-tls' } } }, '10.95.0.2');
  await connected('clientcert', 'True', 'Listening');
  await waitForPeers(kube, ns.name, 'clientcert-peers', [], ['clientcert@10.95.0.2']);
  const s = await sessions('certuser');
  assert.equal(s.length, 2, JSON.stringify(s));
  assert.ok(s.every((x) => x.ssl && x.dn === '/CN=certuser'), JSON.stringify(s));
});

test('sslrootcert=system is the operator\'s OS CA store (SSL_CERT_FILE here), not Node\'s built-in roots, and verify-full by default', async () => {
  await pgcluster('system', { urlSecretRef: urls('system') });
  // No sslmode in the URL: verify-full, as libpq 16 does with sslrootcert=system, so a name the certificate
  // does not hold is refused (with prefer, the default elsewhere, it would connect unverified).
  await pgcluster('system-localhost', { urlSecretRef: urls('system-localhost') });
  await connected('system', 'True', 'Listening');
  const c = await connected('system-localhost', 'False', 'HostnameMismatch');
  assert.match(c.message, /ERR_TLS_CERT_ALTNAME_INVALID, sslmode=verify-full/);
});

test('each misconfiguration: Connected False with its reason and what to fix; a fixed CA Secret is used without a restart', async () => {
  const pid = op.pid;
  // [PgCluster, spec.postgres, reason, message]
  const cases: [string, Postgres, string, RegExp][] = [
    ['ca-missing', { urlSecretRef: app, tls: { caSecretRef: { name: 'no-such-ca' } } }, 'SecretNotFound',
      /^Secret e2e-pgtls-\w+\/no-such-ca not found: create it with the Postgres server's CA certificate \(PEM\) for spec\.postgres\.tls\.caSecretRef under key "ca\.crt"$/],
    ['ca-key-missing', { urlSecretRef: app, tls: { caSecretRef: { name: 'chat-app', key: 'ca.crt' } } }, 'SecretKeyMissing',
      /has no key "ca\.crt": add it, or set spec\.postgres\.tls\.caSecretRef\.key to the key that holds the CA certificate/],
    ['ca-not-pem', { urlSecretRef: app, tls: { caSecretRef: { name: 'not-pem' } } }, 'InvalidTLS', /key "ca\.crt" holds no PEM certificate/],
    ['hostname', { urlSecretRef: urls('localhost'), tls: { caSecretRef: { name: 'chat-ca' } } }, 'HostnameMismatch',
      /not issued for the host name in the Secret's URL \(ERR_TLS_CERT_ALTNAME_INVALID, sslmode=verify-full\).*sslmode=verify-ca/],
    ['no-client-cert', { urlSecretRef: urls('certuser'), tls: { caSecretRef: { name: 'chat-ca' } } }, 'ClientCertificateRefused',
      /requires a client certificate for this user and address .*set spec\.postgres\.tls\.clientCertSecretRef/],
    ['client-unknown-ca', { urlSecretRef: urls('certuser'), tls: { caSecretRef: { name: 'chat-ca' }, clientCertSecretRef: { name: 'client-unknown-ca' } } }, 'ClientCertificateRefused',
      /refused the client certificate of spec\.postgres\.tls\.clientCertSecretRef .*it does not trust the CA that issued it/],
    ['client-wrong-cn', { urlSecretRef: urls('certuser'), tls: { caSecretRef: { name: 'chat-ca' }, clientCertSecretRef: { name: 'client-wrong-cn' } } }, 'ClientCertificateRefused',
      /common name \(CN\) is not the user of the Secret's URL/],
    ['client-no-key', { urlSecretRef: urls('certuser'), tls: { clientCertSecretRef: { name: 'client-no-key' } } }, 'SecretKeyMissing',
      /has no key "tls\.key": spec\.postgres\.tls\.clientCertSecretRef names a kubernetes\.io\/tls Secret/],
    ['url-prefer', { urlSecretRef: urls('prefer'), tls: { caSecretRef: { name: 'chat-ca' } } }, 'InvalidTLS',
      /but sslmode is prefer \(from the URL\), which would not use it: set spec\.postgres\.tls\.sslmode to verify-full/],
    ['rotate', { urlSecretRef: app, tls: { caSecretRef: { name: 'rotating-ca' } } }, 'CertificateUntrusted', /not signed by the CA in spec\.postgres\.tls\.caSecretRef/],
  ];
  for (const [name, postgres] of cases) await pgcluster(name, postgres);
  for (const [name, , reason, message] of cases) {
    const c = await connected(name, 'False', reason);
    assert.match(c.message, message, name);
  }
  // The CA Secret is fixed (as after a CA rotation, or a first mistake): the operator reads it again within its
  // Secret cache's 30 s and a resync, and connects — the same process.
  await kube.request('PATCH', paths.secret(ns.name, 'rotating-ca'), { body: { stringData: { 'ca.crt': ca.cert } }, contentType: 'application/merge-patch+json' });
  await connected('rotate', 'True', 'Listening', 150_000);
  assert.equal(op.pid, pid);
  assert.ok(op.alive());

  // Never a secret: not in any status, Event or log line (the password, a private key, a certificate).
  const texts: string[] = [op.logs()];
  for (const [name] of [...cases, ['cnpg'], ['wrong-ca'], ['clientcert'], ['system'], ['system-localhost']]) {
    texts.push(JSON.stringify(await getPgCluster(kube, ns.name, name)), JSON.stringify(await pgclusterEvents(kube, ns.name, name)));
  }
  const all = texts.join('\n');
  const pemBody = (pem: string) => pem.split('\n')[1]!;
  for (const [what, s] of [['password', passwordOf(srv.url)], ['client key', pemBody(client.key)], ['CA key', pemBody(ca.key)], ['client certificate', pemBody(client.cert)]] as const) {
    assert.ok(!all.includes(s), `the ${what} leaked`);
  }
});
