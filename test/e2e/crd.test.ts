// The PgCluster CRD against a real kube-apiserver: it installs, prints its columns, applies its defaults,
// and refuses every bad spec with the message of the rule that the spec breaks (README, "The PgCluster").
//
// Every invalid case asserts the distinctive text of each rule it breaks (the schema keyword's standard
// message and the CEL rule's own message), so removing any one validation from the CRD fails a case here.
//
// Needs KUBECONFIG and kubectl on PATH (set by `npm test`, or `source .stack/env` after `npm run stack -- up`).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { createNamespace, kubectl, kubectlJson, requireEnv, runBin, waitFor, type RunResult } from '../support/env.ts';
import { waitForCrdEstablished } from '../support/crd.ts';
import { testKube } from '../support/operator.ts';
import { EXAMPLES, exampleDir } from '../harness/examples.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const CRD_FILE = join(ROOT, 'manifests', 'crd', 'pgcluster.io_pgclusters.yaml');
const CRD_NAME = 'pgclusters.pgcluster.io';

let NS = '';
let cleanupNamespace = async (): Promise<void> => {};

/** kubectl that resolves with the exit code and output instead of throwing, for the cases that must fail. */
function kubectlRun(args: string[], input?: string): Promise<RunResult> {
  return runBin('kubectl', args, input === undefined ? { allowFail: true } : { input, allowFail: true });
}

// ---------------------------------------------------------------------------------------------------------
// PgCluster objects

type Obj = Record<string, any>;

let seq = 0;
function uniqueName(prefix: string): string {
  return `${prefix}-${++seq}`;
}

/** A minimal valid PgCluster; `mutate` edits its spec (delete fields, set bad values). */
function pgcluster(name: string, mutate: (spec: Obj) => void = () => {}): Obj {
  const spec: Obj = {
    selector: { matchLabels: { app: 'chat' } },
    postgres: { urlSecretRef: { name: 'chat-db' } },
  };
  mutate(spec);
  return { apiVersion: 'pgcluster.io/v1alpha1', kind: 'PgCluster', metadata: { name, namespace: NS }, spec };
}

function create(obj: Obj, ...flags: string[]): Promise<RunResult> {
  return kubectlRun(['create', '-f', '-', ...flags], JSON.stringify(obj));
}

// ---------------------------------------------------------------------------------------------------------
// Setup: install the CRD, wait until it serves, make a namespace of our own.

before(async () => {
  requireEnv();
  const applied = await kubectlRun(['apply', '--server-side', '--force-conflicts', '--field-manager=crd-test', '-f', CRD_FILE]);
  assert.equal(applied.code, 0, `the CRD does not apply:\n${applied.stderr}`);
  // The API server accepts some doubtful CRDs with a warning (e.g. about CEL cost or unknown fields): none allowed.
  assert.doesNotMatch(applied.stderr, /warning/i, `applying the CRD gave warnings:\n${applied.stderr}`);
  await waitForCrdEstablished(testKube(), CRD_NAME);
  const ns = await createNamespace('crd-test');
  NS = ns.name;
  cleanupNamespace = ns.cleanup;
  // Established can come a moment before the resource is served.
  await waitFor(async () => (await kubectlRun(['get', 'pgclusters', '-n', NS])).code === 0, { message: 'pgclusters to be served' });
});

after(async () => {
  if (!NS) return;
  await kubectlRun(['delete', 'pgclusters', '--all', '-n', NS, '--wait=false']);
  await cleanupNamespace();
});

// ---------------------------------------------------------------------------------------------------------
// The CRD itself

test('the CRD is Established with its names, short name and status subresource', async () => {
  const crd = await kubectlJson<Obj>(['get', 'crd', CRD_NAME]);
  const cond = (t: string) => crd.status.conditions.find((c: Obj) => c.type === t)?.status;
  assert.equal(cond('Established'), 'True');
  assert.equal(cond('NamesAccepted'), 'True');
  assert.equal(crd.spec.group, 'pgcluster.io');
  assert.equal(crd.spec.scope, 'Namespaced');
  assert.deepEqual(crd.status.acceptedNames.shortNames, ['pgc']);
  assert.equal(crd.status.acceptedNames.kind, 'PgCluster');
  assert.equal(crd.status.acceptedNames.singular, 'pgcluster');
  assert.equal(crd.status.acceptedNames.categories, undefined, 'no categories: `kubectl get all` must not list PgClusters');
  assert.deepEqual(crd.spec.versions.map((v: Obj) => [v.name, v.served, v.storage]), [['v1alpha1', true, true]]);
  assert.deepEqual(crd.spec.versions[0].subresources, { status: {} });
  const resources = await kubectl(['api-resources', '--api-group=pgcluster.io', '--no-headers']);
  assert.match(resources, /^pgclusters\s+pgc\s+pgcluster\.io\/v1alpha1\s+true\s+PgCluster\s*$/m);
});

test('every field of the schema has a description (kubectl explain shows it)', () => {
  const crd = parse(readFileSync(CRD_FILE, 'utf8'));
  const missing: string[] = [];
  const walk = (schema: Obj, path: string): void => {
    if (path !== '' && path !== '.metadata' && !schema.description) missing.push(path || '<root>');
    for (const [k, v] of Object.entries<Obj>(schema.properties ?? {})) walk(v, `${path}.${k}`);
    if (schema.items?.properties) walk(schema.items, `${path}[]`);
  };
  const root = crd.spec.versions[0].schema.openAPIV3Schema;
  assert.ok(root.description, 'the root schema has no description');
  walk(root, '');
  assert.deepEqual(missing, []);
  for (const v of crd.spec.versions) {
    for (const rules of collectRules(v.schema.openAPIV3Schema)) {
      assert.ok(rules.message, `CEL rule without a message: ${rules.rule}`);
    }
  }
});

