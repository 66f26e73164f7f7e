// What-if preload for the operator process (`npm run bench -- --what-if pooled-kube`): not a change to src/,
// an experiment that measures a proposed one. client-node's KubeConfig.applySecurityAuthentication gives every
// request a new undici Agent, so src/kube/client.ts opens a new TCP+TLS connection per API request. Here each
// KubeConfig keeps its first Agent, as a fix in src/kube/client.ts would (reuse one dispatcher per client).
import { KubeConfig } from '@kubernetes/client-node';
import type { RequestContext } from '@kubernetes/client-node/dist/gen/http/http.js';

type Dispatcher = ReturnType<RequestContext['getDispatcher']>;
const kept = new WeakMap<KubeConfig, Dispatcher>();
const original = KubeConfig.prototype.applySecurityAuthentication;
KubeConfig.prototype.applySecurityAuthentication = async function (this: KubeConfig, ctx: RequestContext): Promise<void> {
  await original.call(this, ctx);
  let d = kept.get(this);
  if (!d) {
    d = ctx.getDispatcher();
    kept.set(this, d);
  }
  if (d) ctx.setDispatcher(d);
};
