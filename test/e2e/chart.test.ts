// The Helm chart (charts/pgcluster-operator) and manifests/install.yaml against the real API server: lint,
// server-side dry runs of what it renders, the values schema, a real `helm install` under the restricted Pod
// Security Standard, install.yaml in sync with the chart, and the chart's RBAC checked with the bearer token
// of the operator's ServiceAccount user (PGCO_OPERATOR_TOKEN): it may do what the operator needs, and no more.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { createNamespace, kubectl, kubectlJson, lockStack, requireEnv, runBin, waitFor, type RunResult } from '../support/env.ts';
import { crdForRelease, installCrd, waitForCrdEstablished } from '../support/crd.ts';
import { testKube } from '../support/operator.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CHART = join(ROOT, 'charts', 'pgcluster-operator');
const CRD_FILE = join(ROOT, 'manifests', 'crd', 'pgcluster.io_pgclusters.yaml');
const CRD_NAME = 'pgclusters.pgcluster.io';
const OPERATOR_NS = 'pgcluster-system';
const OPERATOR_SA = 'pgcluster-operator';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

const suffix = () => randomBytes(3).toString('hex');
/** The chart has no default image repository: every render sets one. */
const IMAGE_REPOSITORY = 'registry.example.com/pgcluster-operator';
const IMAGE = `image.repository=${IMAGE_REPOSITORY}`;
let kubeVersion = '';

/** helm against the stack; --kube-version for template/lint, so kubeVersion is checked against the real server. */
const helm = (args: string[], opts: { allowFail?: boolean } = {}): Promise<RunResult> => runBin('helm', args, opts);

/** `helm template` with the image repository set; the `helm test` hook only when asked for (extra: --show-only templates/tests/...). */
async function template(release: string, ns: string, sets: string[] = [], extra: string[] = []): Promise<string> {
  const tests = extra.some((e) => e.startsWith('templates/tests/')) ? [] : ['--skip-tests'];
  const r = await helm(['template', release, CHART, '--namespace', ns, '--kube-version', kubeVersion, ...tests, ...[IMAGE, ...sets].flatMap((s) => ['--set', s]), ...extra]);
  return r.stdout;
}

const docsOf = (yamlText: string): Obj[] => parseAllDocuments(yamlText).map((d) => d.toJS() as Obj).filter((d) => d && d.kind);
const find = (docs: Obj[], kind: string, name?: string, ns?: string): Obj[] =>
  docs.filter((d) => d.kind === kind && (name === undefined || d.metadata.name === name) && (ns === undefined || d.metadata.namespace === ns));
const envOf = (deploy: Obj): Record<string, Obj> =>
  Object.fromEntries((deploy.spec.template.spec.containers[0].env as Obj[]).map((e) => [e.name, e]));

/** `kubectl apply --dry-run=server`: the API server validates and admits every object, stores none. */
async function dryRunApply(yamlText: string): Promise<string> {
  return kubectl(['apply', '--dry-run=server', '-f', '-'], { input: yamlText });
}

/** Namespaces that other tests may share are created idempotently and never deleted. */
async function ensureNamespace(name: string): Promise<void> {
  await kubectl(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } }) });
}

before(async () => {
  requireEnv();
  const v = await kubectlJson<Obj>(['version']);
  kubeVersion = String(v.serverVersion.gitVersion).replace(/^v/, '');
  assert.match(kubeVersion, /^\d+\.\d+\.\d+/);
});

// ---------------------------------------------------------------------------------------------------------------
// Lint and render