function collectRules(schema: Obj): Obj[] {
  const out: Obj[] = [...(schema['x-kubernetes-validations'] ?? [])];
  for (const v of Object.values<Obj>(schema.properties ?? {})) out.push(...collectRules(v));
  if (schema.items) out.push(...collectRules(schema.items));
  if (typeof schema.additionalProperties === 'object') out.push(...collectRules(schema.additionalProperties));
  return out;
}

test('kubectl explain shows the field descriptions', async () => {
  // The OpenAPI document of a new CRD is published a little after it is Established.
  const out = await waitFor(async () => {
    const r = await kubectlRun(['explain', 'pgclusters.spec.channel']);
    return r.code === 0 ? r.stdout : undefined;
  }, { message: 'kubectl explain pgclusters.spec.channel' });
  assert.match(out, /libcluster_postgres/);
  assert.match(out, /\^\[a-z_\]\[a-z0-9_\]\{0,62\}\$/);
  const hb = await kubectl(['explain', 'pgc.spec.heartbeatInterval']);
  assert.match(hb, /From 1s to 1h/);
  const spec = await kubectl(['explain', 'pgclusters.spec']);
  for (const field of ['selector', 'postgres', 'channel', 'heartbeatInterval', 'peerTimeout', 'nodeName', 'publishNotReadyPods', 'maxPeers', 'output']) {
    assert.match(spec, new RegExp(`^\\s+${field}\\s`, 'm'), `kubectl explain pgclusters.spec does not list ${field}`);
  }
  assert.match(spec, /selector\s+<Object> -required-/);
  assert.match(spec, /postgres\s+<Object> -required-/);
});

// ---------------------------------------------------------------------------------------------------------
// Valid objects

test('the examples\' manifests (examples/*/k8s/) are valid as the API server sees them, in the namespace given', async () => {
  const applied = new Map<string, Obj[]>();
  for (const name of EXAMPLES) {
    const out = JSON.parse(await kubectl(['apply', '--dry-run=server', '-o', 'json', '-n', NS, '-f', join(exampleDir(name), 'k8s')])) as Obj;
    const items = (out.kind === 'List' ? out.items : [out]) as Obj[];
    assert.deepEqual(items.map((o) => `${o.kind} ${o.metadata.namespace}`).sort(), [`Deployment ${NS}`, `PgCluster ${NS}`], `examples/${name}/k8s`);
    applied.set(name, items);
  }
  const of = (name: string, kind: string) => applied.get(name)!.find((o) => o.kind === kind)!;
  // mounted-files: rollouts paced by discovery (the readiness gate, a preStop sleep); dns-cluster: the DNS output.
  const app = of('mounted-files', 'Deployment');
  assert.deepEqual(app.spec.template.spec.readinessGates, [{ conditionType: 'pgcluster.io/published' }]);
  assert.deepEqual(app.spec.template.spec.containers[0].lifecycle.preStop, { sleep: { seconds: 5 } });
  assert.deepEqual(of('dns-cluster', 'PgCluster').spec.output.service, {});
});

test('defaults are applied by the API server', async () => {
  const name = uniqueName('defaults');
  await kubectl(['create', '-f', '-'], { input: JSON.stringify(pgcluster(name)) });
  const got = await kubectlJson<Obj>(['get', 'pgcluster', name, '-n', NS]);
  assert.deepEqual(got.spec, {
    selector: { matchLabels: { app: 'chat' } },
    postgres: { urlSecretRef: { name: 'chat-db', key: 'url' } },
    heartbeatInterval: '5s',
    nodeName: { mode: 'ip', clusterDomain: 'cluster.local' },
    publishNotReadyPods: false,
    maxPeers: 1000,
    output: { podAnnotation: 'pgcluster.io/peers', podAnnotationFormat: 'list', annotationMinInterval: '0s' },
  });
  // channel, peerTimeout, nodeName.basename and output.configMapName are computed by the operator.
});

test('spec.postgres.tls: the CA key defaults to ca.crt; the rest is kept as written', async () => {
  const name = uniqueName('tls');
  const obj = pgcluster(name, (s) => { s.postgres.tls = { caSecretRef: { name: 'chat-db-ca' }, clientCertSecretRef: { name: 'chat-db-client' } }; });
  await kubectl(['create', '-f', '-'], { input: JSON.stringify(obj) });
  const got = await kubectlJson<Obj>(['get', 'pgcluster', name, '-n', NS]);
  assert.deepEqual(got.spec.postgres.tls, { caSecretRef: { name: 'chat-db-ca', key: 'ca.crt' }, clientCertSecretRef: { name: 'chat-db-client' } });
});

