// The whole test stack: Kubernetes control plane + one throwaway Postgres, and the env that points tools at it.
import { chmodSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { OPERATOR_SA_USER, startKube, type KubeOpts, type KubeStack } from './kube.ts';
import { startPostgres, type PostgresServer } from './postgres.ts';
import { deathReport } from './proc.ts';
import { Teardown, together } from './teardown.ts';
import { BRIDGE_IP, POD_CIDR, startRealNode, type RealNode } from './realnode.ts';

export interface Stack {
  dir: string;
  /** KUBECONFIG, DATABASE_URL, PATH (stack binaries first), PGCO_STACK_DIR. */
  env: Record<string, string>;
  kube: KubeStack;
  postgres: PostgresServer;
  /** With realNode: a kubelet on containerd where pods really run (test/harness/realnode.ts). */
  realNode?: RealNode;
  /** The stack's servers that are no longer running (stop() not called): each with the end of its log. */
  dead(): string[];
  stop(): Promise<void>;
}

/** As for startKube, with the stack's defaults: kwok, the controller manager, promtool and the Prometheus server
 *  on (the demo turns the last two off), no real node (it needs root: containerd, runc, a CNI bridge, a kubelet). */
export type StackOpts = KubeOpts;

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export async function startStack(opts: StackOpts): Promise<Stack> {
  const dir = resolve(opts.dir);
  mkdirSync(dir, { recursive: true });
  // As root, Postgres runs as the postgres OS user and must be able to pass through dir (mkdtemp gives 0700).
  if (process.getuid?.() === 0) chmodSync(dir, statSync(dir).mode | 0o001);
  const td = new Teardown('the test stack');
  return td.unwindOnError(async () => {
    const { kube, postgres } = await startKubeAndPostgres(td, dir, opts);
    const realNode = opts.realNode ? await startNode(td, dir, kube) : undefined;
    const env = stackEnv(dir, kube, postgres, realNode);
    writeEnvFile(dir, kube.binDir, env);
    stopOnExit(td, kube, postgres, realNode);
    const dead = () => [...kube.processes, ...(realNode?.processes ?? [])]
      .filter((p) => p.child.exitCode !== null || p.child.signalCode !== null).map(deathReport);
    return { dir, env, kube, postgres, ...(realNode ? { realNode } : {}), dead, stop: () => td.run() };
  });
}

/** Postgres is quick; it starts alongside the (slower) control plane, and either is undone if the other fails. */
async function startKubeAndPostgres(td: Teardown, dir: string, opts: StackOpts): Promise<{ kube: KubeStack; postgres: PostgresServer }> {
  const [pgRes, kubeRes] = await Promise.allSettled([
    startPostgres({ dir: join(dir, 'postgres') }),
    startKube({ dir, kwok: opts.kwok ?? true, controllerManager: opts.controllerManager ?? true, realNode: opts.realNode ?? false, promtool: opts.promtool ?? true, prometheus: opts.prometheus ?? true }),
  ]);
  const started = [
    ...(kubeRes.status === 'fulfilled' ? [() => kubeRes.value.stop()] : []),
    ...(pgRes.status === 'fulfilled' ? [() => pgRes.value.destroy()] : []),
  ];
  if (started.length) td.push('stop the control plane and Postgres', together(...started));
  if (pgRes.status === 'rejected' || kubeRes.status === 'rejected') {
    const errs = [pgRes, kubeRes].filter((r) => r.status === 'rejected').map((r) => (r.reason as Error).message);
    throw new Error(`the test stack did not start:\n${errs.join('\n\n')}`);
  }
  return { kube: kubeRes.value, postgres: pgRes.value };
}

async function startNode(td: Teardown, dir: string, kube: KubeStack): Promise<RealNode> {
  let realNode: RealNode;
  try {
    realNode = await startRealNode({ dir, kube });
  } catch (e) {
    throw new Error(`the test stack did not start: the real node failed:\n${(e as Error).message}`);
  }
  td.push('stop the real node', () => realNode.stop());
  return realNode;
}

function stackEnv(dir: string, kube: KubeStack, postgres: PostgresServer, realNode: RealNode | undefined): Record<string, string> {
  return {
    KUBECONFIG: kube.kubeconfig,
    DATABASE_URL: postgres.url,
    PATH: `${kube.binDir}:${process.env.PATH ?? ''}`,
    PGCO_STACK_DIR: dir,
    // Bearer token of the operator's ServiceAccount user, for tests of the chart's RBAC rules.
    PGCO_OPERATOR_TOKEN: kube.tokens[OPERATOR_SA_USER]!,
    ...(realNode ? {
      PGCO_REAL_NODE: realNode.name,
      PGCO_CONTAINERD_SOCK: realNode.containerdSocket,
      // Where pods reach this machine (e.g. a Postgres listening there), and the pods' subnet.
      PGCO_NODE_HOST_IP: BRIDGE_IP,
      PGCO_POD_CIDR: POD_CIDR,
    } : {}),
  };
}

/** dir/env, to source. PATH is prepended when sourced, so the file does not freeze the PATH of whoever started the stack. */
function writeEnvFile(dir: string, binDir: string, env: Record<string, string>): void {
  const lines = Object.entries(env).map(([k, v]) => k === 'PATH'
    ? `export PATH=${shellQuote(binDir)}:"$PATH"\n`
    : `export ${k}=${shellQuote(v)}\n`);
  writeFileSync(join(dir, 'env'), lines.join(''), { mode: 0o600 });
}

/**
 * Last resort when the runner exits without calling stop(): signal what still runs (sync, as 'exit' allows no
 * awaiting). A SIGKILLed runner is covered by the parent-death signal of each child. stop() removes it first.
 */
function stopOnExit(td: Teardown, kube: KubeStack, postgres: PostgresServer, realNode: RealNode | undefined): void {
  const onExit = () => {
    for (const pid of [...Object.values(realNode?.pids ?? {}), ...Object.values(kube.pids)]) {
      try { process.kill(pid, 'SIGTERM'); } catch { /* already gone */ }
    }
    const pg = postgres.pid(); // SIGINT: Postgres' fast shutdown
    if (pg) try { process.kill(pg, 'SIGINT'); } catch { /* already gone */ }
  };
  process.on('exit', onExit);
  td.push("remove the 'exit' handler", () => { process.off('exit', onExit); });
}
