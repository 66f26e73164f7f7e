// Watching outputs while something happens (a failover, a restart, an upgrade): every version written,
// including the one there at the start. The operator's own Informer does the list and watch (a watch that
// ends or fails is resumed from the last resourceVersion, so nothing is missed); what it cannot promise — a
// watch expired (410 Gone), after which only a list's current versions are known — fails stop(), unless the
// caller expects it. A watch that never starts fails the test instead of passing with nothing seen.
import assert from 'node:assert/strict';
import pino from 'pino';
import type { KubeClient, KubeObject } from '../../src/kube/client.ts';
import { Informer } from '../../src/kube/informer.ts';
import { paths } from '../../src/kube/resources.ts';
import { waitFor } from './env.ts';

export interface ObjectsWatch<T> {
  /** Ends the watch; answers every object seen (added or modified), in order, starting with those there at the start. */
  stop(): T[];
}

export interface WatchOptions {
  /** What is watched, for messages. */
  what: string;
  labelSelector?: string;
  /** Only the object of this name. */
  name?: string;
  /** A deletion is expected (otherwise it fails stop()). */
  deletions?: boolean;
  /** An expired watch may start again from a list (a CRD's watch cache starts anew when its schema changes). */
  relistWhenExpired?: boolean;
}

/** Watches the collection `path` until stop(). */
export async function watchObjects<T extends KubeObject>(kube: KubeClient, path: string, o: WatchOptions): Promise<ObjectsWatch<T>> {
  const seen: T[] = [];
  let broken: string | undefined;
  let relists = 0;
  const informer = new Informer<T>(kube, {
    path, labelSelector: o.labelSelector, log: pino({ level: 'silent' }), transform: (x) => x,
    onExpired: () => {
      relists++;
      if (!o.relistWhenExpired) broken ??= 'the watch expired (410 Gone): the versions in between are lost';
    },
  });
  informer.on((event, obj) => {
    if (o.name !== undefined && obj.metadata.name !== o.name) return;
    if (event === 'add' || event === 'update') seen.push(obj);
    else if (event === 'delete' && !o.deletions) broken ??= `${obj.metadata.name} was deleted`;
  });
  informer.start();
  // The list at the start answers the objects as they are: proof that the watch works.
  await waitFor(() => seen.length > 0 || broken !== undefined, { message: `the watch of ${o.what} to start`, timeoutMs: 10_000 })
    .catch((err: unknown) => {
      informer.stop(); // an open watch would keep the test process alive after the tests
      throw err;
    });
  return {
    stop: () => {
      informer.stop();
      if (relists > 0) console.log(`# the watch of ${o.what} started again from a list ${relists} time(s) (410 Gone)`);
      assert.equal(broken, undefined, `the watch of ${o.what}: ${broken}`);
      assert.ok(seen.length > 0, `the watch of ${o.what} saw nothing`);
      return seen;
    },
  };
}

export interface PeersWatch {
  /** Ends the watch; answers every list seen (the first is the one there when it started). */
  stop(): string[][];
}

interface ConfigMapJson extends KubeObject { data?: { peers?: string } }

/** Every version of a ConfigMap output's `peers`; a deletion fails stop(). */
export async function watchPeers(kube: KubeClient, ns: string, configMap: string): Promise<PeersWatch> {
  const w = await watchObjects<ConfigMapJson>(kube, paths.configMaps(ns), { name: configMap, what: `ConfigMap ${ns}/${configMap}` });
  return { stop: () => w.stop().map((cm) => (cm.data?.peers ?? '').split('\n').filter(Boolean)) };
}

export interface AnnotationsWatch {
  /** Ends the watch; answers, per pod, every value of the annotation seen (split at commas; [] when absent). */
  stop(): Map<string, string[][]>;
}

/** Every version of the peers annotation `key` on the pods `labelSelector` selects in `ns`. */
export async function watchPodAnnotations(kube: KubeClient, ns: string, labelSelector: string, key = 'pgcluster.io/peers'): Promise<AnnotationsWatch> {
  const w = await watchObjects<KubeObject>(kube, paths.pods(ns), { labelSelector, deletions: true, what: `pods ${labelSelector} in ${ns}` });
  return {
    stop: () => {
      const byPod = new Map<string, string[][]>();
      for (const p of w.stop()) {
        const list = byPod.get(p.metadata.name) ?? [];
        list.push((p.metadata.annotations?.[key] ?? '').split(',').filter(Boolean));
        byPod.set(p.metadata.name, list);
      }
      return byPod;
    },
  };
}