test('explicit values are kept, and podAnnotation "" (annotation off) is not replaced by the default', async () => {
  const name = uniqueName('explicit');
  const obj = pgcluster(name, (s) => {
    s.postgres.urlSecretRef.key = 'DATABASE_URL';
    s.channel = '_chat_2';
    s.heartbeatInterval = '1m30s';
    s.peerTimeout = '3m';
    s.nodeName = { basename: 'Chat_app-1', mode: 'hostname', clusterDomain: 'k8s.example.org' };
    s.publishNotReadyPods = true;
    s.maxPeers = 5000;
    s.output = { configMapName: 'chat.peers', podAnnotation: '', podAnnotationFormat: 'version', annotationMinInterval: '2s' };
    s.selector = { matchExpressions: [{ key: 'app.kubernetes.io/name', operator: 'In', values: ['chat', 'chat-canary'] }, { key: 'tier', operator: 'Exists' }] };
  });
  await kubectl(['create', '-f', '-'], { input: JSON.stringify(obj) });
  const got = await kubectlJson<Obj>(['get', 'pgcluster', name, '-n', NS]);
  assert.deepEqual(got.spec, obj.spec);
});

test('values at the edges of the ranges are accepted', async () => {
  const cases: [string, (s: Obj) => void][] = [
    ['heartbeat 1s with peerTimeout 2s', (s) => { s.heartbeatInterval = '1s'; s.peerTimeout = '2s'; }],
    ['heartbeat 1h', (s) => { s.heartbeatInterval = '1h'; }],
    ['heartbeat 1h with peerTimeout 2h', (s) => { s.heartbeatInterval = '1h'; s.peerTimeout = '2h'; }],
    ['heartbeat 0.5m with peerTimeout 60000ms', (s) => { s.heartbeatInterval = '0.5m'; s.peerTimeout = '60000ms'; }],
    ['heartbeat 3600000ms', (s) => { s.heartbeatInterval = '3600000ms'; }],
    ['heartbeat 59m60s', (s) => { s.heartbeatInterval = '59m60s'; }],
    ['heartbeat 1000ms', (s) => { s.heartbeatInterval = '1000ms'; }],
    ['channel of 63 characters', (s) => { s.channel = `_${'a'.repeat(62)}`; }],
    ['channel of 1 character', (s) => { s.channel = 'c'; }],
    ['maxPeers 1', (s) => { s.maxPeers = 1; }],
    ['maxPeers 5000', (s) => { s.maxPeers = 5000; }],
    ['basename of 200 characters', (s) => { s.nodeName = { basename: 'b'.repeat(200) }; }],
    ['podAnnotation without prefix', (s) => { s.output = { podAnnotation: 'peers' }; }],
    ['selector with matchLabels only', (s) => { s.selector = { matchLabels: { 'app.kubernetes.io/name': 'chat' } }; }],
    ['selector with matchExpressions only', (s) => { s.selector = { matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['x'] }] }; }],
    ['selector DoesNotExist with values []', (s) => { s.selector = { matchExpressions: [{ key: 'app', operator: 'DoesNotExist', values: [] }] }; }],
    ['tls.sslmode require with a CA', (s) => { s.postgres.tls = { sslmode: 'require', caSecretRef: { name: 'ca', key: 'bundle.pem' } }; }],
    ['tls.sslmode prefer alone', (s) => { s.postgres.tls = { sslmode: 'prefer' }; }],
    ['tls.sslmode verify-full with a client certificate only', (s) => { s.postgres.tls = { sslmode: 'verify-full', clientCertSecretRef: { name: 'me' } }; }],
  ];
  for (const [what, mutate] of cases) {
    const r = await create(pgcluster(uniqueName('edge'), mutate));
    assert.equal(r.code, 0, `${what}: refused:\n${r.stderr}`);
  }
});

test('kubectl get pgclusters / pgc prints NAME CHANNEL MEMBERS PEERS READY AGE; -o wide adds HEARTBEAT REASON', async () => {
  const name = uniqueName('columns');
  await kubectl(['create', '-f', '-'], { input: JSON.stringify(pgcluster(name, (s) => { s.channel = 'chat_cluster'; s.heartbeatInterval = '2s'; })) });
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const status = {
    observedGeneration: 1,
    channel: 'chat_cluster',
    members: 3,
    peers: 5,
    droppedPeers: 0,
    unannouncedPods: 1,
    conditions: [
      { type: 'Connected', status: 'True', reason: 'Listening', message: 'listening on chat_cluster', lastTransitionTime: now, observedGeneration: 1 },
      { type: 'Ready', status: 'True', reason: 'PeersPublished', message: '5 peers published', lastTransitionTime: now, observedGeneration: 1 },
    ],
  };
  await kubectl(['patch', 'pgcluster', name, '-n', NS, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })]);

  const table = (out: string) => out.trimEnd().split('\n').map((l) => l.trim().split(/\s+/));
  for (const resource of ['pgclusters', 'pgcluster', 'pgc']) {
    const [header, row] = table(await kubectl(['get', resource, name, '-n', NS]));
    assert.deepEqual(header, ['NAME', 'CHANNEL', 'MEMBERS', 'PEERS', 'READY', 'AGE'], `kubectl get ${resource}`);
    assert.deepEqual(row?.slice(0, 5), [name, 'chat_cluster', '3', '5', 'True']);
    assert.match(row?.[5] ?? '', /^\d+s$/);
  }
  const [header, row] = table(await kubectl(['get', 'pgc', name, '-n', NS, '-o', 'wide']));
  assert.deepEqual(header, ['NAME', 'CHANNEL', 'MEMBERS', 'PEERS', 'READY', 'AGE', 'HEARTBEAT', 'REASON']);
  assert.deepEqual([...(row ?? []).slice(0, 5), ...(row ?? []).slice(6)], [name, 'chat_cluster', '3', '5', 'True', '2s', 'PeersPublished']);

  // The status is a subresource: writing it through the main resource is ignored, and it keeps the generation.
  await kubectl(['patch', 'pgcluster', name, '-n', NS, '--type=merge', '-p', JSON.stringify({ status: { members: 42 } })]);
  const got = await kubectlJson<Obj>(['get', 'pgcluster', name, '-n', NS]);
  assert.equal(got.status.members, 3);
  assert.equal(got.metadata.generation, 1);
  assert.deepEqual(got.status, status);
});

