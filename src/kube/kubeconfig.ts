// Where the operator's Kubernetes credentials come from: in a pod, its ServiceAccount; else KUBECONFIG or
// ~/.kube/config. A bearer token kept in a file (the projected ServiceAccount token, a kubeconfig's tokenFile)
// is named, so that the client reads it again as it rotates (transport.ts, TokenFile).
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import { parse as parseYaml } from 'yaml';

/**
 * In-cluster config inside a pod, else KUBECONFIG / ~/.kube/config; and the file its bearer token is read from,
 * if any (the projected ServiceAccount token in a pod; a kubeconfig user's tokenFile), to be read again as it
 * rotates.
 */
export function loadKubeConfig(): { kc: KubeConfig; tokenFile: string | undefined } {
  const kc = new KubeConfig();
  if (process.env.KUBERNETES_SERVICE_HOST && !process.env.KUBECONFIG) kc.loadFromCluster();
  else kc.loadFromDefault();
  return { kc, tokenFile: tokenFileOf(kc) };
}

/** The token file of the current user: in-cluster, client-node's tokenFile provider; else the kubeconfig's tokenFile. */
function tokenFileOf(kc: KubeConfig): string | undefined {
  const user = kc.getCurrentUser();
  if (!user) return undefined;
  const provided = (user.authProvider as { config?: { tokenFile?: string } } | undefined)?.config?.tokenFile;
  if (provided) return provided;
  const files = (process.env.KUBECONFIG ?? join(homedir(), '.kube', 'config')).split(':').filter(Boolean);
  for (const file of files) {
    let doc: { users?: { name?: string; user?: Record<string, unknown> }[] } | undefined;
    try {
      doc = parseYaml(readFileSync(file, 'utf8')) as typeof doc;
    } catch {
      continue; // client-node has read what it could; a file it skipped has no user for us either
    }
    const found = doc?.users?.find((u) => u.name === user.name)?.user;
    const path = found?.tokenFile ?? found?.['token-file'];
    if (typeof path === 'string' && path) return path;
  }
  return undefined;
}
