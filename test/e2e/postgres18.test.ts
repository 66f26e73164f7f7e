// The same product against a second Postgres major version: 18 (the npm package's build), beside Debian's 15.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { embeddedPostgresBinDir, startPostgres, type PostgresServer } from '../harness/postgres.ts';
import { startLibclusterNode } from '../harness/libcluster-node.ts';
import { createNamespace, waitFor } from '../support/env.ts';
import { installCrd } from '../support/crd.ts';
import { condition, createPgCluster, createPod, createSecret, getPgCluster, startOperator, testKube, waitForPeers, type OperatorProcess } from '../support/operator.ts';

const kube = testKube();
let server: PostgresServer;
let ns: { name: string; cleanup(): Promise<void> };
let op: OperatorProcess;

before(async () => {
  await installCrd(kube);
  server = await startPostgres({ binDir: embeddedPostgresBinDir() });
  ns = await createNamespace('e2e-pg18');
  op = await startOperator({ namespaces: [ns.name] });
});
after(async () => {
  await op?.stop();
  await ns?.cleanup();
  await server?.destroy();
});

test('Postgres 18: members and a libcluster_postgres node find each other', async () => {
  const c = new pg.Client({ connectionString: server.url });
  await c.connect();
  const version = (await c.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0]?.v;
  await c.end();
  assert.match(version ?? '', /^18/);
  const n = ns.name;
  const channel = `${n.replace(/-/g, '_')}_c`;
  await createSecret(kube, n, 'db', { url: server.url });
  await createPod(kube, n, { name: 'p-1', labels: { app: 'p' }, ip: '10.99.0.1' });
  await createPgCluster(kube, n, 'p', { selector: { matchLabels: { app: 'p' } }, postgres: { urlSecretRef: { name: 'db' } }, channel, heartbeatInterval: '1s' });
  const node = await startLibclusterNode(server.url, channel, 'ex@192.0.2.18', 500);
  try {
    await waitForPeers(kube, n, 'p-peers', ['p-1'], ['ex@192.0.2.18', 'p@10.99.0.1']);
    await waitFor(() => node.heard.has('p@10.99.0.1'), { message: 'the node hears our member' });
    assert.equal(condition(await getPgCluster(kube, n, 'p'), 'Connected')?.status, 'True');
  } finally {
    await node.stop();
  }
});