test('helm lint --strict passes with default and with namespaced values', async () => {
  for (const sets of [[IMAGE], [IMAGE, 'watchNamespaces={a,b}', 'replicas=2', 'podDisruptionBudget.enabled=true', 'networkPolicy.enabled=true', 'serviceMonitor.enabled=true', 'grafanaDashboard.enabled=true', 'prometheusRule.enabled=true'],
    [IMAGE, 'podMonitor.enabled=true', 'prometheusRule.enabled=true', 'leaderElection.enabled=false']]) {
    const r = await helm(['lint', '--strict', CHART, '--kube-version', kubeVersion, ...sets.flatMap((s) => ['--set', s])], { allowFail: true });
    assert.equal(r.code, 0, `helm lint --strict ${sets.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  }
});

test('default values: cluster-wide RBAC, restricted Deployment, CRD kept; the API server accepts all of it', async () => {
  const ns = await createNamespace('chart-default');
  try {
    const text = await template('pgco', ns.name);
    const docs = docsOf(text);

    // Every namespaced object goes to the release namespace (kubectl apply users have no --namespace of helm's).
    for (const d of docs) {
      if (!['CustomResourceDefinition', 'ClusterRole', 'ClusterRoleBinding'].includes(d.kind)) {
        assert.equal(d.metadata.namespace, ns.name, `${d.kind}/${d.metadata.name} has no namespace`);
      }
      assert.equal(d.metadata.labels?.['app.kubernetes.io/instance'], 'pgco', `${d.kind}/${d.metadata.name} lacks the standard labels`);
    }
    assert.deepEqual(docs.map((d) => d.kind).sort(),
      ['ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'Deployment', 'Role', 'RoleBinding', 'Service', 'ServiceAccount']);

    // The CRD is the one in manifests/crd, with the keep policy.
    const [crd] = find(docs, 'CustomResourceDefinition', CRD_NAME);
    assert.ok(crd);
    assert.deepEqual(crd.spec, (parse(readFileSync(CRD_FILE, 'utf8')) as Obj).spec, 'the chart renders a CRD that differs from manifests/crd: run npm run manifests');
    assert.equal(crd.metadata.annotations?.['helm.sh/resource-policy'], 'keep');

    const [deploy] = find(docs, 'Deployment');
    assert.ok(deploy);
    const pod = deploy.spec.template.spec;
    const c = pod.containers[0];
    assert.equal(deploy.spec.replicas, 1);
    assert.equal(pod.terminationGracePeriodSeconds, 30);
    assert.equal(pod.serviceAccountName, 'pgco-pgcluster-operator');
    assert.deepEqual(pod.securityContext.seccompProfile, { type: 'RuntimeDefault' });
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(c.securityContext.runAsUser, 65532);
    assert.equal(c.securityContext.runAsNonRoot, true);
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    assert.equal(c.securityContext.allowPrivilegeEscalation, false);
    assert.deepEqual(c.securityContext.capabilities, { drop: ['ALL'] });
    assert.deepEqual(c.securityContext.seccompProfile, { type: 'RuntimeDefault' });
    assert.deepEqual(c.livenessProbe.httpGet, { path: '/healthz', port: 'metrics' });
    assert.deepEqual(c.readinessProbe.httpGet, { path: '/readyz', port: 'metrics' });
    assert.deepEqual(c.ports, [{ name: 'metrics', containerPort: 8080, protocol: 'TCP' }]);
    assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory);
    assert.deepEqual(c.volumeMounts, [{ name: 'tmp', mountPath: '/tmp' }]);
    assert.ok(pod.volumes.find((v: Obj) => v.name === 'tmp' && v.emptyDir));
    const env = envOf(deploy);
    assert.equal(env.WATCH_NAMESPACE?.value, '');
    assert.equal(env.METRICS_BIND_ADDRESS?.value, ':8080');
    // Leader election on with one replica too: a rolling update never has two active operators.
    assert.equal(env.LEADER_ELECT?.value, 'true');
    assert.equal(env.LEADER_ELECTION_ID?.value, 'pgco-pgcluster-operator');
    assert.equal(env.LEADER_ELECTION_NAMESPACE?.value, ns.name);
    assert.equal(env.POD_NAME?.valueFrom.fieldRef.fieldPath, 'metadata.name');
    assert.equal(env.POD_NAMESPACE?.valueFrom.fieldRef.fieldPath, 'metadata.namespace');
    const [leaseRole] = find(docs, 'Role', 'pgco-pgcluster-operator-leader-election', ns.name);
    assert.deepEqual(leaseRole?.rules, [
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['pgco-pgcluster-operator'], verbs: ['get', 'update'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
    ]);

    const out = await dryRunApply(text);
    for (const what of ['serviceaccount/pgco-pgcluster-operator', `customresourcedefinition.apiextensions.k8s.io/${CRD_NAME}`,
      'clusterrole.rbac.authorization.k8s.io/pgco-pgcluster-operator', 'clusterrolebinding.rbac.authorization.k8s.io/pgco-pgcluster-operator',
      'service/pgco-pgcluster-operator-metrics', 'deployment.apps/pgco-pgcluster-operator',
      'role.rbac.authorization.k8s.io/pgco-pgcluster-operator-leader-election', 'rolebinding.rbac.authorization.k8s.io/pgco-pgcluster-operator-leader-election']) {
      assert.match(out, new RegExp(`${what.replace(/\./g, '\\.')} (created|configured|unchanged) \\(server dry run\\)`), out);
    }
  } finally {
    await ns.cleanup();
  }
});

test('watchNamespaces: a Role and RoleBinding per namespace and nothing cluster-wide but the CRD; the API server accepts it', async () => {
  const [rel, a, b] = await Promise.all([createNamespace('chart-rel'), createNamespace('chart-wa'), createNamespace('chart-wb')]);
  try {
    const text = await template('pgco', rel.name, [`watchNamespaces={${a.name},${b.name}}`, 'replicas=2',
      'podDisruptionBudget.enabled=true', 'networkPolicy.enabled=true', 'networkPolicy.egress.enabled=true']);
    const docs = docsOf(text);
    assert.equal(find(docs, 'ClusterRole').length, 0, 'no ClusterRole with watchNamespaces');
    assert.equal(find(docs, 'ClusterRoleBinding').length, 0, 'no ClusterRoleBinding with watchNamespaces');
    for (const ns of [a.name, b.name]) {
      const [role] = find(docs, 'Role', 'pgco-pgcluster-operator', ns);
      const [binding] = find(docs, 'RoleBinding', 'pgco-pgcluster-operator', ns);
      assert.ok(role && binding, `Role and RoleBinding in ${ns}`);
      assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'pgco-pgcluster-operator', namespace: rel.name }]);
      assert.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'pgco-pgcluster-operator' });
    }
    // replicas > 1: leader election on, with a Role for the one Lease in the release namespace.
    const [lease] = find(docs, 'Role', 'pgco-pgcluster-operator-leader-election', rel.name);
    assert.ok(lease, 'leader-election Role in the release namespace');
    assert.deepEqual(lease.rules, [
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['pgco-pgcluster-operator'], verbs: ['get', 'update'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
    ]);
    const [deploy] = find(docs, 'Deployment');
    const env = envOf(deploy!);
    assert.equal(deploy!.spec.replicas, 2);
    assert.equal(env.WATCH_NAMESPACE?.value, `${a.name},${b.name}`);
    assert.equal(env.LEADER_ELECT?.value, 'true');
    assert.equal(env.LEADER_ELECTION_ID?.value, 'pgco-pgcluster-operator');
    assert.equal(env.LEADER_ELECTION_NAMESPACE?.value, rel.name);
    assert.equal(find(docs, 'PodDisruptionBudget').length, 1);
    assert.equal(find(docs, 'NetworkPolicy').length, 1);

    const out = await dryRunApply(text);
    assert.match(out, new RegExp(`role.rbac.authorization.k8s.io/pgco-pgcluster-operator created \\(server dry run\\)`));
    assert.match(out, /poddisruptionbudget.policy\/pgco-pgcluster-operator created \(server dry run\)/);
    assert.match(out, /networkpolicy.networking.k8s.io\/pgco-pgcluster-operator created \(server dry run\)/);
  } finally {
    await Promise.all([rel.cleanup(), a.cleanup(), b.cleanup()]);
  }
});

test('extraVolumes and extraVolumeMounts: a CA bundle from a Secret mounted where sslrootcert names it; the API server accepts it', async () => {
  const ns = await createNamespace('chart-vol');
  try {
    const volumes = [{ name: 'db-ca', secret: { secretName: 'db-ca' } }];
    const mounts = [{ name: 'db-ca', mountPath: '/etc/pgcluster/ca', readOnly: true }];
    const text = await template('pgco', ns.name, ['crds.install=false'], ['--set-json', `extraVolumes=${JSON.stringify(volumes)}`, '--set-json', `extraVolumeMounts=${JSON.stringify(mounts)}`]);
    const [deploy] = find(docsOf(text), 'Deployment');
    assert.ok(deploy);
    const pod = deploy.spec.template.spec;
    assert.deepEqual(pod.volumes, [{ name: 'tmp', emptyDir: { sizeLimit: '64Mi' } }, ...volumes]);
    assert.deepEqual(pod.containers[0].volumeMounts, [{ name: 'tmp', mountPath: '/tmp' }, ...mounts]);
    const out = await dryRunApply(text);
    assert.match(out, /deployment.apps\/pgco-pgcluster-operator created \(server dry run\)/, out);
    // Not a list: refused by the values schema.
    const r = await helm(['template', 'pgco', CHART, '--kube-version', kubeVersion, '--set', 'extraVolumes=x'], { allowFail: true });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /extraVolumes/);
  } finally {
    await ns.cleanup();
  }
});

test('crds.install=false leaves the CRD out; crds.keep=false drops the keep policy', async () => {
  assert.equal(find(docsOf(await template('pgco', 'x', ['crds.install=false'])), 'CustomResourceDefinition').length, 0);
  const [crd] = find(docsOf(await template('pgco', 'x', ['crds.keep=false'])), 'CustomResourceDefinition');
  assert.ok(crd);
  assert.equal(crd.metadata.annotations?.['helm.sh/resource-policy'], undefined);
});

test('leaderElection.enabled=false: no Lease, no Role for it; refused with more than one replica', async () => {
  const docs = docsOf(await template('pgco', 'x', ['leaderElection.enabled=false']));
  const [deploy] = find(docs, 'Deployment');
  assert.ok(deploy);
  assert.equal(envOf(deploy).LEADER_ELECT?.value, 'false');
  assert.equal(find(docs, 'Role').length, 0, 'no Role for a Lease without leader election');
  const r = await helm(['template', 'pgco', CHART, '--kube-version', kubeVersion, '--set', IMAGE, '--set', 'leaderElection.enabled=false', '--set', 'replicas=2'], { allowFail: true });
  assert.notEqual(r.code, 0, 'two replicas without leader election were accepted');
  assert.match(r.stderr, /leaderElection.enabled=false needs replicas: 1/, r.stderr);
});

test('image.repository unset: the render fails and says where to set it (no image is published under a default name)', async () => {
  const r = await helm(['template', 'pgco', CHART, '--kube-version', kubeVersion], { allowFail: true });
  assert.notEqual(r.code, 0, 'the chart rendered without an image repository');
  assert.match(r.stderr, /image\.repository is not set: set it to where you pushed the operator image built by `npm run release`/, r.stderr);
  const [deploy] = find(docsOf(await template('pgco', 'x')), 'Deployment');
  const { appVersion } = parse(readFileSync(join(CHART, 'Chart.yaml'), 'utf8')) as { appVersion: string };
  assert.equal(deploy?.spec.template.spec.containers[0].image, `${IMAGE_REPOSITORY}:${appVersion}`, 'the tag defaults to the chart\'s appVersion');
});

test('helm test hook: the operator image under the restricted profile, a ServiceAccount of its own with least privilege, never selected as an operator pod', async () => {
  const rel = await createNamespace('chart-test-hook');
  const watched = await createNamespace('chart-test-watched');
  try {
    await kubectl(['label', 'namespace', rel.name, 'pod-security.kubernetes.io/enforce=restricted']);
    for (const [what, sets, target] of [
      ['cluster-wide', [], rel.name],
      ['watchNamespaces without the release namespace', [`watchNamespaces={${watched.name}}`], watched.name],
    ] as const) {
      const docs = docsOf(await template('pgco', rel.name, [...sets], ['--show-only', 'templates/tests/release-test.yaml']));
      const name = 'pgco-pgcluster-operator-test';
      for (const d of docs) {
        assert.equal(d.metadata.name, name, `${what}: every test object has the Pod's name (helm test --logs asks for each one's log)`);
        assert.equal(d.metadata.annotations['helm.sh/hook'], 'test', `${what}: ${d.kind} is a test hook`);
        assert.equal(d.metadata.labels['app.kubernetes.io/name'], 'pgcluster-operator-test', `${what}: ${d.kind} must not carry the operator's selector labels`);
      }
      const [pod] = find(docs, 'Pod');
      assert.ok(pod, what);
      const [deploy] = find(docsOf(await template('pgco', rel.name, [...sets])), 'Deployment');
      assert.equal(pod.spec.containers[0].image, deploy!.spec.template.spec.containers[0].image, `${what}: the operator's image, nothing else to pull`);
      assert.deepEqual(pod.spec.containers[0].command, ['node', '--input-type=module', '--eval']);
      assert.equal(pod.spec.containers[0].args[0], readFileSync(join(CHART, 'files', 'helm-test.mjs'), 'utf8'));
      assert.equal(pod.spec.serviceAccountName, name);
      assert.equal(pod.spec.restartPolicy, 'Never');
      assert.equal(pod.metadata.annotations['helm.sh/hook-delete-policy'], 'before-hook-creation', 'the Pod stays for kubectl logs');
      assert.equal(Object.fromEntries((pod.spec.containers[0].env as Obj[]).map((e) => [e.name, e.value])).PGCLUSTER_NAMESPACE, target);
      for (const k of ['ServiceAccount', 'Role', 'RoleBinding']) {
        for (const d of find(docs, k)) assert.equal(d.metadata.annotations['helm.sh/hook-delete-policy'], 'before-hook-creation,hook-succeeded', `${what}: ${k} lives only while the test runs`);
      }
      const rules = (ns: string) => find(docs, 'Role', name, ns)[0]?.rules as Obj[] | undefined;
      const deploymentRule = { apiGroups: ['apps'], resources: ['deployments'], resourceNames: ['pgco-pgcluster-operator'], verbs: ['get'] };
      const pgclusterRules = [
        { apiGroups: ['pgcluster.io'], resources: ['pgclusters'], verbs: ['create'] },
        { apiGroups: ['pgcluster.io'], resources: ['pgclusters'], resourceNames: [name], verbs: ['get', 'delete'] },
      ];
      if (target === rel.name) {
        assert.deepEqual(rules(rel.name), [deploymentRule, ...pgclusterRules], what);
      } else {
        assert.deepEqual(rules(rel.name), [deploymentRule], what);
        assert.deepEqual(rules(target), pgclusterRules, what);
      }
      assert.equal(find(docs, 'RoleBinding').length, target === rel.name ? 1 : 2);
      assert.equal(find(docs, 'ClusterRole').length + find(docs, 'ClusterRoleBinding').length, 0, `${what}: nothing cluster-wide`);
      // The API server admits all of it, the Pod under the restricted Pod Security Standard (its ServiceAccount
      // must exist for the Pod's admission, even in a dry run: it is created for real, Helm creates it first too).
      const text = (await template('pgco', rel.name, [...sets], ['--show-only', 'templates/tests/release-test.yaml']));
      await kubectl(['apply', '-f', '-'], { input: JSON.stringify(find(docs, 'ServiceAccount')[0]) });
      const out = await dryRunApply(text);
      assert.match(out, new RegExp(`pod/${name} created \\(server dry run\\)`), out);
    }
  } finally {
    await Promise.all([rel.cleanup(), watched.cleanup()]);
  }
});

