// The few facts about a pod that the core needs; the Kubernetes adapter builds these from V1Pod.
export interface PodView {
  namespace: string;
  name: string;
  uid: string;
  labels: Readonly<Record<string, string>>;
  annotations: Readonly<Record<string, string>>;
  podIP: string | undefined;
  hostname: string | undefined;
  subdomain: string | undefined;
  ready: boolean;
  /** Running with condition ContainersReady True: every container started and passes its readiness probe. */
  containersReady: boolean;
  /** spec.readinessGates lists READINESS_GATE: the pod is Ready only once the operator says it is published. */
  gated: boolean;
  terminated: boolean; // phase Succeeded or Failed
  deleting: boolean; // deletionTimestamp set
}
