// Fixtures for unit tests of the controller: objects as the caches hold them, a Writer that records every
// call (and can be told to fail one), in-memory caches, and a Context around them.
import pino from 'pino';
import { WRITE_CONCURRENCY } from '../../src/controller/write/apply.ts';
import type { Writer } from '../../src/controller/write/writer.ts';
import { WriteMemo } from '../../src/controller/write/writeMemo.ts';
import { Semaphore } from '../../src/core/limit.ts';
import type { Cache, Context } from '../../src/controller/context.ts';
import type { EndpointPool } from '../../src/controller/endpointPool.ts';
import { RuntimeRegistry } from '../../src/controller/runtime/registry.ts';
import { podFanOut } from '../../src/controller/steps/apply.ts';
import { SecretSource } from '../../src/controller/secrets.ts';
import { ANNOTATED_LABEL, DEFAULTS_ANNOTATION, FINALIZER, READINESS_GATE, defaultsToRecord, type PgClusterSpec, type PgClusterStatus } from '../../src/core/spec.ts';
import type { KubeObject } from '../../src/kube/client.ts';
import type { PodCondition, PodObject } from '../../src/kube/pods.ts';
import type { ConfigMapObject, EndpointSliceObject, EventInput, Guard, OutputKind, PgClusterObject, SecretObject, ServiceObject } from '../../src/kube/resources.ts';
import { Metrics } from '../../src/metrics.ts';
import { FakeClock } from './fakeClock.ts';

export const NS = 'prod';

/** A PgCluster as cached; by default already adopted (our finalizer, its defaults recorded) unless `recorded: false`. */
export function pgcluster(name: string, spec: PgClusterSpec, extra: { status?: PgClusterStatus; finalizers?: string[]; deleting?: boolean; created?: string; recorded?: boolean } = {}): PgClusterObject {
  return {
    apiVersion: 'pgcluster.io/v1alpha1', kind: 'PgCluster',
    metadata: {
      name, namespace: NS, uid: `uid-${name}`, generation: 1, resourceVersion: '1',
      ...(extra.recorded === false ? {} : { annotations: { [DEFAULTS_ANNOTATION]: defaultsToRecord({ metadata: { namespace: NS, name } }) } }),
      finalizers: extra.finalizers ?? [FINALIZER], ...(extra.created ? { creationTimestamp: extra.created } : {}), ...(extra.deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}),
    },
    spec,
    ...(extra.status ? { status: extra.status } : {}),
  };
}

/**
 * A pod as the cache holds it: Running, Ready unless `ready: false`. `gated`: its spec lists the readiness gate
 * (READINESS_GATE), and its status says ContainersReady (`containersReady`, default: as `ready`); `gate`: the
 * gate's condition in its status.
 */
export function pod(name: string, o: { labels?: Record<string, string>; annotations?: Record<string, string>; ip?: string; ready?: boolean; rv?: string; gated?: boolean; containersReady?: boolean; gate?: PodCondition } = {}): PodObject {
  const flag = (b: boolean) => (b ? 'True' : 'False');
  const ready = o.ready ?? true;
  return {
    metadata: { name, namespace: NS, uid: `uid-${name}`, resourceVersion: o.rv ?? '1', labels: o.labels ?? {}, annotations: o.annotations ?? {} },
    spec: o.gated ? { readinessGates: [{ conditionType: READINESS_GATE }] } : {},
    status: {
      phase: 'Running', podIP: o.ip,
      conditions: [
        { type: 'Ready', status: flag(ready) },
        ...(o.gated ? [{ type: 'ContainersReady', status: flag(o.containersReady ?? ready) }] : []),
        ...(o.gate ? [o.gate] : []),
      ],
    },
  };
}

export const chatSpec: PgClusterSpec = { selector: { matchLabels: { app: 'chat' } }, postgres: { urlSecretRef: { name: 'db' } }, channel: 'chat' };

