// Watching outputs while something happens (a failover, a restart, an upgrade): every version written,
// including the one there at the start. A watch that breaks or never starts fails the test instead of
// passing with nothing seen.
import assert from 'node:assert/strict';
import type { KubeClient } from '../../src/kube/client.ts';
import { paths } from '../../src/kube/resources.ts';
import { waitFor } from './env.ts';

export interface ObjectsWatch<T> {
  /** Ends the watch; answers every object seen (ADDED or MODIFIED), in order, starting with those there at the start. */
  stop(): T[];
}

/**
 * Watches `path` (a collection, narrowed by `query`'s selectors) until stop(). A watch the server or the
 * connection ends (a timeout, a connection replaced on a loaded machine) is resumed from the last
 * resourceVersion seen, as informers do, so no version is missed; one that cannot be resumed (410 Gone: the
 * versions in between are lost) or an ERROR event fails stop() — unless `relistWhenExpired`, which starts again
 * from a list — and so does a deletion unless `deletions` allows it.
 */
export async function watchObjects<T>(kube: KubeClient, path: string, query: Record<string, string>, what: string, deletions = false, relistWhenExpired = false): Promise<ObjectsWatch<T>> {
  const seen: T[] = [];
  let ended: unknown;
  let endedEarly = false;
  let stopping = false;
  let lastVersion: string | undefined;
  let resumes = 0;
  let relists = 0;
  let current: AbortController | undefined;
  const start = async (): Promise<void> => {
    const resume = lastVersion ? { resourceVersion: lastVersion } : {};
    current = await kube.watch(path, { timeoutSeconds: '1800', allowWatchBookmarks: 'true', ...query, ...resume }, (type, obj) => {
      const version = (obj as { metadata?: { resourceVersion?: string } }).metadata?.resourceVersion;
      if (type !== 'ERROR' && version) lastVersion = version;
      if (type === 'ERROR' && relistWhenExpired && (obj as { code?: number }).code === 410) {
        // The versions in between are gone (a CRD's watch cache starts anew when its schema changes): start
        // again from the objects as they are, as an informer relists.
        lastVersion = undefined;
        relists++;
        return;
      }
      if (type === 'ADDED' || type === 'MODIFIED') seen.push(obj as T);
      else if (type === 'ERROR' || (type === 'DELETED' && !deletions)) { ended = new Error(`watch event ${type}: ${JSON.stringify(obj)}`); endedEarly = true; }
    }, (err) => {
      if (stopping || endedEarly) return;
      if (!lastVersion && relists === 0) {
        ended = err ?? new Error('the API server ended the watch');
        endedEarly = true;
        return;
      }
      resumes++;
      start().catch((e: unknown) => { ended = e; endedEarly = true; });
    });
  };
  await start();
  // A watch without a resourceVersion starts with the objects as they are: proof that it works.
  await waitFor(() => seen.length > 0 || endedEarly, { message: `the watch of ${what} to start`, timeoutMs: 10_000 })
    .catch((err: unknown) => {
      stopping = true;
      current?.abort(); // an open watch would keep the test process alive after the tests
      throw err;
    });
  return {
    stop: () => {
      stopping = true;
      current?.abort();
      if (resumes > 0) console.log(`# the watch of ${what} was resumed ${resumes} time(s) from its last resourceVersion${relists ? `, ${relists} time(s) from a new list (410 Gone)` : ''}`);
      assert.ok(!endedEarly, `the watch of ${what} ended early: ${String(ended)}`);
      assert.ok(seen.length > 0, `the watch of ${what} saw nothing`);
      return seen;
    },
  };
}

export interface PeersWatch {
  /** Ends the watch; answers every list seen (the first is the one there when it started). */
  stop(): string[][];
}

/** Every version of a ConfigMap output's `peers`; a deletion fails stop(). */
export async function watchPeers(kube: KubeClient, ns: string, configMap: string): Promise<PeersWatch> {
  const w = await watchObjects<{ data?: { peers?: string } }>(kube, paths.configMaps(ns), { fieldSelector: `metadata.name=${configMap}` }, `ConfigMap ${ns}/${configMap}`);
  return {
    stop: () => {
      return w.stop().map((cm) => (cm.data?.peers ?? '').split('\n').filter(Boolean));
    },
  };
}

export interface AnnotationsWatch {
  /** Ends the watch; answers, per pod, every value of the annotation seen (split at commas; [] when absent). */
  stop(): Map<string, string[][]>;
}

/** Every version of the peers annotation `key` on the pods `labelSelector` selects in `ns`. */
export async function watchPodAnnotations(kube: KubeClient, ns: string, labelSelector: string, key = 'pgcluster.io/peers'): Promise<AnnotationsWatch> {
  const w = await watchObjects<{ metadata: { name: string; annotations?: Record<string, string> } }>(kube, paths.pods(ns), { labelSelector }, `pods ${labelSelector} in ${ns}`, true);
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