// ---------------------------------------------------------------------------------------------------------
// Invalid objects: each refused, with the text of every rule it breaks.

// Standard messages of the OpenAPI keywords (k8s.io/kube-openapi validate + apimachinery field errors).
const pattern = (path: string) => `${path} in body should match`;
const required = (path: string) => `${path}: Required value`;
const tooLong = (path: string, n: number) => `${path}: Too long: may not be more than ${n} bytes`;
// The messages of the CEL rules (manifests/crd/pgcluster.io_pgclusters.yaml).
const MSG = {
  channel: 'channel must be 1 to 63 characters of lower-case letters, digits and \'_\', not beginning with a digit (for example chat_cluster): libcluster_postgres sends NOTIFY with the channel unquoted, which Postgres folds to lower case',
  heartbeatFormat: 'heartbeatInterval must be a duration such as 500ms, 5s, 1m30s or 1h',
  heartbeatRange: 'heartbeatInterval must be between 1s and 1h',
  peerTimeoutFormat: 'peerTimeout must be a duration such as 15s, 1m or 1m30s',
  peerTimeoutMin: 'peerTimeout must be at least 2 x heartbeatInterval',
  selectorEmpty: 'selector must have at least one matchLabels entry or matchExpressions requirement',
  labelKey: 'matchLabels keys must be valid label keys',
  labelValue: 'matchLabels values must be valid label values',
  exprValues: 'values must be non-empty when operator is In or NotIn, and must be empty or absent when operator is Exists or DoesNotExist',
  secretName: 'urlSecretRef.name must be a Secret name: a DNS-1123 subdomain',
  secretKey: 'urlSecretRef.key must be a Secret data key',
  tlsCaName: 'tls.caSecretRef.name must be a Secret name: a DNS-1123 subdomain',
  tlsCaKey: 'tls.caSecretRef.key must be a Secret data key',
  tlsClientName: 'tls.clientCertSecretRef.name must be a Secret name: a DNS-1123 subdomain',
  tlsWeakMode: 'tls.sslmode disable, allow and prefer would not use the CA or client certificate: use require, verify-ca or verify-full',
  basename: 'nodeName.basename must be the name part of an Erlang node name',
  clusterDomain: 'nodeName.clusterDomain must be a DNS name',
  configMapName: 'output.configMapName must be a ConfigMap name',
  podAnnotation: 'output.podAnnotation must be "" (no annotation) or an annotation key',
  podAnnotationOwn: 'output.podAnnotation must not be pgcluster.io/node-name, pgcluster.io/cluster or pgcluster.io/owner-*',
};
const cel = (path: string, message: string) => `${path}: Invalid value: "string": ${message}`;
const celObject = (path: string, message: string) => `${path}: Invalid value: "object": ${message}`;

interface Bad {
  name: string;
  mutate: (spec: Obj) => void;
  /** Every substring must be in kubectl's error output. */
  expect: string[];
  /** The refusal comes from a CEL rule that could not evaluate (expected only where said). */
  evalError?: boolean;
}

const long = (n: number, c = 'a') => c.repeat(n);

