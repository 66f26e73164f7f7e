// Loads only the config and auth parts of @kubernetes/client-node. Its KubeConfig (dist/config.js) imports
// the generated index of every API kind (dist/gen/index.js) for two small names; that import alone holds ~50 MB
// of the operator's RSS, for code it never runs (it speaks plain JSON over KubeConfig's auth and TLS:
// kube/client.ts). A resolve hook, run in this thread, hands config.js a module with just those two names
// (clientNodeGen.ts). If a client-node upgrade ever imports anything else from there, linking fails at start,
// loudly, and test/unit/slim-client-node.test.ts says so.
import { registerHooks } from 'node:module';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLIENT_NODE_CONFIG = /\/@kubernetes\/client-node\/dist\/config\.js$/;

/** Must run before anything imports client-node: the operator's entry point (main.ts) calls it first. */
export function loadOnlyClientNodeConfig(): void {
  const self = import.meta.url;
  const shim = new URL(`./clientNodeGen${extname(fileURLToPath(self))}`, self).href;
  registerHooks({
    resolve(specifier, context, nextResolve) {
      if (specifier === './gen/index.js' && context.parentURL !== undefined && CLIENT_NODE_CONFIG.test(context.parentURL)) {
        return { url: shim, format: 'module', shortCircuit: true };
      }
      return nextResolve(specifier, context);
    },
  });
}
