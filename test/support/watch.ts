// Watching a ConfigMap's peer list while something happens (a failover, a restart): every version written,
// including the one there at the start. A watch that breaks or never starts fails the test instead of
// passing with nothing seen.
import assert from 'node:assert/strict';
import type { KubeClient } from '../../src/kube/client.ts';
import { paths } from '../../src/kube/resources.ts';
import { waitFor } from './env.ts';

export interface PeersWatch {
  /** Ends the watch; answers every list seen (the first is the one there when it started). */
  stop(): string[][];
}

export async function watchPeers(kube: KubeClient, ns: string, configMap: string): Promise<PeersWatch> {
  const seen: string[][] = [];
  let ended: unknown;
  let endedEarly = false;
  let stopping = false;
  const abort = await kube.watch(paths.configMaps(ns), { fieldSelector: `metadata.name=${configMap}` }, (type, obj) => {
    if (type === 'ADDED' || type === 'MODIFIED') seen.push(((obj as { data?: { peers?: string } }).data?.peers ?? '').split('\n').filter(Boolean));
    else if (type === 'ERROR' || type === 'DELETED') { ended = new Error(`watch event ${type}: ${JSON.stringify(obj)}`); endedEarly = true; }
  }, (err) => {
    if (stopping) return;
    ended = err ?? new Error('the API server ended the watch');
    endedEarly = true;
  });
  // A watch without a resourceVersion starts with the object as it is: proof that it works.
  await waitFor(() => seen.length > 0 || endedEarly, { message: `the watch of ConfigMap ${ns}/${configMap} to start`, timeoutMs: 10_000 })
    .catch((err: unknown) => {
      stopping = true;
      abort.abort(); // an open watch would keep the test process alive after the tests
      throw err;
    });
  return {
    stop: () => {
      stopping = true;
      abort.abort();
      assert.ok(!endedEarly, `the watch of ConfigMap ${ns}/${configMap} ended early: ${String(ended)}`);
      assert.ok(seen.length > 0, `the watch of ConfigMap ${ns}/${configMap} saw nothing`);
      return seen;
    },
  };
}
