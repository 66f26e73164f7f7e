// Installing the PgCluster CRD for a test (or the demo), and waiting until it serves.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { API_GROUP, API_VERSION, PLURAL } from '../../src/core/spec.ts';
import type { KubeClient } from '../../src/kube/client.ts';
import { kubectl, waitFor } from './env.ts';

export const CRD_NAME = `${PLURAL}.${API_GROUP}`;
export const CRD_FILE = join(resolve(dirname(fileURLToPath(import.meta.url)), '../..'), 'manifests', 'crd', 'pgcluster.io_pgclusters.yaml');

/**
 * Waits until a CRD is Established and its resource is served. Polls the objects rather than `kubectl wait
 * --for=condition=Established`, which fails at once (".status.conditions accessor error") when it runs before
 * the API server has written any condition, as happens right after the CRD is created on a busy machine.
 */
export async function waitForCrdEstablished(kube: Pick<KubeClient, 'getOptional'>, name = CRD_NAME, timeoutMs = 60_000): Promise<void> {
  await waitFor(async () => {
    const crd = await kube.getOptional<{ status?: { conditions?: { type: string; status: string }[] } }>(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`);
    return crd?.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') === true;
  }, { timeoutMs, message: `CRD ${name} Established` });
  if (name !== CRD_NAME) return;
  await waitFor(async () => {
    const list = await kube.getOptional<{ resources?: { name: string }[] }>(`/apis/${API_GROUP}/${API_VERSION}`);
    return list?.resources?.some((r) => r.name === PLURAL) === true;
  }, { timeoutMs, message: `${API_GROUP}/${API_VERSION} ${PLURAL} served` });
}

/**
 * Applies the CRD (server-side: test files running at once may apply it together; a lost race is retried)
 * and waits until it serves.
 */
export async function installCrd(kube: Pick<KubeClient, 'getOptional'>, fieldManager = 'pgco-e2e'): Promise<void> {
  await waitFor(async () => {
    await kubectl(['apply', '--server-side', '--force-conflicts', `--field-manager=${fieldManager}`, '-f', CRD_FILE]);
    return true;
  }, { timeoutMs: 30_000, intervalMs: 200, message: 'the CRD applied' });
  await waitForCrdEstablished(kube);
}

/**
 * Readies the CRD for a `helm install` of the chart as release/namespace: other test files apply it with
 * kubectl at any moment, so it is installed first and labelled for the release to adopt, as the chart README
 * tells users who installed the CRD with kubectl. Hold lockStack('crd-release') around the install.
 */
export async function crdForRelease(kube: Pick<KubeClient, 'getOptional'>, release: string, namespace: string): Promise<void> {
  await installCrd(kube, 'test-support');
  await kubectl(['label', '--overwrite', 'crd', CRD_NAME, 'app.kubernetes.io/managed-by=Helm']);
  await kubectl(['annotate', '--overwrite', 'crd', CRD_NAME, `meta.helm.sh/release-name=${release}`, `meta.helm.sh/release-namespace=${namespace}`]);
}