export type WriterCall =
  | { verb: 'createConfigMap'; name: string; data: Record<string, string> }
  | { verb: 'patchConfigMap'; name: string; data: Record<string, string | null> }
  | { verb: 'deleteConfigMap'; name: string }
  | { verb: 'patchPodAnnotations'; name: string; annotations: Record<string, string | null>; guard?: Guard }
  | { verb: 'patchPodCondition'; name: string; condition: PodCondition }
  | { verb: 'patchStatus'; name: string; status: PgClusterStatus }
  | { verb: 'setFinalizers'; name: string; finalizers: string[]; annotations?: Record<string, string> }
  | { verb: 'createEvent'; name: string; event: EventInput }
  | { verb: 'createOutput' | 'patchOutput'; kind: OutputKind; name: string; body: Record<string, unknown> }
  | { verb: 'deleteOutput'; kind: OutputKind; name: string };

/** A Writer that records calls in order; `fail` makes a call throw (once per match) before it is recorded. */
export class RecordingWriter implements Writer {
  calls: WriterCall[] = [];
  fail: ((c: WriterCall) => unknown) | undefined;
  #rv = 100;

  #do<T>(c: WriterCall, result: () => T): Promise<T> {
    const err = this.fail?.(c);
    if (err !== undefined) return Promise.reject(err);
    this.calls.push(c);
    return Promise.resolve(result());
  }
  #written<T extends KubeObject>(o: T): T {
    return { ...o, metadata: { ...o.metadata, resourceVersion: String(++this.#rv) } };
  }
  verbs(): string[] {
    return this.calls.map((c) => `${c.verb} ${c.name}`);
  }
  createConfigMap(cm: ConfigMapObject) {
    return this.#do({ verb: 'createConfigMap', name: cm.metadata.name, data: cm.data ?? {} }, () => this.#written(cm));
  }
  patchConfigMap(ns: string, name: string, patch: { data: Record<string, string | null>; labels: Record<string, string> }) {
    const data = Object.fromEntries(Object.entries(patch.data).filter((e): e is [string, string] => e[1] !== null));
    return this.#do({ verb: 'patchConfigMap', name, data: patch.data }, () => this.#written<ConfigMapObject>({ metadata: { name, namespace: ns, labels: patch.labels }, data }));
  }
  deleteConfigMap(_ns: string, name: string) {
    return this.#do({ verb: 'deleteConfigMap', name }, () => undefined);
  }
  patchPodAnnotations(ns: string, name: string, annotations: Record<string, string | null>, guard?: Guard) {
    const kept = Object.fromEntries(Object.entries(annotations).filter((e): e is [string, string] => e[1] !== null));
    return this.#do({ verb: 'patchPodAnnotations', name, annotations, ...(guard ? { guard } : {}) }, () => this.#written<PodObject>({ kind: 'Pod', metadata: { name, namespace: ns, annotations: kept, ...(guard ? {} : { labels: { [ANNOTATED_LABEL]: 'true' } }) } }));
  }
  patchPodCondition(ns: string, name: string, condition: PodCondition) {
    return this.#do({ verb: 'patchPodCondition', name, condition }, () => this.#written<PodObject>({ kind: 'Pod', metadata: { name, namespace: ns }, status: { conditions: [condition] } }));
  }
  patchStatus(ns: string, name: string, status: PgClusterStatus) {
    return this.#do({ verb: 'patchStatus', name, status }, () => this.#written<PgClusterObject>({ metadata: { name, namespace: ns }, spec: {}, status }));
  }
  setFinalizers(pc: PgClusterObject, finalizers: string[], annotations?: Record<string, string>) {
    return this.#do({ verb: 'setFinalizers', name: pc.metadata.name, finalizers, ...(annotations ? { annotations } : {}) },
      () => this.#written<PgClusterObject>({ ...pc, metadata: { ...pc.metadata, finalizers, annotations: { ...pc.metadata.annotations, ...annotations } } }));
  }
  createEvent(pc: PgClusterObject, event: EventInput) {
    return this.#do({ verb: 'createEvent', name: pc.metadata.name, event }, () => undefined);
  }
  createOutput(kind: OutputKind, obj: KubeObject) {
    return this.#do({ verb: 'createOutput', kind, name: obj.metadata.name, body: obj as unknown as Record<string, unknown> }, () => this.#written(obj));
  }
  patchOutput(kind: OutputKind, ns: string, name: string, body: Record<string, unknown>) {
    return this.#do({ verb: 'patchOutput', kind, name, body }, () => this.#written<KubeObject>({ metadata: { name, namespace: ns } }));
  }
  deleteOutput(kind: OutputKind, _ns: string, name: string) {
    return this.#do({ verb: 'deleteOutput', kind, name }, () => undefined);
  }
}

/** An informer cache stand-in: objects by namespace/name. */
export class MapCache<T extends KubeObject> implements Cache<T> {
  #m = new Map<string, T>();
  constructor(items: T[] = []) {
    for (const o of items) this.set(o);
  }
  set(o: T): void {
    this.#m.set(`${o.metadata.namespace}/${o.metadata.name}`, o);
  }
  delete(ns: string, name: string): void {
    this.#m.delete(`${ns}/${name}`);
  }
  get(ns: string, name: string): T | undefined {
    return this.#m.get(`${ns}/${name}`);
  }
  *inNamespace(ns: string): Generator<T> {
    for (const o of this.#m.values()) if (o.metadata.namespace === ns) yield o;
  }
  /** A map is filled from the start (the pod cache's watches sync; see kube/watchSet.ts). */
  synced(): boolean {
    return true;
  }
}

/** A Context, and shortcuts to the fakes inside it that tests drive. */
export interface TestContext extends Context {
  writer: RecordingWriter;
  clock: FakeClock;
  pgclusters: MapCache<PgClusterObject>;
  pods: MapCache<PodObject>;
  configMaps: MapCache<ConfigMapObject>;
  services: MapCache<ServiceObject>;
  endpointSlices: MapCache<EndpointSliceObject>;
  /** Where runtimes get their endpoint; a test sets a fake one (the default throws). */
  pool: Pick<EndpointPool, 'acquire' | 'release'>;
  /** Keys queued, in order. */
  added: string[];
}

/** A Context for reconcile with no API server and no Postgres: `secrets` answers from a map. */
export function testContext(o: { pgclusters?: PgClusterObject[]; pods?: PodObject[]; configMaps?: ConfigMapObject[]; secrets?: Record<string, SecretObject> } = {}): TestContext {
  const clock = new FakeClock();
  const added: string[] = [];
  const secrets = o.secrets ?? {};
  const caches = {
    pgclusters: new MapCache(o.pgclusters),
    pods: new MapCache(o.pods),
    configMaps: new MapCache(o.configMaps),
    services: new MapCache<ServiceObject>(),
    endpointSlices: new MapCache<EndpointSliceObject>(),
  };
  const writer = new RecordingWriter();
  const ctx: TestContext = {
    env: { identity: 'test-operator', clock, log: pino({ level: 'silent' }), metrics: new Metrics({ defaultMetrics: false }) },
    caches,
    writes: { writer, memo: new WriteMemo(clock), podWrites: new Semaphore(WRITE_CONCURRENCY) },
    // The pool is looked up at each attach, so that a test may set ctx.pool after making the context.
    runtimes: new RuntimeRegistry({ acquire: (...a) => ctx.pool.acquire(...a), release: (...a) => ctx.pool.release(...a) }, (key) => podFanOut(ctx, key)),
    secrets: new SecretSource(async (ns, name) => secrets[`${ns}/${name}`], clock),
    queue: { add: (k: string) => void added.push(k), addAfter: (k: string) => void added.push(k) },
    writer, clock, ...caches, added,
    pool: {
      acquire: () => { throw new Error('this test has no Postgres: give the PgCluster a Secret that does not resolve'); },
      release: () => {},
    },
  };
  return ctx;
}