/** The API Priority and Fairness classification of one GET (the UIDs the API server answers in its headers), whatever its status. */
async function flowOf(path: string, kubeconfig?: string): Promise<{ flowSchema: string; priorityLevel: string }> {
  const r = await runBin('kubectl', ['get', '--raw', path, '-v=8'], { allowFail: true, ...(kubeconfig ? { env: { KUBECONFIG: kubeconfig } } : {}) });
  const header = (h: string) => new RegExp(`${h}: (\\S+)`, 'i').exec(r.stderr)?.[1] ?? `no ${h} header`;
  return { flowSchema: header('X-Kubernetes-Pf-Flowschema-Uid'), priorityLevel: header('X-Kubernetes-Pf-Prioritylevel-Uid') };
}

test('leaderElection.flowSchema.enabled: the ServiceAccount\'s Lease requests, and only those, are in the leader-election priority level', async () => {
  const token = process.env.PGCO_OPERATOR_TOKEN;
  assert.ok(token, 'PGCO_OPERATOR_TOKEN is set by the test stack');
  assert.equal(find(docsOf(await template('pgco', 'x')), 'FlowSchema').length, 0, 'no FlowSchema by default');
  const release = `fs-${suffix()}`;
  const text = await template(release, OPERATOR_NS, ['serviceAccount.create=false', `serviceAccount.name=${OPERATOR_SA}`, 'leaderElection.flowSchema.enabled=true'], ['--show-only', 'templates/flowschema.yaml']);
  const [fs] = find(docsOf(text), 'FlowSchema');
  assert.ok(fs, text);
  const cfg = await tokenKubeconfig(token);
  try {
    await kubectl(['apply', '-f', '-'], { input: text });
    const fsUid = (await kubectlJson<Obj>(['get', 'flowschema', fs.metadata.name])).metadata.uid as string;
    const plUid = (await kubectlJson<Obj>(['get', 'prioritylevelconfiguration', 'leader-election'])).metadata.uid as string;
    const lease = `/apis/coordination.k8s.io/v1/namespaces/${OPERATOR_NS}/leases/${release}`;
    // The API server's classifier follows new FlowSchemas through an informer: wait for it.
    await waitFor(async () => (await flowOf(lease, cfg.path)).flowSchema === fsUid, { message: 'the operator\'s Lease GET classified by the new FlowSchema', timeoutMs: 20_000 });
    assert.deepEqual(await flowOf(lease, cfg.path), { flowSchema: fsUid, priorityLevel: plUid });
    // Its other requests, and anyone else's Lease requests, are not.
    assert.notEqual((await flowOf(`/api/v1/namespaces/${OPERATOR_NS}/configmaps`, cfg.path)).priorityLevel, plUid, 'a ConfigMap list of the operator');
    assert.notEqual((await flowOf(lease)).flowSchema, fsUid, 'the admin\'s Lease GET');
  } finally {
    await kubectl(['delete', 'flowschema', fs.metadata.name, '--ignore-not-found']);
    cfg.cleanup();
  }
});

