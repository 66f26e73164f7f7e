// The test stack itself: every other e2e test trusts these facts.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import pg from 'pg';
import { startPostgres } from '../harness/postgres.ts';
import { createNamespace, kubectl, kubectlJson, requireEnv, runBin, waitFor } from '../support/env.ts';

interface PodJson {
  status?: { phase?: string; podIP?: string; conditions?: { type: string; status: string }[] };
}

const env = requireEnv();

describe('kubernetes control plane', () => {
  test('kube-apiserver reports v1.34.4', async () => {
    const v = JSON.parse(await kubectl(['get', '--raw', '/version'])) as { gitVersion: string };
    assert.equal(v.gitVersion, 'v1.34.4');
    assert.equal((await kubectl(['get', '--raw', '/readyz'])).trim(), 'ok');
  });

  test('kubectl lists the built-in namespaces as admin', async () => {
    const names = (await kubectl(['get', 'ns', '-o', 'name'])).split('\n');
    for (const ns of ['namespace/default', 'namespace/kube-system']) assert.ok(names.includes(ns), `${ns} in ${names.join(' ')}`);
    const who = await kubectlJson<{ status: { userInfo: { username: string; groups: string[] } } }>(['auth', 'whoami']);
    assert.equal(who.status.userInfo.username, 'admin');
    assert.ok(who.status.userInfo.groups.includes('system:masters'));
  });

  test("the operator's ServiceAccount token authenticates with its groups and is bound by RBAC", async () => {
    const token = process.env.PGCO_OPERATOR_TOKEN;
    assert.ok(token, 'PGCO_OPERATOR_TOKEN is set by the stack');
    const who = await kubectlJson<{ status: { userInfo: { username: string; groups: string[] } } }>(['auth', 'whoami', `--token=${token}`]);
    assert.equal(who.status.userInfo.username, 'system:serviceaccount:pgcluster-system:pgcluster-operator');
    assert.deepEqual([...who.status.userInfo.groups].sort(),
      ['system:authenticated', 'system:serviceaccounts', 'system:serviceaccounts:pgcluster-system']);
    // No RoleBindings yet: RBAC denies it.
    const canI = await runBin('kubectl', ['auth', 'can-i', 'list', 'pods', '-A', `--token=${token}`], { allowFail: true });
    assert.equal(canI.stdout.trim(), 'no');
  });

  test('a pod bound to the kwok node becomes Running and Ready with a pod IP', async (t) => {
    const ns = await createNamespace('stack-kwok');
    t.after(ns.cleanup);
    await kubectl(['apply', '-f', '-'], {
      ns: ns.name,
      input: JSON.stringify({
        apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p0', labels: { app: 'demo' } },
        spec: { nodeName: 'kwok-node-0', containers: [{ name: 'app', image: 'example.invalid/app:1' }] },
      }),
    });
    const pod = await waitFor(async () => {
      const p = await kubectlJson<PodJson>(['get', 'pod', 'p0'], { ns: ns.name });
      const ready = p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
      return p.status?.phase === 'Running' && ready && p.status.podIP ? p : undefined;
    }, { timeoutMs: 30_000, message: 'pod p0 Running+Ready with an IP' });
    assert.match(pod.status!.podIP!, /^10\.244\.\d+\.\d+$/);
  });

  // Beside a real node the node-lifecycle controller runs: a kwok Node heartbeating only by status (every
  // ~55 s, past its 50 s grace period) went Unknown each minute and all kwok pods were marked NotReady for a
  // moment, which looked like the operator republishing everything at rest.
  test('the kwok node heartbeats through a renewed Lease, as a kubelet does', async () => {
    const lease = async () => kubectlJson<{ spec?: { renewTime?: string; leaseDurationSeconds?: number } }>(['get', 'lease', 'kwok-node-0'], { ns: 'kube-node-lease' });
    const first = await waitFor(async () => (await lease().catch(() => undefined))?.spec?.renewTime, { timeoutMs: 30_000, message: 'Lease kube-node-lease/kwok-node-0' });
    assert.equal((await lease()).spec?.leaseDurationSeconds, 40);
    await waitFor(async () => (await lease()).spec?.renewTime !== first, { timeoutMs: 40_000, message: 'the kwok node Lease to be renewed' });
  });

  test('garbage collection removes owned objects, and namespace deletion finishes', async () => {
    const ns = await createNamespace('stack-gc');
    await kubectl(['create', 'configmap', 'owner'], { ns: ns.name });
    const uid = (await kubectl(['get', 'configmap', 'owner', '-o', 'jsonpath={.metadata.uid}'], { ns: ns.name })).trim();
    await kubectl(['apply', '-f', '-'], {
      ns: ns.name,
      input: JSON.stringify({
        apiVersion: 'v1', kind: 'ConfigMap',
        metadata: { name: 'owned', ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid }] },
      }),
    });
    await kubectl(['delete', 'configmap', 'owner', '--wait=true'], { ns: ns.name });
    await waitFor(async () => (await kubectl(['get', 'configmap', 'owned', '--ignore-not-found', '-o', 'name'], { ns: ns.name })).trim() === '',
      { timeoutMs: 60_000, message: 'the garbage collector to delete ConfigMap owned' });

    await kubectl(['delete', 'namespace', ns.name, '--wait=false']);
    await waitFor(async () => (await kubectl(['get', 'namespace', ns.name, '--ignore-not-found', '-o', 'name'])).trim() === '',
      { timeoutMs: 60_000, message: `namespace ${ns.name} to finish deleting` });
  });

  test('helm is v3.21.4 and reaches the cluster', async () => {
    const v = await runBin('helm', ['version', '--short']);
    assert.match(v.stdout, /^v3\.21\.4\b/);
    // Other test files install releases at any time: only that helm can list them matters here.
    const list = await runBin('helm', ['list', '--all-namespaces', '-o', 'json']);
    assert.ok(Array.isArray(JSON.parse(list.stdout)), list.stdout);
  });
});

