#!/usr/bin/env node
// pgcluster-operator: forms clusters of pods over Postgres LISTEN/NOTIFY. See README.md.
// The entry point: the client-node resolve hook must be in place before the operator's modules are linked.
import { loadOnlyClientNodeConfig } from './kube/slimClientNode.ts';

loadOnlyClientNodeConfig();
await import('./operator.ts');
