// Every write the controller makes, one method per API call (Writer): the real one over the KubeClient, and the
// fence that refuses them all once this replica may no longer write (it lost its Lease, or is stopping).
// Tests pass a recording fake (test/support/controllerKit.ts).
import type { KubeClient, KubeObject } from '../../kube/client.ts';
import {
  createConfigMap, createEvent, createOutput, deleteConfigMap, deleteOutput, patchConfigMap, patchOutput, patchPodAnnotations, patchPodCondition, patchStatus, setFinalizers,
  type ConfigMapObject, type EventInput, type Guard, type OutputKind, type PgClusterObject,
} from '../../kube/resources.ts';
import type { PodCondition } from '../../kube/pods.ts';
import type { PgClusterStatus } from '../../core/spec.ts';
import type { Clock } from '../../core/clock.ts';

/** Every write the controller makes: one method, one API call. Tests pass a recording fake. */
export interface Writer {
  createConfigMap(cm: ConfigMapObject): Promise<ConfigMapObject>;
  patchConfigMap(ns: string, name: string, patch: { data: Record<string, string | null>; labels: Record<string, string>; resourceVersion?: string }): Promise<ConfigMapObject>;
  deleteConfigMap(ns: string, name: string): Promise<void>;
  /** Sets (string) or removes (null) annotations; with a guard, only while that annotation has that value (422 otherwise). */
  patchPodAnnotations(ns: string, name: string, annotations: Record<string, string | null>, guard?: Guard): Promise<unknown>;
  /** Sets one condition of a pod's status (pods/status): the readiness gate. */
  patchPodCondition(ns: string, name: string, condition: PodCondition): Promise<unknown>;
  patchStatus(ns: string, name: string, status: PgClusterStatus): Promise<unknown>;
  /** With `annotations`: added in the same write (the first reconcile records the PgCluster's defaults). */
  setFinalizers(pc: PgClusterObject, finalizers: string[], annotations?: Record<string, string>): Promise<PgClusterObject>;
  createEvent(pc: PgClusterObject, ev: EventInput): Promise<unknown>;
  /** The DNS output's Service and EndpointSlices. */
  createOutput(kind: OutputKind, obj: KubeObject): Promise<KubeObject>;
  patchOutput(kind: OutputKind, ns: string, name: string, body: Record<string, unknown>): Promise<KubeObject>;
  deleteOutput(kind: OutputKind, ns: string, name: string): Promise<void>;
}

export function kubeWriter(kube: KubeClient, identity: string, clock: Clock): Writer {
  return {
    createConfigMap: (cm) => createConfigMap(kube, cm),
    patchConfigMap: (ns, name, patch) => patchConfigMap(kube, ns, name, patch),
    deleteConfigMap: (ns, name) => deleteConfigMap(kube, ns, name),
    patchPodAnnotations: (ns, name, a, guard) => patchPodAnnotations(kube, ns, name, a, guard),
    patchPodCondition: (ns, name, c) => patchPodCondition(kube, ns, name, c),
    patchStatus: (ns, name, status) => patchStatus(kube, ns, name, status),
    setFinalizers: (pc, f, a) => setFinalizers(kube, pc, f, a),
    createEvent: (pc, ev) => createEvent(kube, pc, ev, identity, clock.now()),
    createOutput: (kind, obj) => createOutput(kube, kind, obj),
    patchOutput: (kind, ns, name, body) => patchOutput(kube, kind, ns, name, body),
    deleteOutput: (kind, ns, name) => deleteOutput(kube, kind, ns, name),
  };
}

/** Refused writes of a replica that no longer may write (it lost its Lease, or is stopping). */
export class WritesFenced extends Error {
  constructor(what: string) {
    super(`not writing (${what}): this replica has stopped leading`);
    this.name = 'WritesFenced';
  }
}

/** `inner`, refusing every write (WritesFenced) once `allowed()` answers false. */
export function fencedWriter(inner: Writer, allowed: () => boolean): Writer {
  const guard = <R>(what: string, write: () => Promise<R>): Promise<R> => (allowed() ? write() : Promise.reject(new WritesFenced(what)));
  return {
    createConfigMap: (cm) => guard('create ConfigMap', () => inner.createConfigMap(cm)),
    patchConfigMap: (ns, name, patch) => guard('patch ConfigMap', () => inner.patchConfigMap(ns, name, patch)),
    deleteConfigMap: (ns, name) => guard('delete ConfigMap', () => inner.deleteConfigMap(ns, name)),
    patchPodAnnotations: (ns, name, a, marker) => guard('patch pod annotations', () => inner.patchPodAnnotations(ns, name, a, marker)),
    patchPodCondition: (ns, name, c) => guard('patch pod condition', () => inner.patchPodCondition(ns, name, c)),
    patchStatus: (ns, name, status) => guard('patch PgCluster status', () => inner.patchStatus(ns, name, status)),
    setFinalizers: (pc, f, a) => guard('set PgCluster finalizers', () => inner.setFinalizers(pc, f, a)),
    createEvent: (pc, ev) => guard('create Event', () => inner.createEvent(pc, ev)),
    createOutput: (kind, obj) => guard(`create ${kind}`, () => inner.createOutput(kind, obj)),
    patchOutput: (kind, ns, name, body) => guard(`patch ${kind}`, () => inner.patchOutput(kind, ns, name, body)),
    deleteOutput: (kind, ns, name) => guard(`delete ${kind}`, () => inner.deleteOutput(kind, ns, name)),
  };
}