describe('postgres', () => {
  test('NOTIFY round-trips through the stack Postgres, with a password', async () => {
    assert.match(env.databaseUrl, /^postgres:\/\/pgco:[^@]+@127\.0\.0\.1:\d+\/pgco$/);
    assert.doesNotMatch(env.databaseUrl, /:5432\//, 'never the shared server');
    const listener = new pg.Client(env.databaseUrl);
    const notifier = new pg.Client(env.databaseUrl);
    await Promise.all([listener.connect(), notifier.connect()]);
    try {
      await listener.query('LISTEN "stack_test"');
      const got = new Promise<pg.Notification>((resolve) => listener.once('notification', resolve));
      await notifier.query('SELECT pg_notify($1, $2)', ['stack_test', 'chat@10.244.0.7']);
      const n = await got;
      assert.equal(n.channel, 'stack_test');
      assert.equal(n.payload, 'chat@10.244.0.7');
    } finally {
      await Promise.all([listener.end(), notifier.end()]);
    }
  });

  test('a wrong password is refused', async () => {
    const url = new URL(env.databaseUrl);
    url.password = 'wrong';
    const c = new pg.Client(url.toString());
    c.on('error', () => {});
    await assert.rejects(c.connect(), /password authentication failed/);
  });

  test('a throwaway server keeps its data and port across stop()/start()', async () => {
    const s = await startPostgres();
    after(() => s.destroy());
    const q = async (sql: string) => {
      const c = new pg.Client(s.url);
      await c.connect();
      try { return (await c.query<{ v: string }>(sql)).rows; } finally { await c.end(); }
    };
    await q('CREATE TABLE kept (v text)');
    await q(`INSERT INTO kept VALUES ('before stop')`);
    const port = s.port;
    await s.stop();
    const down = new pg.Client({ connectionString: s.url, connectionTimeoutMillis: 2000 });
    down.on('error', () => {});
    await assert.rejects(down.connect(), 'stopped server refuses connections');
    await s.start();
    assert.equal(s.port, port);
    assert.equal(new URL(s.url).port, String(port));
    assert.deepEqual(await q('SELECT v FROM kept'), [{ v: 'before stop' }]);
    assert.deepEqual(await q('SHOW max_connections'), [{ max_connections: '2500' }]);
  });
});
