// The Kubernetes adapter's pure part: which resource an API path names (the label of the request metrics).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resourceOf } from '../../src/kube/client.ts';

const cases: [string, string][] = [
  ['/api/v1/namespaces/prod/pods', 'pods'],
  ['/api/v1/namespaces/prod/pods/chat-0', 'pods'],
  ['/api/v1/namespaces/prod/configmaps/chat-peers?fieldManager=pgcluster-operator', 'configmaps'],
  ['/api/v1/namespaces/prod', 'namespaces'],
  ['/api/v1/pods', 'pods'],
  ['/apis/pgcluster.io/v1alpha1/namespaces/prod/pgclusters/chat/status', 'pgclusters/status'],
  ['/apis/pgcluster.io/v1alpha1/pgclusters', 'pgclusters'],
  ['/apis/coordination.k8s.io/v1/namespaces/pgcluster-system/leases/pgcluster-operator', 'leases'],
  ['/apis/apiextensions.k8s.io/v1/customresourcedefinitions/pgclusters.pgcluster.io', 'customresourcedefinitions'],
  ['/apis/discovery.k8s.io/v1/namespaces/prod/endpointslices', 'endpointslices'],
  ['/version', 'unknown'],
];
for (const [path, resource] of cases) {
  test(`resourceOf ${path}`, () => assert.equal(resourceOf(path), resource));
}
