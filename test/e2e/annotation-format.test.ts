// spec.output.podAnnotationFormat (issue 24, README "Outputs") against the real API server and Postgres: with
// `version` every selected pod's annotation carries "<count>/sha256:<16 hex>" of the ConfigMap's peers file as
// written, the ConfigMap keeps the list, a membership change moves both, and the format switches back and
// forth on a live PgCluster; the API server refuses any other value (the CRD's enum); `kubectl get` shows the
// same columns as ever. Pods are reported Ready by the test (no kubelet needed for this).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { kubectl, requireEnv, waitFor } from '../support/env.ts';
import { createPgCluster, createPod, operatorInNamespace, type OperatorProcess, podAnnotation, testKube, waitForPeers } from '../support/operator.ts';
import { paths } from '../../src/kube/resources.ts';

const kube = testKube();

/** The version form, computed here from the ConfigMap's text (not with the operator's code). */
const versionOf = (peersText: string) => `${peersText.split('\n').filter(Boolean).length}/sha256:${createHash('sha256').update(peersText).digest('hex').slice(0, 16)}`;

describe('podAnnotationFormat: the list, or its version', () => {
  let ns: { name: string; cleanup(): Promise<void> };
  let op: OperatorProcess;
  let n: string;
  const peersText = async (cm: string) => (await kube.getOptional<{ data?: Record<string, string> }>(paths.configMap(n, cm)))?.data?.peers;

  /** Waits until the ConfigMap lists exactly `names` and every pod's annotation carries its version. */
  async function waitForVersion(pods: string[], names: string[]): Promise<string> {
    const text = [...names].sort().map((x) => `${x}\n`).join('');
    const want = versionOf(text);
    await waitFor(async () => {
      if ((await peersText('fmt-peers')) !== text) return false;
      for (const p of pods) if ((await podAnnotation(kube, n, p)) !== want) return false;
      return true;
    }, { timeoutMs: 20_000, message: `ConfigMap ${n}/fmt-peers lists ${names.join(',')} and pods ${pods.join(',')} carry ${want}` });
    return want;
  }

  before(async () => {
    ({ ns, op } = await operatorInNamespace(kube, 'e2e-fmt', requireEnv().databaseUrl));
    n = ns.name;
  });
  after(async () => {
    const code = await op?.stop();
    await ns?.cleanup();
    assert.equal(code, 0, 'the operator exits 0 on SIGTERM');
  });

  test('version: the annotation is the version of the ConfigMap\'s list; a join moves both; list and back again on a live PgCluster', async () => {
    await createPod(kube, n, { name: 'fmt-1', labels: { app: 'fmt' }, ip: '10.80.0.1' });
    await createPod(kube, n, { name: 'fmt-2', labels: { app: 'fmt' }, ip: '10.80.0.2' });
    await createPgCluster(kube, n, 'fmt', {
      selector: { matchLabels: { app: 'fmt' } }, postgres: { urlSecretRef: { name: 'db' } }, channel: `${n.replace(/-/g, '_')}_fmt`, heartbeatInterval: '1s',
      output: { podAnnotationFormat: 'version' },
    });
    const two = await waitForVersion(['fmt-1', 'fmt-2'], ['fmt@10.80.0.1', 'fmt@10.80.0.2']);
    assert.match(two, /^2\/sha256:[0-9a-f]{16}$/);

    await createPod(kube, n, { name: 'fmt-3', labels: { app: 'fmt' }, ip: '10.80.0.3' });
    const three = await waitForVersion(['fmt-1', 'fmt-2', 'fmt-3'], ['fmt@10.80.0.1', 'fmt@10.80.0.2', 'fmt@10.80.0.3']);
    assert.match(three, /^3\/sha256:/);

    // To list on the live PgCluster: the names come back on every pod; the ConfigMap does not change.
    const pods = ['fmt-1', 'fmt-2', 'fmt-3'];
    const names = ['fmt@10.80.0.1', 'fmt@10.80.0.2', 'fmt@10.80.0.3'];
    await kube.patch(paths.pgcluster(n, 'fmt'), { spec: { output: { podAnnotationFormat: 'list' } } }, 'pgclusters');
    await waitForPeers(kube, n, 'fmt-peers', pods, names);
    // And back to version.
    await kube.patch(paths.pgcluster(n, 'fmt'), { spec: { output: { podAnnotationFormat: 'version' } } }, 'pgclusters');
    assert.equal(await waitForVersion(pods, names), three);

    // `kubectl get` shows the columns it always did.
    const table = await waitFor(async () => {
      const t = await kubectl(['get', 'pgclusters', 'fmt'], { ns: n });
      return /^fmt\s+\S+\s+3\s+3\s+True\s/m.test(t) && t;
    }, { message: 'kubectl get pgclusters: fmt with 3 members, 3 peers, Ready' });
    assert.match(table, /^NAME\s+CHANNEL\s+MEMBERS\s+PEERS\s+READY\s+AGE\s*$/m);
  });

  test('any other value is refused by the API server (the CRD\'s enum); unset is list', async () => {
    await assert.rejects(
      createPgCluster(kube, n, 'bad', { selector: { matchLabels: { app: 'bad' } }, postgres: { urlSecretRef: { name: 'db' } }, output: { podAnnotationFormat: 'digest' } }),
      /podAnnotationFormat.*Unsupported value: "digest"|Unsupported value: "digest".*podAnnotationFormat/s,
    );
    await createPgCluster(kube, n, 'plain', { selector: { matchLabels: { app: 'plain' } }, postgres: { urlSecretRef: { name: 'db' } }, output: {} });
    const pc = await kube.get<{ spec: { output?: { podAnnotationFormat?: string } } }>(paths.pgcluster(n, 'plain'));
    assert.equal(pc.spec.output?.podAnnotationFormat, 'list', 'the CRD\'s default');
  });
});
