// The two names client-node's KubeConfig (dist/config.js) takes from its generated API index. Served in place
// of that index by the resolve hook in slimClientNode.ts, so that the generated API of every kind is never loaded.
export { createConfiguration } from '@kubernetes/client-node/dist/gen/configuration.js';
export { ServerConfiguration } from '@kubernetes/client-node/dist/gen/servers.js';
