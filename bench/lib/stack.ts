// The stack the benchmark runs on: a fresh one in a temp dir (etcd, kube-apiserver, kwok, one Postgres), or
// the one named by PGCO_STACK_DIR + KUBECONFIG + DATABASE_URL (e.g. `npm run stack -- up`, or `npm test`).
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import pg from 'pg';
import { KubeClient } from '../../src/kube/client.ts';
import { startStack } from '../../test/harness/stack.ts';
import { isReady, KWOK_NODE } from '../../test/harness/kube.ts';
import { startPostgres, type PostgresServer } from '../../test/harness/postgres.ts';
import { say, until } from './util.ts';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface BenchStack {
  dir: string;
  kubeconfig: string;
  /** The stack's shared Postgres (scenarios that do not measure Postgres use it). */
  databaseUrl: string;
  binDir: string;
  kube: KubeClient;
  reused: boolean;
  kwokNode: string;
  /** Pids of the stack's own processes by name (etcd, kube-apiserver, ...): known only for a stack started here. */
  pids: Record<string, number>;
  /** The real node (kubelet on containerd), when a scenario asked for it (openStack({ realNode: true })). */
  realNode?: { name: string; containerd: string; hostIp: string; podCidr: string };
  /**
   * A private Postgres for one scenario (destroyed by stop() if the scenario does not), with autovacuum off:
   * its commits are counted by transaction ids, and an autovacuum ANALYZE of fresh catalogs takes ids too.
   */
  newPostgres(name: string): Promise<PostgresServer>;
  stop(): Promise<void>;
}

const run = promisify(execFile);

/** A client like the operator's (src/kube/client.ts keeps one connection pool for its requests). */
export function kubeClient(kubeconfig: string): KubeClient {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  return new KubeClient(kc);
}

export async function openStack(opts: { realNode?: boolean } = {}): Promise<BenchStack> {
  const { PGCO_STACK_DIR, KUBECONFIG, DATABASE_URL } = process.env;
  const servers = new Set<PostgresServer>();
  const scratch = mkdtempSync(join(tmpdir(), 'pgco-bench-'));
  chmodSync(scratch, 0o755); // the postgres OS user must reach the data dirs of the private servers
  let stack: BenchStack;
  if (PGCO_STACK_DIR && KUBECONFIG && DATABASE_URL) {
    say(`reusing the stack in ${PGCO_STACK_DIR}`);
    stack = {
      dir: PGCO_STACK_DIR, kubeconfig: KUBECONFIG, databaseUrl: DATABASE_URL, binDir: join(PGCO_STACK_DIR, 'bin'),
      kube: kubeClient(KUBECONFIG), reused: true, kwokNode: KWOK_NODE, pids: {},
      newPostgres: async () => { throw new Error('unset'); },
      stop: async () => {},
    };
    const { PGCO_REAL_NODE: name, PGCO_CONTAINERD_SOCK: containerd, PGCO_NODE_HOST_IP: hostIp, PGCO_POD_CIDR: podCidr } = process.env;
    if (name && containerd && hostIp && podCidr) stack.realNode = { name, containerd, hostIp, podCidr };
    else if (opts.realNode) throw new Error(`the stack in ${PGCO_STACK_DIR} has no real node; start it with \`npm run stack -- up --real-node\`, or unset PGCO_STACK_DIR`);
  } else {
    const dir = join(scratch, 'stack');
    say(`starting a stack (etcd, kube-apiserver, kwok, Postgres${opts.realNode ? ', the real node' : ''}) in ${dir}`);
    // The real node needs the controller manager (node lifecycle, ServiceAccounts, the root CA ConfigMap).
    const s = await startStack({ dir, kwok: true, controllerManager: opts.realNode ?? false, realNode: opts.realNode ?? false });
    stack = {
      dir, kubeconfig: s.kube.kubeconfig, databaseUrl: s.postgres.url, binDir: s.kube.binDir,
      kube: kubeClient(s.kube.kubeconfig), reused: false, kwokNode: KWOK_NODE, pids: s.kube.pids,
      newPostgres: async () => { throw new Error('unset'); },
      stop: () => s.stop(),
    };
    if (s.realNode) stack.realNode = { name: s.realNode.name, containerd: s.realNode.containerdSocket, hostIp: s.env.PGCO_NODE_HOST_IP!, podCidr: s.env.PGCO_POD_CIDR! };
  }
  const stopKube = stack.stop;
  const onBridge = stack.realNode ? { extraListen: { address: stack.realNode.hostIp, clientCidr: stack.realNode.podCidr } } : {};
  stack.newPostgres = async (name: string) => {
    // With a real node, pods (and an operator in a pod) reach it on the bridge too.
    const pgSrv = await startPostgres({ dir: join(scratch, `pg-${name}`), ...onBridge });
    servers.add(pgSrv);
    const c = new pg.Client({ connectionString: pgSrv.url });
    await c.connect();
    try {
      await c.query('ALTER SYSTEM SET autovacuum = off');
      await c.query('SELECT pg_reload_conf()');
    } finally {
      await c.end();
    }
    const destroy = pgSrv.destroy;
    pgSrv.destroy = async () => { servers.delete(pgSrv); await destroy(); };
    return pgSrv;
  };
  stack.stop = async () => {
    await Promise.allSettled([...servers].map((p) => p.destroy()));
    await stopKube();
    rmSync(scratch, { recursive: true, force: true });
  };

  // The kwok node must be there (and Ready): every bench pod is bound to it.
  await until(`node ${KWOK_NODE} Ready (is kwok running in this stack?)`, async () => {
    return isReady(await stack.kube.getOptional<Parameters<typeof isReady>[0]>(`/api/v1/nodes/${KWOK_NODE}`));
  }, 60_000, 250);
  await applyCrd(stack);
  return stack;
}

async function applyCrd(stack: BenchStack): Promise<void> {
  await run(join(stack.binDir, 'kubectl'), ['apply', '--server-side', '--force-conflicts', '-f', join(repoRoot, 'manifests/crd/pgcluster.io_pgclusters.yaml')], {
    env: { ...process.env, KUBECONFIG: stack.kubeconfig },
  });
  await until('the PgCluster CRD to be Established', async () => {
    const crd = await stack.kube.getOptional<{ status?: { conditions?: { type: string; status: string }[] } }>('/apis/apiextensions.k8s.io/v1/customresourcedefinitions/pgclusters.pgcluster.io');
    return crd?.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
  }, 30_000, 200);
}
