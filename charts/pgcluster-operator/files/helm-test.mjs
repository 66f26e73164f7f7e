// `helm test`: checks a release of this chart from inside the cluster, run by node in the operator's own
// image (templates/tests/release-test.yaml), with a ServiceAccount of its own that may do only this:
//   1. the CRD is established: its resource is served (API discovery, open to every authenticated user);
//   2. the operator is Ready: its Deployment has as many up-to-date, Ready replicas as it wants;
//   3. a PgCluster is reconciled: it creates a tiny one (selecting no pods, naming a Secret that does not
//      exist), waits until the operator has written its status for this generation, deletes it and waits
//      until it is gone (the operator's finalizer ran).
// Each step prints one line; a step that does not pass within TEST_TIMEOUT_SECONDS fails the test with what
// it saw. Only Node's standard library: the image holds nothing else this script may rely on.
import { readFileSync } from 'node:fs';
import { request } from 'node:https';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`environment variable ${name} is not set`);
  return v;
};
const SA = '/var/run/secrets/kubernetes.io/serviceaccount';
const host = env('KUBERNETES_SERVICE_HOST');
const port = env('KUBERNETES_SERVICE_PORT');
const ca = readFileSync(`${SA}/ca.crt`);
const timeoutMs = Number(process.env.TEST_TIMEOUT_SECONDS || '120') * 1000;
const releaseNs = env('RELEASE_NAMESPACE');
const deployment = env('OPERATOR_DEPLOYMENT');
const targetNs = env('PGCLUSTER_NAMESPACE');
const name = env('PGCLUSTER_NAME');
const GROUP = 'pgcluster.io';
const VERSION = 'v1alpha1';
const pgclusters = `/apis/${GROUP}/${VERSION}/namespaces/${targetNs}/pgclusters`;

/** One API request; answers { status, body } (body parsed when JSON). The token is read each time (rotation). */
function api(method, path, body) {
  const token = readFileSync(`${SA}/token`, 'utf8').trim();
  const data = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request({
      host, port, path, method, ca, timeout: 10_000,
      headers: { authorization: `Bearer ${token}`, accept: 'application/json', ...(data ? { 'content-type': 'application/json' } : {}) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => {
        let parsed = text;
        try { parsed = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in 10 s`)));
    req.on('error', reject);
    req.end(data);
  });
}

const refused = (r, what) => (r.status === 401 || r.status === 403
  ? new Error(`${what}: HTTP ${r.status} ${r.body?.message ?? ''} (the test's RBAC comes with the chart's rbac.create)`)
  : undefined);

/** Polls check() (answers a value when done, or a string saying what it saw) until it passes or the time is up. */
async function waitFor(what, check) {
  const t0 = Date.now();
  let seen = 'nothing yet';
  for (;;) {
    try {
      const r = await check();
      if (typeof r !== 'string') {
        console.log(`ok   ${what} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
        return r;
      }
      seen = r;
    } catch (e) {
      if (e.fatal) throw e;
      seen = e.message;
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what}: not within ${timeoutMs / 1000} s; last seen: ${seen}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}
const fatal = (e) => Object.assign(e, { fatal: true });

async function main() {
  await waitFor(`CRD pgclusters.${GROUP} established (${GROUP}/${VERSION} serves pgclusters)`, async () => {
    const r = await api('GET', `/apis/${GROUP}/${VERSION}`);
    if (r.status !== 200) return `discovery of ${GROUP}/${VERSION}: HTTP ${r.status}`;
    return r.body.resources?.some((x) => x.name === 'pgclusters') ? true : `${GROUP}/${VERSION} does not list pgclusters`;
  });

  await waitFor(`operator Deployment ${releaseNs}/${deployment} Ready`, async () => {
    const r = await api('GET', `/apis/apps/v1/namespaces/${releaseNs}/deployments/${deployment}`);
    const no = refused(r, `reading Deployment ${deployment}`);
    if (no) throw fatal(no);
    if (r.status !== 200) return `Deployment ${deployment}: HTTP ${r.status}`;
    const want = r.body.spec.replicas ?? 1;
    const s = r.body.status ?? {};
    const state = `generation ${r.body.metadata.generation} observed ${s.observedGeneration}; want ${want}, updated ${s.updatedReplicas ?? 0}, ready ${s.readyReplicas ?? 0}, available ${s.availableReplicas ?? 0}`;
    if (want === 0) throw fatal(new Error(`Deployment ${deployment} has replicas: 0: no operator runs`));
    const done = s.observedGeneration >= r.body.metadata.generation && s.updatedReplicas === want && (s.readyReplicas ?? 0) >= want;
    return done ? true : state;
  });

  // A PgCluster left by an earlier run that failed half-way goes first.
  await remove('a PgCluster of an earlier run');
  const created = await api('POST', pgclusters, {
    apiVersion: `${GROUP}/${VERSION}`, kind: 'PgCluster',
    metadata: { name, labels: { 'app.kubernetes.io/component': 'helm-test' } },
    spec: {
      selector: { matchLabels: { 'pgcluster.io/helm-test': name } },
      postgres: { urlSecretRef: { name: `${name}-no-such-secret` } },
    },
  });
  const no = refused(created, `creating PgCluster ${targetNs}/${name}`);
  if (no) throw no;
  if (created.status !== 201) throw new Error(`creating PgCluster ${targetNs}/${name}: HTTP ${created.status} ${JSON.stringify(created.body)}`);
  console.log(`ok   PgCluster ${targetNs}/${name} created (it selects no pods and names a Secret that does not exist)`);
  const pc = await waitFor(`PgCluster ${targetNs}/${name} reconciled (status.observedGeneration = metadata.generation)`, async () => {
    const r = await api('GET', `${pgclusters}/${name}`);
    if (r.status !== 200) return `HTTP ${r.status}`;
    const gen = r.body.metadata.generation;
    return r.body.status?.observedGeneration === gen ? r.body : `generation ${gen}, status.observedGeneration ${r.body.status?.observedGeneration}`;
  });
  const connected = pc.status.conditions?.find((c) => c.type === 'Connected');
  console.log(`     its status: channel ${pc.status.channel}; Connected ${connected?.status} ${connected?.reason ?? ''} (expected: the Secret is missing)`);
  await remove('the PgCluster (the operator removes its finalizer)');
  console.log('PASS');
}

/** Deletes the PgCluster if it exists and waits until it is gone. */
async function remove(what) {
  const d = await api('DELETE', `${pgclusters}/${name}`);
  if (d.status === 404) return;
  const no = refused(d, `deleting PgCluster ${targetNs}/${name}`);
  if (no) throw no;
  await waitFor(`${what}: PgCluster ${targetNs}/${name} deleted`, async () => {
    const r = await api('GET', `${pgclusters}/${name}`);
    if (r.status === 404) return true;
    return `still there: finalizers ${JSON.stringify(r.body.metadata?.finalizers ?? [])}, deletionTimestamp ${r.body.metadata?.deletionTimestamp}`;
  });
}

main().catch(async (e) => {
  console.log(`FAIL ${e.message}`);
  process.exitCode = 1;
  // Best effort, without waiting: the PgCluster goes (if the operator finalizes it), the next run deletes it first.
  await api('DELETE', `${pgclusters}/${name}`).catch(() => {});
});
