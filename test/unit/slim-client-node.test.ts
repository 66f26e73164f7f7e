// The operator loads only client-node's config and auth parts (src/kube/slimClientNode.ts). In a child process
// started the way the operator starts (the hook first), this checks that no generated API module is ever
// loaded, and that every way of authenticating users rely on still puts the right credentials on a request:
// a bearer token, client certificates, an exec plugin (a real child process printing an ExecCredential), an
// OIDC id-token, and in-cluster config (service account token and CA files).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { stringify } from 'yaml';

const repo = new URL('../../', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'pgco-slim-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** What the probe prints: the generated modules it loaded, and per kubeconfig the headers and TLS options of a request. */
interface ProbeOut {
  generatedApis: string[];
  results: Record<string, { headers: Record<string, string>; cert?: string; key?: string; ca?: string; server: string }>;
}

function probe(slim: boolean, configs: Record<string, string>, env: Record<string, string> = {}): ProbeOut {
  const script = `
    import { registerHooks } from 'node:module';
    ${slim ? `(await import(${JSON.stringify(join(repo, 'src/kube/slimClientNode.ts'))})).loadOnlyClientNodeConfig();` : ''}
    const generatedApis = [];
    registerHooks({ resolve(s, c, next) { const r = next(s, c); if (/client-node\\/dist\\/gen\\/(apis|models)\\//.test(r.url)) generatedApis.push(r.url); return r; } });
    const { KubeClient } = await import(${JSON.stringify(join(repo, 'src/kube/client.ts'))});
    const { KubeConfig } = await import('@kubernetes/client-node/dist/config.js');
    const { RequestContext, HttpMethod } = await import('@kubernetes/client-node/dist/gen/http/http.js');
    const configs = JSON.parse(process.env.PROBE_CONFIGS);
    const results = {};
    for (const [name, text] of Object.entries(configs)) {
      const kc = new KubeConfig();
      if (text === 'in-cluster') kc.loadFromCluster(process.env.PROBE_PREFIX); else kc.loadFromString(text);
      const client = new KubeClient(kc);
      const ctx = new RequestContext(client.server + '/api', HttpMethod.GET);
      await kc.applySecurityAuthentication(ctx);
      const tls = {};
      await kc.applyToHTTPSOptions(tls);
      results[name] = { headers: ctx.getHeaders(), cert: tls.cert?.toString(), key: tls.key?.toString(), ca: tls.ca?.toString(), server: client.server };
    }
    console.log(JSON.stringify({ generatedApis: [...new Set(generatedApis)].length ? generatedApis.slice(0, 3) : [], results }));
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: repo, encoding: 'utf8', env: { ...process.env, ...env, PROBE_CONFIGS: JSON.stringify(configs) } });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as ProbeOut;
}

const kubeconfig = (user: Record<string, unknown>) =>
  stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'c',
    clusters: [{ name: 'k', cluster: { server: 'https://127.0.0.1:6443', 'certificate-authority-data': Buffer.from('THE-CA').toString('base64') } }],
    users: [{ name: 'u', user }],
    contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }],
  });

test('without the hook, client-node loads its generated API modules (the probe can see them)', () => {
  const out = probe(false, { token: kubeconfig({ token: 't' }) });
  assert.ok(out.generatedApis.length > 0, 'the probe saw no generated module: it cannot tell slim from full');
});

test('with the hook, no generated API module loads, and every kind of credential still reaches the request', () => {
  const exec = join(dir, 'exec-credential.mjs');
  writeFileSync(exec, `console.log(JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token: 'from-exec-' + process.argv[2] } }));\n`);
  const b64 = (s: string) => Buffer.from(s).toString('base64url');
  const idToken = `${b64('{"alg":"none"}')}.${b64(JSON.stringify({ exp: Math.floor(Date.now() / 1000) + 3600 }))}.sig`;
  const sa = join(dir, 'sa');
  mkdirSync(join(sa, 'var/run/secrets/kubernetes.io/serviceaccount'), { recursive: true });
  writeFileSync(join(sa, 'var/run/secrets/kubernetes.io/serviceaccount/token'), 'the-sa-token');
  writeFileSync(join(sa, 'var/run/secrets/kubernetes.io/serviceaccount/ca.crt'), 'THE-SA-CA');
  writeFileSync(join(sa, 'var/run/secrets/kubernetes.io/serviceaccount/namespace'), 'pgcluster-system');

  const out = probe(true, {
    token: kubeconfig({ token: 'the-token' }),
    certs: kubeconfig({ 'client-certificate-data': Buffer.from('THE-CERT').toString('base64'), 'client-key-data': Buffer.from('THE-KEY').toString('base64') }),
    exec: kubeconfig({ exec: { apiVersion: 'client.authentication.k8s.io/v1', command: process.execPath, args: [exec, 'ok'], interactiveMode: 'Never' } }),
    oidc: kubeconfig({ 'auth-provider': { name: 'oidc', config: { 'id-token': idToken, 'client-id': 'pgco', 'idp-issuer-url': 'https://127.0.0.1:1' } } }),
    inCluster: 'in-cluster',
  }, { PROBE_PREFIX: sa, KUBERNETES_SERVICE_HOST: '127.0.0.9', KUBERNETES_SERVICE_PORT: '443' });

  assert.deepEqual(out.generatedApis, [], 'generated API modules were loaded');
  const r = out.results;
  assert.equal(r.token?.headers.Authorization, 'Bearer the-token');
  assert.equal(r.token?.ca, 'THE-CA');
  assert.equal(r.certs?.cert, 'THE-CERT');
  assert.equal(r.certs?.key, 'THE-KEY');
  assert.equal(r.exec?.headers.Authorization, 'Bearer from-exec-ok');
  assert.equal(r.oidc?.headers.Authorization, `Bearer ${idToken}`);
  assert.equal(r.inCluster?.headers.Authorization, 'Bearer the-sa-token');
  assert.equal(r.inCluster?.ca, 'THE-SA-CA');
  assert.equal(r.inCluster?.server, 'https://127.0.0.9:443');
});