const BAD: Bad[] = [
  // channel
  ...['Chat_cluster', 'chat-cluster', '1chat', '', 'chat cluster', 'chät', 'chat.cluster'].map((channel): Bad => ({
    name: `channel ${JSON.stringify(channel)}`,
    mutate: (s) => { s.channel = channel; },
    expect: [pattern('spec.channel'), cel('spec.channel', MSG.channel), 'LISTENs with it quoted'],
  })),
  {
    // maxLength stops the checks of the field (and all CEL rules): its message is the one to act on.
    name: 'channel of 64 characters',
    mutate: (s) => { s.channel = long(64); },
    expect: [tooLong('spec.channel', 63)],
  },
  // heartbeatInterval
  ...['0s', '999ms', '0.9s', '1h0m1s', '2h', '61m'].map((hb): Bad => ({
    name: `heartbeatInterval ${hb}`,
    mutate: (s) => { s.heartbeatInterval = hb; },
    expect: [cel('spec.heartbeatInterval', `${MSG.heartbeatRange} (the default is 5s)`)],
  })),
  ...['five seconds', '5', '5 s', '5sec', '1d', '-5s', 's', '.5s', ''].map((hb): Bad => ({
    name: `heartbeatInterval ${JSON.stringify(hb)} (not a duration)`,
    mutate: (s) => { s.heartbeatInterval = hb; },
    expect: [pattern('spec.heartbeatInterval'), cel('spec.heartbeatInterval', MSG.heartbeatFormat)],
  })),
  {
    // Fits the pattern but overflows a Go duration: CEL's duration() fails, which still refuses it and names the rule.
    name: 'heartbeatInterval too large for a duration',
    mutate: (s) => { s.heartbeatInterval = '99999999999h'; },
    expect: [`spec.heartbeatInterval: Invalid value: "string": type conversion error from 'string' to 'google.protobuf.Duration' evaluating rule: ${MSG.heartbeatRange}`],
    evalError: true,
  },
  {
    name: 'heartbeatInterval longer than 32 characters',
    mutate: (s) => { s.heartbeatInterval = `${long(31, '0')}1s`; },
    expect: [tooLong('spec.heartbeatInterval', 32)],
  },
  // peerTimeout
  {
    name: 'peerTimeout below 2 x heartbeatInterval',
    mutate: (s) => { s.heartbeatInterval = '5s'; s.peerTimeout = '9s'; },
    expect: [`spec.peerTimeout: Invalid value: "object": ${MSG.peerTimeoutMin} (got peerTimeout 9s with heartbeatInterval 5s)`],
  },
  {
    name: 'peerTimeout below 2 x the default heartbeatInterval',
    mutate: (s) => { s.peerTimeout = '9999ms'; },
    expect: [`${MSG.peerTimeoutMin} (got peerTimeout 9999ms with heartbeatInterval 5s)`],
  },
  {
    name: 'peerTimeout below 2 x heartbeatInterval in other units',
    mutate: (s) => { s.heartbeatInterval = '1m'; s.peerTimeout = '119s'; },
    expect: [`${MSG.peerTimeoutMin} (got peerTimeout 119s with heartbeatInterval 1m)`],
  },
  ...['15', 'forever', '15s ', '1y'].map((pt): Bad => ({
    name: `peerTimeout ${JSON.stringify(pt)} (not a duration)`,
    mutate: (s) => { s.peerTimeout = pt; },
    expect: [pattern('spec.peerTimeout'), cel('spec.peerTimeout', MSG.peerTimeoutFormat)],
  })),
  {
    name: 'peerTimeout longer than 32 characters',
    mutate: (s) => { s.peerTimeout = `${long(31, '0')}1m`; },
    expect: [tooLong('spec.peerTimeout', 32)],
  },
  // nodeName
  {
    name: 'nodeName.mode unknown',
    mutate: (s) => { s.nodeName = { mode: 'fqdn' }; },
    expect: ['spec.nodeName.mode: Unsupported value: "fqdn": supported values: "ip", "dns", "hostname"'],
  },
  ...['chat@host', 'chat.app', 'chat app', ''].map((basename): Bad => ({
    name: `nodeName.basename ${JSON.stringify(basename)}`,
    mutate: (s) => { s.nodeName = { basename }; },
    expect: [pattern('spec.nodeName.basename'), cel('spec.nodeName.basename', MSG.basename)],
  })),
  {
    name: 'nodeName.basename of 201 characters',
    mutate: (s) => { s.nodeName = { basename: long(201, 'b') }; },
    expect: [tooLong('spec.nodeName.basename', 200)],
  },
  ...['cluster.local.', 'Cluster.Local', 'cluster..local', '-cluster.local', `${long(64)}.local`].map((clusterDomain): Bad => ({
    name: `nodeName.clusterDomain ${JSON.stringify(clusterDomain.length > 30 ? 'label of 64' : clusterDomain)}`,
    mutate: (s) => { s.nodeName = { clusterDomain }; },
    expect: [pattern('spec.nodeName.clusterDomain'), cel('spec.nodeName.clusterDomain', MSG.clusterDomain)],
  })),
  {
    name: 'nodeName.clusterDomain longer than 253 characters',
    mutate: (s) => { s.nodeName = { clusterDomain: Array(64).fill('abc').join('.') }; },
    expect: [tooLong('spec.nodeName.clusterDomain', 253)],
  },
  // selector
  {
    name: 'selector missing',
    mutate: (s) => { delete s.selector; },
    expect: [required('spec.selector')],
  },
  {
    name: 'selector {}',
    mutate: (s) => { s.selector = {}; },
    expect: [celObject('spec.selector', MSG.selectorEmpty), 'an empty selector would select every pod in the namespace'],
  },
  {
    name: 'selector with empty matchLabels and matchExpressions',
    mutate: (s) => { s.selector = { matchLabels: {}, matchExpressions: [] }; },
    expect: [celObject('spec.selector', MSG.selectorEmpty)],
  },
  {
    name: 'selector matchExpressions operator unknown',
    mutate: (s) => { s.selector = { matchExpressions: [{ key: 'app', operator: 'Equals', values: ['chat'] }] }; },
    expect: ['spec.selector.matchExpressions[0].operator: Unsupported value: "Equals": supported values: "In", "NotIn", "Exists", "DoesNotExist"'],
  },
  {
    name: 'selector matchExpressions In without values',
    mutate: (s) => { s.selector = { matchExpressions: [{ key: 'app', operator: 'In' }] }; },
    expect: [celObject('spec.selector.matchExpressions[0]', MSG.exprValues)],
  },
  {
    name: 'selector matchExpressions NotIn with values []',
    mutate: (s) => { s.selector = { matchExpressions: [{ key: 'app', operator: 'NotIn', values: [] }] }; },
    expect: [celObject('spec.selector.matchExpressions[0]', MSG.exprValues)],
  },
  {
    name: 'selector matchExpressions Exists with values',
    mutate: (s) => { s.selector = { matchExpressions: [{ key: 'app', operator: 'Exists', values: ['chat'] }] }; },
    expect: [celObject('spec.selector.matchExpressions[0]', MSG.exprValues)],
  },
  {
    name: 'selector matchExpressions without key',
    mutate: (s) => { s.selector = { matchExpressions: [{ operator: 'Exists' }] }; },
    expect: [required('spec.selector.matchExpressions[0].key')],
  },
  {
    name: 'selector matchExpressions without operator',
    mutate: (s) => { s.selector = { matchExpressions: [{ key: 'app' }] }; },
    expect: [required('spec.selector.matchExpressions[0].operator')],
  },
  {
    name: 'selector matchExpressions bad key',
    mutate: (s) => { s.selector = { matchExpressions: [{ key: 'app name', operator: 'Exists' }] }; },
    expect: [pattern('spec.selector.matchExpressions[0].key')],
  },
  {
    name: 'selector matchExpressions key longer than 317 characters',
    mutate: (s) => { s.selector = { matchExpressions: [{ key: `${Array(64).fill('abcd').join('.')}/app`, operator: 'Exists' }] }; },
    expect: [tooLong('spec.selector.matchExpressions[0].key', 317)],
  },
  {
    name: 'selector matchExpressions bad value',
    mutate: (s) => { s.selector = { matchExpressions: [{ key: 'app', operator: 'In', values: ['chat', 'chat app'] }] }; },
    expect: [pattern('spec.selector.matchExpressions[0].values[1]')],
  },
  {
    name: 'selector matchExpressions value longer than 63 characters',
    mutate: (s) => { s.selector = { matchExpressions: [{ key: 'app', operator: 'In', values: [long(64)] }] }; },
    expect: [tooLong('spec.selector.matchExpressions[0].values[0]', 63)],
  },
  {
    name: 'selector matchExpressions with more than 32 requirements',
    mutate: (s) => { s.selector = { matchExpressions: Array.from({ length: 33 }, (_, i) => ({ key: `k${i}`, operator: 'Exists' })) }; },
    expect: ['spec.selector.matchExpressions: Too many: 33: must have at most 32 items'],
  },
  {
    name: 'selector matchExpressions with more than 64 values',
    mutate: (s) => { s.selector = { matchExpressions: [{ key: 'app', operator: 'In', values: Array.from({ length: 65 }, (_, i) => `v${i}`) }] }; },
    expect: ['spec.selector.matchExpressions[0].values: Too many: 65: must have at most 64 items'],
  },
  {
    name: 'selector matchLabels bad key',
    mutate: (s) => { s.selector = { matchLabels: { 'app name': 'chat' } }; },
    expect: [celObject('spec.selector.matchLabels', MSG.labelKey)],
  },
  {
    name: 'selector matchLabels key with a name longer than 63 characters',
    mutate: (s) => { s.selector = { matchLabels: { [`example.com/${long(64)}`]: 'chat' } }; },
    expect: [celObject('spec.selector.matchLabels', MSG.labelKey)],
  },
  {
    name: 'selector matchLabels bad value',
    mutate: (s) => { s.selector = { matchLabels: { app: 'chat app' } }; },
    expect: [pattern('spec.selector.matchLabels.app'), celObject('spec.selector.matchLabels', MSG.labelValue)],
  },
  {
    name: 'selector matchLabels value longer than 63 characters',
    mutate: (s) => { s.selector = { matchLabels: { app: long(64) } }; },
    expect: [tooLong('spec.selector.matchLabels.app', 63)],
  },
  {
    name: 'selector matchLabels with more than 64 labels',
    mutate: (s) => { s.selector = { matchLabels: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])) }; },
    expect: ['spec.selector.matchLabels: Too many: 65: must have at most 64 items'],
  },
  // postgres
  {
    name: 'postgres missing',
    mutate: (s) => { delete s.postgres; },
    expect: [required('spec.postgres')],
  },
  {
    name: 'postgres.urlSecretRef missing',
    mutate: (s) => { s.postgres = {}; },
    expect: [required('spec.postgres.urlSecretRef')],
  },
  {
    name: 'postgres.urlSecretRef.name missing',
    mutate: (s) => { s.postgres = { urlSecretRef: { key: 'url' } }; },
    expect: [required('spec.postgres.urlSecretRef.name')],
  },
  ...['Chat-DB', 'chat_db', 'chat-', '', 'chat/db'].map((name): Bad => ({
    name: `postgres.urlSecretRef.name ${JSON.stringify(name)}`,
    mutate: (s) => { s.postgres.urlSecretRef.name = name; },
    expect: [pattern('spec.postgres.urlSecretRef.name'), cel('spec.postgres.urlSecretRef.name', MSG.secretName)],
  })),
  {
    name: 'postgres.urlSecretRef.name longer than 253 characters',
    mutate: (s) => { s.postgres.urlSecretRef.name = long(254); },
    expect: [tooLong('spec.postgres.urlSecretRef.name', 253)],
  },
  ...['url/x', 'database url', ''].map((key): Bad => ({
    name: `postgres.urlSecretRef.key ${JSON.stringify(key)}`,
    mutate: (s) => { s.postgres.urlSecretRef.key = key; },
    expect: [pattern('spec.postgres.urlSecretRef.key'), cel('spec.postgres.urlSecretRef.key', MSG.secretKey)],
  })),
  {
    name: 'postgres.urlSecretRef.key longer than 253 characters',
    mutate: (s) => { s.postgres.urlSecretRef.key = long(254); },
    expect: [tooLong('spec.postgres.urlSecretRef.key', 253)],
  },
  // postgres.tls
  {
    name: 'postgres.tls.sslmode not an sslmode',
    mutate: (s) => { s.postgres.tls = { sslmode: 'verify' }; },
    expect: ['spec.postgres.tls.sslmode: Unsupported value: "verify"', '"verify-full"'],
  },
  ...['disable', 'allow', 'prefer'].map((sslmode): Bad => ({
    name: `postgres.tls.sslmode ${sslmode} with a CA`,
    mutate: (s) => { s.postgres.tls = { sslmode, caSecretRef: { name: 'ca' } }; },
    expect: [celObject('spec.postgres.tls', MSG.tlsWeakMode)],
  })),
  {
    name: 'postgres.tls.sslmode prefer with a client certificate',
    mutate: (s) => { s.postgres.tls = { sslmode: 'prefer', clientCertSecretRef: { name: 'me' } }; },
    expect: [celObject('spec.postgres.tls', MSG.tlsWeakMode)],
  },
  {
    name: 'postgres.tls.caSecretRef.name missing',
    mutate: (s) => { s.postgres.tls = { caSecretRef: { key: 'ca.crt' } }; },
    expect: [required('spec.postgres.tls.caSecretRef.name')],
  },
  {
    name: 'postgres.tls.caSecretRef.name not a Secret name',
    mutate: (s) => { s.postgres.tls = { caSecretRef: { name: 'Chat_CA' } }; },
    expect: [pattern('spec.postgres.tls.caSecretRef.name'), cel('spec.postgres.tls.caSecretRef.name', MSG.tlsCaName)],
  },
  {
    name: 'postgres.tls.caSecretRef.key not a data key',
    mutate: (s) => { s.postgres.tls = { caSecretRef: { name: 'ca', key: 'ca/crt' } }; },
    expect: [pattern('spec.postgres.tls.caSecretRef.key'), cel('spec.postgres.tls.caSecretRef.key', MSG.tlsCaKey)],
  },
  {
    name: 'postgres.tls.clientCertSecretRef.name not a Secret name',
    mutate: (s) => { s.postgres.tls = { clientCertSecretRef: { name: 'me/you' } }; },
    expect: [pattern('spec.postgres.tls.clientCertSecretRef.name'), cel('spec.postgres.tls.clientCertSecretRef.name', MSG.tlsClientName)],
  },
  // maxPeers
  {
    name: 'maxPeers 0',
    mutate: (s) => { s.maxPeers = 0; },
    expect: ['spec.maxPeers: Invalid value: 0: spec.maxPeers in body should be greater than or equal to 1'],
  },
  {
    name: 'maxPeers 5001 (more than the outputs\' byte budgets hold)',
    mutate: (s) => { s.maxPeers = 5001; },
    expect: ['spec.maxPeers: Invalid value: 5001: spec.maxPeers in body should be less than or equal to 5000'],
  },
  {
    name: 'maxPeers not an integer',
    mutate: (s) => { s.maxPeers = 1.5; },
    expect: ['spec.maxPeers: Invalid value: "number": spec.maxPeers in body must be of type integer'],
  },
  // output
  ...['-peers', 'Chat-Peers', 'chat_peers', ''].map((configMapName): Bad => ({
    name: `output.configMapName ${JSON.stringify(configMapName)}`,
    mutate: (s) => { s.output = { configMapName }; },
    expect: [pattern('spec.output.configMapName'), cel('spec.output.configMapName', MSG.configMapName)],
  })),
  {
    name: 'output.configMapName longer than 253 characters',
    mutate: (s) => { s.output = { configMapName: long(254) }; },
    expect: [tooLong('spec.output.configMapName', 253)],
  },
  ...['pgcluster.io/peers list', 'pgcluster.io/', '/peers', 'Pgcluster.io/peers', 'a/b/c', '-peers', `pgcluster.io/${long(64)}`].map(
    (podAnnotation): Bad => ({
      name: `output.podAnnotation ${JSON.stringify(podAnnotation.length > 30 ? 'name of 64' : podAnnotation)}`,
      mutate: (s) => { s.output = { podAnnotation }; },
      expect: [pattern('spec.output.podAnnotation'), cel('spec.output.podAnnotation', MSG.podAnnotation)],
    }),
  ),
  ...['pgcluster.io/node-name', 'pgcluster.io/cluster', 'pgcluster.io/owner-40ffda469b511a8c'].map((podAnnotation): Bad => ({
    name: `output.podAnnotation ${podAnnotation}, a key of the operator's own`,
    mutate: (s) => { s.output = { podAnnotation }; },
    expect: [cel('spec.output.podAnnotation', MSG.podAnnotationOwn), 'choose another key'],
  })),
  {
    name: 'output.podAnnotation longer than 317 characters',
    mutate: (s) => { s.output = { podAnnotation: `${Array(64).fill('abcd').join('.')}/peers` }; },
    expect: [tooLong('spec.output.podAnnotation', 317)],
  },
  // types
  {
    name: 'publishNotReadyPods not a boolean',
    mutate: (s) => { s.publishNotReadyPods = 'yes'; },
    expect: ['spec.publishNotReadyPods: Invalid value: "string": spec.publishNotReadyPods in body must be of type boolean'],
  },
];