test('values.schema.json refuses unknown keys at every level, and wrong types', async () => {
  for (const [set, msg] of [
    ['replica=2', /additional properties 'replica' not allowed/],
    ['image.tagg=v1', /additional properties 'tagg' not allowed/],
    ['metrics.service.enable=true', /additional properties 'enable' not allowed/],
    ['networkPolicy.egress.rule=x', /additional properties 'rule' not allowed/],
    ['crds.instal=false', /additional properties 'instal' not allowed/],
    ['podMonitor.enable=true', /additional properties 'enable' not allowed/],
    ['prometheusRule.severity.PgClusterNotReadyy=critical', /additional properties 'PgClusterNotReadyy' not allowed/],
    ['prometheusRule.severity=critical', /severity/],
    ['replicas=two', /replicas/],
    ['logLevel=verbose', /logLevel/],
    ['watchNamespaces={Not_A_Namespace}', /watchNamespaces/],
  ] as const) {
    const r = await helm(['template', 'pgco', CHART, '--kube-version', kubeVersion, '--set', IMAGE, '--set', set], { allowFail: true });
    assert.notEqual(r.code, 0, `--set ${set} was accepted`);
    assert.match(r.stderr, /values don't meet the specifications of the schema/, r.stderr);
    assert.match(r.stderr, msg, r.stderr);
  }
});

test('monitors: the ServiceMonitor or the PodMonitor, each with honorLabels, never both', async () => {
  const sm = find(docsOf(await template('pgco', 'mon', ['serviceMonitor.enabled=true'])), 'ServiceMonitor')[0];
  assert.deepEqual(sm?.spec.endpoints, [{ port: 'metrics', path: '/metrics', honorLabels: true, interval: '30s', scrapeTimeout: '10s' }]);
  const pmDocs = docsOf(await template('pgco', 'mon', ['podMonitor.enabled=true']));
  assert.equal(find(pmDocs, 'ServiceMonitor').length, 0);
  const pm = find(pmDocs, 'PodMonitor')[0];
  assert.deepEqual(pm?.spec.podMetricsEndpoints, [{ port: 'metrics', path: '/metrics', honorLabels: true, interval: '30s', scrapeTimeout: '10s' }]);
  assert.deepEqual(pm?.spec.selector.matchLabels, find(pmDocs, 'Deployment')[0]?.spec.selector.matchLabels, 'the PodMonitor selects the Deployment\'s pods');
  const both = await helm(['template', 'pgco', CHART, '--kube-version', kubeVersion, '--set', IMAGE, '--set', 'serviceMonitor.enabled=true', '--set', 'podMonitor.enabled=true'], { allowFail: true });
  assert.notEqual(both.code, 0);
  assert.match(both.stderr, /choose one/);
  // PgClusterOperatorDown selects the job each monitor gives the operator's targets.
  const opDown = async (sets: string[]) => (find(docsOf(await template('pgco', 'mon', ['prometheusRule.enabled=true', ...sets])), 'PrometheusRule')[0]?.spec.groups[0].rules as Obj[])
    .find((r) => r.alert === 'PgClusterOperatorDown') as Obj;
  assert.match((await opDown(['serviceMonitor.enabled=true'])).expr, /up\{job="pgco-pgcluster-operator-metrics", namespace="mon"\}/);
  assert.match((await opDown(['podMonitor.enabled=true'])).expr, /up\{job="mon\/pgco-pgcluster-operator", namespace="mon"\}/);
  assert.match((await opDown(['prometheusRule.operatorSelector=job="pgco"'])).expr, /up\{job="pgco"\}/);
  // Without leader election, "no leader" is not down: leader_election_master_status is not exported then.
  assert.doesNotMatch((await opDown(['leaderElection.enabled=false'])).expr, /leader_election_master_status/);
});

test('every value is in values.yaml, values.schema.json and the chart README table', () => {
  const values = parse(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as Obj;
  const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as Obj;
  const readme = readFileSync(join(CHART, 'README.md'), 'utf8');
  const leaves: string[] = [];
  const walk = (vals: Obj, sch: Obj, prefix: string): void => {
    assert.equal(sch.additionalProperties, false, `schema of ${prefix || 'the root'} allows unknown keys`);
    const props = Object.keys(sch.properties).filter((k) => k !== 'global');
    assert.deepEqual(Object.keys(vals).sort(), props.sort(), `values.yaml and values.schema.json disagree on the keys of ${prefix || 'the root'}`);
    for (const k of props) {
      const sub = sch.properties[k] as Obj;
      if (sub.properties) walk(vals[k] as Obj, sub, `${prefix}${k}.`);
      else leaves.push(`${prefix}${k}`);
    }
  };
  walk(values, schema, '');
  const missing = leaves.filter((k) => !readme.includes(`| \`${k}\` |`));
  assert.deepEqual(missing, [], 'values missing from the README table');
});

// ---------------------------------------------------------------------------------------------------------------
// helm install

test('helm install into a fresh namespace under the restricted Pod Security Standard; uninstall keeps the CRD', async () => {
  const ns = await createNamespace('chart-install');
  const release = `pgco-${suffix()}`;
  const full = `${release}-pgcluster-operator`;
  // One Helm release owns the CRD at a time (the real-node tests install the chart too).
  const unlock = await lockStack('crd-release');
  try {
    // Pods that break the restricted profile are refused by the API server: the ReplicaSet could not create any.
    await kubectl(['label', 'namespace', ns.name, 'pod-security.kubernetes.io/enforce=restricted']);
    // Other test files running at the same time apply manifests/crd whenever they start: checking whether the
    // CRD exists and then installing raced with them ("already exists"). So it always exists first, and the
    // release adopts it, as README.md tells users who installed the CRD with kubectl first.
    await crdForRelease(testKube(), release, ns.name);
    const inst = await helm(['install', release, CHART, '--namespace', ns.name, '--set', IMAGE]);
    assert.match(inst.stdout, /STATUS: deployed/);
    assert.match(inst.stdout, /kubectl -n <app-namespace> get pgclusters/, 'NOTES.txt tells what to do next');

    const deploy = await kubectlJson<Obj>(['get', 'deployment', full], { ns: ns.name });
    assert.equal(deploy.spec.replicas, 1);
    await kubectl(['get', `serviceaccount/${full}`, `service/${full}-metrics`], { ns: ns.name });
    await kubectl(['get', 'clusterrole', full]);
    const crb = await kubectlJson<Obj>(['get', 'clusterrolebinding', full]);
    assert.deepEqual(crb.subjects, [{ kind: 'ServiceAccount', name: full, namespace: ns.name }]);
    const crd = await kubectlJson<Obj>(['get', 'crd', CRD_NAME]);
    assert.equal(crd.metadata.annotations['meta.helm.sh/release-name'], release);
    assert.equal(crd.metadata.annotations['helm.sh/resource-policy'], 'keep');

    // The Deployment's pod is admitted (no kubelet runs it here: it stays Pending, which is fine).
    const pod = await waitFor(async () => {
      const pods = await kubectlJson<Obj>(['get', 'pods', '-l', `app.kubernetes.io/instance=${release}`], { ns: ns.name });
      return pods.items[0] as Obj | undefined;
    }, { message: `a pod of ${full} (a PodSecurity refusal shows in: kubectl -n ${ns.name} get events)`, timeoutMs: 30_000 });
    assert.equal(pod.spec.containers[0].securityContext.allowPrivilegeEscalation, false);
    assert.equal(pod.spec.serviceAccountName, full);

    // An upgrade (e.g. to a new chart version with a changed CRD) goes through, CRD included.
    const up = await helm(['upgrade', release, CHART, '--namespace', ns.name, '--set', IMAGE, '--set', 'logLevel=debug']);
    assert.match(up.stdout, /STATUS: deployed/);
    const env = envOf(await kubectlJson<Obj>(['get', 'deployment', full], { ns: ns.name }));
    assert.equal(env.LOG_LEVEL?.value, 'debug');

    const un = await helm(['uninstall', release, '--namespace', ns.name]);
    assert.match(un.stdout + un.stderr, /kept due to the resource policy/);
    await kubectl(['get', 'crd', CRD_NAME]);
    const gone = await runBin('kubectl', ['get', 'clusterrole', full, '--ignore-not-found', '-o', 'name']);
    assert.equal(gone.stdout.trim(), '', 'the ClusterRole goes with the release');
  } finally {
    await helm(['uninstall', release, '--namespace', ns.name, '--ignore-not-found'], { allowFail: true });
    unlock();
    await ns.cleanup();
  }
});

// ---------------------------------------------------------------------------------------------------------------
// manifests/install.yaml

test('manifests/install.yaml matches the chart (npm run manifests --check) and the API server accepts it', async () => {
  const env = requireEnv();
  const r = await new Promise<RunResult>((res, rej) => {
    const child = spawn(process.execPath, [join(ROOT, 'scripts', 'sync-manifests.ts'), '--check'], {
      env: { ...process.env, HELM: join(env.binDir, 'helm') }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    child.on('error', rej);
    child.on('close', (code) => res({ code: code ?? 1, stdout, stderr }));
  });
  assert.equal(r.code, 0, `install.yaml or the chart's CRD copy is out of date:\n${r.stderr}`);

  const text = readFileSync(join(ROOT, 'manifests', 'install.yaml'), 'utf8');
  const docs = docsOf(text);
  assert.equal(docs[0]?.kind, 'Namespace', 'the Namespace comes first, before the objects in it');
  assert.equal(docs[0]?.metadata.name, OPERATOR_NS);
  await ensureNamespace(OPERATOR_NS);
  const out = await dryRunApply(text);
  assert.match(out, /deployment.apps\/pgcluster-operator (created|configured|unchanged) \(server dry run\)/, out);
});

// ---------------------------------------------------------------------------------------------------------------
// RBAC, for real

/** A kubeconfig for the same API server that authenticates with a bearer token instead of as admin. */
async function tokenKubeconfig(token: string): Promise<{ path: string; cleanup(): void }> {
  const admin = await kubectlJson<Obj>(['config', 'view', '--raw', '--minify', '--flatten']);
  const cluster = admin.clusters[0];
  const dir = mkdtempSync(join(tmpdir(), 'pgco-token-'));
  const path = join(dir, 'kubeconfig');
  writeFileSync(path, JSON.stringify({
    apiVersion: 'v1', kind: 'Config',
    clusters: [cluster],
    users: [{ name: 'operator', user: { token } }],
    contexts: [{ name: 'operator', context: { cluster: cluster.name, user: 'operator' } }],
    'current-context': 'operator',
  }), { mode: 0o600 });
  return { path, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** What the operator needs, and all it gets: group, resource (with subresource), verbs. */
const NEEDED_RULES: Array<[group: string, resource: string, verbs: string[]]> = [
  ['pgcluster.io', 'pgclusters', ['get', 'list', 'watch', 'patch', 'update']],
  ['pgcluster.io', 'pgclusters/status', ['get', 'patch', 'update']],
  ['pgcluster.io', 'pgclusters/finalizers', ['update']],
  ['', 'pods', ['get', 'list', 'watch', 'patch']],
  ['', 'pods/status', ['patch']],
  ['', 'configmaps', ['get', 'list', 'watch', 'create', 'patch', 'update', 'delete']],
  ['', 'secrets', ['get']],
  ['', 'events', ['create', 'patch']],
  ['', 'services', ['get', 'list', 'watch', 'create', 'patch', 'delete']],
  ['discovery.k8s.io', 'endpointslices', ['get', 'list', 'watch', 'create', 'patch', 'delete']],
];
/** "group/resource verb" strings, as compared with a SelfSubjectRulesReview. */
const NEEDED = NEEDED_RULES.flatMap(([g, r, verbs]) => verbs.map((v) => `${g}/${r} ${v}`));
/** The same as `kubectl auth can-i` arguments: verb, resource[.group], and --subresource. */
const NEEDED_ARGS = NEEDED_RULES.flatMap(([g, r, verbs]) => verbs.map((v) => {
  const [res, sub] = r.split('/') as [string, string | undefined];
  return [v, g ? `${res}.${g}` : res, ...(sub ? [`--subresource=${sub}`] : [])];
}));

/** `kubectl auth can-i` as the given kubeconfig (or impersonating `as`): true for yes, false for no. */
async function canI(args: string[], who: { kubeconfig?: string; as?: string }): Promise<boolean> {
  const r = await runBin('kubectl', ['auth', 'can-i', ...args, ...(who.as ? [`--as=${who.as}`] : [])], {
    allowFail: true, ...(who.kubeconfig ? { env: { KUBECONFIG: who.kubeconfig } } : {}),
  });
  const answer = r.stdout.trim();
  if (answer !== 'yes' && answer !== 'no') throw new Error(`kubectl auth can-i ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return answer === 'yes';
}

test('RBAC with the operator ServiceAccount token: everything the operator needs, nothing more', async () => {
  const token = process.env.PGCO_OPERATOR_TOKEN;
  assert.ok(token, 'PGCO_OPERATOR_TOKEN is set by the test stack');
  const release = `rbac-${suffix()}`;
  const leaseName = `${release}-lease`;
  await ensureNamespace(OPERATOR_NS);
  // The CRD must be served for the operator's preflight reads (idempotent: other tests apply it too).
  await kubectl(['apply', '--server-side', '--force-conflicts', '--field-manager=chart-test', '-f', CRD_FILE]);
  await waitForCrdEstablished(testKube(), CRD_NAME);
  // Only the chart's RBAC, for the ServiceAccount the token belongs to; a release name of our own so that the
  // ClusterRole does not collide with anyone else's, and leader election on to get the Lease Role too.
  const rbac = await template(release, OPERATOR_NS, [
    'serviceAccount.create=false', `serviceAccount.name=${OPERATOR_SA}`,
    'leaderElection.enabled=true', `leaderElection.leaseName=${leaseName}`,
  ], ['--show-only', 'templates/rbac.yaml']);
  assert.deepEqual(docsOf(rbac).map((d) => d.kind).sort(), ['ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding']);
  const app = await createNamespace('chart-rbac');
  const cfg = await tokenKubeconfig(token);
  const op = { kubeconfig: cfg.path };
  // The ServiceAccount's grants are the stack's, shared with rbac-operator.test.ts (which takes one away).
  const unlock = await lockStack('operator-sa');
  try {
    await kubectl(['apply', '-f', '-'], { input: rbac });
    // The RBAC authorizer sees new bindings through its informers: wait for the first grant to show.
    await waitFor(() => canI(['list', 'pgclusters.pgcluster.io', '--all-namespaces'], op), { message: 'the ClusterRoleBinding to take effect', timeoutMs: 20_000 });

    // Who we are: the ServiceAccount user, not admin.
    const who = await runBin('kubectl', ['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}'], { env: { KUBECONFIG: cfg.path } });
    assert.equal(who.stdout, `system:serviceaccount:${OPERATOR_NS}:${OPERATOR_SA}`);

    // Exactly the needed rules in an app namespace: SelfSubjectRulesReview is what `kubectl auth can-i --list` shows.
    const review = JSON.parse((await runBin('kubectl', ['create', '--validate=false', '-o', 'json', '-f', '-'], {
      env: { KUBECONFIG: cfg.path },
      input: JSON.stringify({ apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectRulesReview', spec: { namespace: app.name } }),
    })).stdout) as Obj;
    const granted = new Set<string>();
    for (const rule of review.status.resourceRules as Obj[]) {
      for (const g of rule.apiGroups ?? []) for (const r of rule.resources ?? []) for (const v of rule.verbs ?? []) {
        if (rule.resourceNames?.length) continue;
        granted.add(`${g}/${r} ${v}`);
      }
    }
    // Everyone's: system:basic-user lets any authenticated user ask what it may do.
    for (const self of ['authorization.k8s.io/selfsubjectaccessreviews create', 'authorization.k8s.io/selfsubjectrulesreviews create',
      'authentication.k8s.io/selfsubjectreviews create']) granted.delete(self);
    assert.deepEqual([...granted].sort(), [...NEEDED].sort(), `kubectl auth can-i --list -n ${app.name} differs from what the operator needs`);

    // And with kubectl auth can-i, per verb: in the app namespace and cluster-wide (the informers list all namespaces).
    for (const args of NEEDED_ARGS) {
      assert.equal(await canI([...args, '-n', app.name], op), true, `operator cannot ${args.join(' ')} in ${app.name}`);
      if (['list', 'watch'].includes(args[0]!)) assert.equal(await canI([...args, '--all-namespaces'], op), true, `cannot ${args.join(' ')} cluster-wide`);
    }
    // Its own Lease, in its own namespace, only.
    assert.equal(await canI(['get', `leases.coordination.k8s.io/${leaseName}`, '-n', OPERATOR_NS], op), true);
    assert.equal(await canI(['update', `leases.coordination.k8s.io/${leaseName}`, '-n', OPERATOR_NS], op), true);
    assert.equal(await canI(['create', 'leases.coordination.k8s.io', '-n', OPERATOR_NS], op), true);

    // What it must not do.
    for (const forbidden of [
      ['list', 'secrets', '-n', app.name], ['watch', 'secrets', '--all-namespaces'], ['create', 'secrets', '-n', app.name],
      ['update', 'secrets', '-n', app.name], ['delete', 'pods', '-n', app.name], ['create', 'pods', '-n', app.name],
      ['update', 'pods', '-n', app.name], ['create', 'pods/exec', '-n', app.name], ['update', 'pods', '--subresource=status', '-n', app.name], ['create', 'pgclusters.pgcluster.io', '-n', app.name],
      ['delete', 'pgclusters.pgcluster.io', '-n', app.name], ['delete', 'events', '-n', app.name],
      ['get', 'leases.coordination.k8s.io/someone-elses', '-n', OPERATOR_NS], ['delete', `leases.coordination.k8s.io/${leaseName}`, '-n', OPERATOR_NS],
      ['create', 'leases.coordination.k8s.io', '-n', app.name], ['list', 'leases.coordination.k8s.io', '-n', OPERATOR_NS],
      ['get', 'deployments.apps', '-n', app.name], ['list', 'nodes'], ['get', 'namespaces'], ['update', 'customresourcedefinitions.apiextensions.k8s.io'],
      ['create', 'clusterrolebindings.rbac.authorization.k8s.io'], ['create', 'rolebindings.rbac.authorization.k8s.io', '-n', app.name],
      ['impersonate', 'serviceaccounts', '-n', app.name], ['create', 'serviceaccounts/token', '-n', OPERATOR_NS],
    ]) {
      assert.equal(await canI(forbidden, op), false, `the operator may ${forbidden.join(' ')}, but must not`);
    }

    // The requests the operator's preflight makes, with its token, succeed.
    await runBin('kubectl', ['get', '--raw', '/apis/pgcluster.io/v1alpha1'], { env: { KUBECONFIG: cfg.path } });
    for (const what of ['pgclusters', 'pods', 'configmaps']) {
      await runBin('kubectl', ['get', what, '--all-namespaces', '--chunk-size=1', '-o', 'name'], { env: { KUBECONFIG: cfg.path } });
    }
    const denied = await runBin('kubectl', ['get', 'secrets', '-n', app.name], { env: { KUBECONFIG: cfg.path }, allowFail: true });
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /forbidden/);
  } finally {
    // Gone (RBAC objects have no finalizers) before the next holder of the lock looks at the grants.
    await kubectl(['delete', '--ignore-not-found', '-f', '-'], { input: rbac });
    unlock();
    await app.cleanup();
    cfg.cleanup();
  }
});

test('RBAC with watchNamespaces: the operator may work in the listed namespaces only', async () => {
  const [rel, watched, other] = await Promise.all([createNamespace('chart-rbac-rel'), createNamespace('chart-rbac-w'), createNamespace('chart-rbac-o')]);
  // A ServiceAccount of our own, checked by impersonation, so that other tests' grants cannot blur the answer.
  const who = { as: `system:serviceaccount:${rel.name}:pgco-pgcluster-operator` };
  try {
    const text = await template('pgco', rel.name, [`watchNamespaces={${watched.name}}`, 'leaderElection.enabled=false']);
    const rbac = docsOf(text).filter((d) => ['Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding'].includes(d.kind));
    assert.deepEqual(rbac.map((d) => `${d.kind}/${d.metadata.namespace}`).sort(), [`Role/${watched.name}`, `RoleBinding/${watched.name}`]);
    await kubectl(['apply', '-f', '-'], { input: rbac.map((d) => JSON.stringify(d)).join('\n') });
    await waitFor(() => canI(['list', 'pods', '-n', watched.name], who), { message: 'the RoleBinding to take effect', timeoutMs: 20_000 });
    for (const args of NEEDED_ARGS) {
      assert.equal(await canI([...args, '-n', watched.name], who), true, `cannot ${args.join(' ')} in the watched namespace`);
      assert.equal(await canI([...args, '-n', other.name], who), false, `may ${args.join(' ')} in a namespace it does not watch`);
    }
    assert.equal(await canI(['list', 'pods', '--all-namespaces'], who), false, 'no cluster-wide list');
    assert.equal(await canI(['create', 'leases.coordination.k8s.io', '-n', rel.name], who), false, 'no Lease without leader election');
  } finally {
    await Promise.all([rel.cleanup(), watched.cleanup(), other.cleanup()]);
  }
});