test('invalid specs are refused by the API server with the message of the rule they break', async (t) => {
  for (const bad of BAD) {
    await t.test(bad.name, async () => {
      const obj = pgcluster(uniqueName('bad'), bad.mutate);
      const r = await create(obj, '--dry-run=server');
      assert.notEqual(r.code, 0, `accepted: ${JSON.stringify(obj.spec)}`);
      assert.match(r.stderr, /is invalid/, r.stderr);
      for (const want of bad.expect) {
        assert.ok(r.stderr.includes(want), `missing ${JSON.stringify(want)} in:\n${r.stderr}`);
      }
      // A CEL rule that errors (e.g. duration() of a non-duration) instead of failing gives no useful message.
      if (!bad.evalError) assert.doesNotMatch(r.stderr, /evaluating rule|rule compile error|cost budget/, r.stderr);
    });
  }
});

test('a PgCluster without spec is refused', async () => {
  const r = await kubectlRun(['create', '-f', '-'], JSON.stringify({ apiVersion: 'pgcluster.io/v1alpha1', kind: 'PgCluster', metadata: { name: uniqueName('nospec'), namespace: NS } }));
  assert.notEqual(r.code, 0);
  assert.ok(r.stderr.includes(required('spec')), r.stderr);
});

test('invalid status is refused through the status subresource', async (t) => {
  const name = uniqueName('status');
  await kubectl(['create', '-f', '-'], { input: JSON.stringify(pgcluster(name)) });
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const cond = { type: 'Ready', status: 'True', reason: 'PeersPublished', message: '', lastTransitionTime: now };
  const atLeast0 = (f: string) => `status.${f}: Invalid value: -1: ${f} in body should be greater than or equal to 0`;
  const cases: [string, Obj, string[]][] = [
    ['negative members', { members: -1 }, [atLeast0('members')]],
    ['negative peers', { peers: -1 }, [atLeast0('peers')]],
    ['negative droppedPeers', { droppedPeers: -1 }, [atLeast0('droppedPeers')]],
    ['negative unannouncedPods', { unannouncedPods: -1 }, [atLeast0('unannouncedPods')]],
    ['negative observedGeneration', { observedGeneration: -1 }, [atLeast0('observedGeneration')]],
    ['condition status Maybe', { conditions: [{ ...cond, status: 'Maybe' }] }, ['status.conditions[0].status: Unsupported value: "Maybe": supported values: "True", "False", "Unknown"']],
    ['condition with a bad type', { conditions: [{ ...cond, type: 'Peers published' }] }, ['status.conditions[0].type: Invalid value: "Peers published": conditions[0].type in body should match']],
    ['condition reason not CamelCase', { conditions: [{ ...cond, reason: 'peers published' }] }, ['status.conditions[0].reason: Invalid value: "peers published": conditions[0].reason in body should match']],
    ['condition with a bad lastTransitionTime', { conditions: [{ ...cond, lastTransitionTime: 'yesterday' }] }, ['conditions[0].lastTransitionTime in body must be of type date-time']],
    ['condition with only type and status', { conditions: [{ type: 'Ready', status: 'True' }] }, ['status.conditions[0].lastTransitionTime: Required value', 'status.conditions[0].reason: Required value', 'status.conditions[0].message: Required value']],
    ['condition without type and status', { conditions: [{ reason: 'R', message: '', lastTransitionTime: now }] }, ['status.conditions[0].type: Required value', 'status.conditions[0].status: Required value']],
    ['two conditions of one type', { conditions: [cond, cond] }, ['status.conditions[1]: Duplicate value: {"type":"Ready"}']],
    ['condition with an empty reason', { conditions: [{ ...cond, reason: '' }] }, ['status.conditions[0].reason: Invalid value: "": conditions[0].reason in body should be at least 1 chars long']],
    ['condition with a negative observedGeneration', { conditions: [{ ...cond, observedGeneration: -1 }] }, ['status.conditions[0].observedGeneration: Invalid value: -1: conditions[0].observedGeneration in body should be greater than or equal to 0']],
    ['condition type longer than 316 characters', { conditions: [{ ...cond, type: `${Array(60).fill('abcd').join('.')}/${'T'.repeat(20)}` }] }, ['status.conditions[0].type: Too long: may not be more than 316 bytes']],
    ['condition reason longer than 1024 characters', { conditions: [{ ...cond, reason: 'R'.repeat(1025) }] }, ['status.conditions[0].reason: Too long: may not be more than 1024 bytes']],
    ['condition message longer than 32768 characters', { conditions: [{ ...cond, message: 'm'.repeat(32769) }] }, ['status.conditions[0].message: Too long: may not be more than 32768 bytes']],
    ['more than 16 conditions', { conditions: Array.from({ length: 17 }, (_, i) => ({ ...cond, type: `Type${i}` })) }, ['status.conditions: Too many: 17: must have at most 16 items']],
  ];
  for (const [what, status, wants] of cases) {
    await t.test(what, async () => {
      const r = await kubectlRun(['patch', 'pgcluster', name, '-n', NS, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })]);
      assert.notEqual(r.code, 0, `accepted: ${JSON.stringify(status)}`);
      for (const want of wants) assert.ok(r.stderr.includes(want), `missing ${JSON.stringify(want)} in:\n${r.stderr}`);
    });
  }
});
