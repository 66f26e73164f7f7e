// What the real-node scenarios (realnode, gate) set up alike: a namespace for BEAM app pods, with a private
// Postgres the pods reach at the node's address (Secret `db`) and the Erlang cookie (Secret `cookie`).
import { randomBytes } from 'node:crypto';
import type { PostgresServer } from '../../test/harness/postgres.ts';
import type { BenchCtx } from './context.ts';
import { createNamespace, createSecret } from './kube.ts';
import type { BenchStack } from './stack.ts';
import { until } from './util.ts';

export interface BeamNamespace {
  ns: string;
  pg: PostgresServer;
  node: NonNullable<BenchStack['realNode']>;
}

/** The namespace `<prefix>-...` with Secrets `db` and `cookie`; the caller destroys `pg` and the namespace. */
export async function beamNamespace(ctx: BenchCtx, prefix: string): Promise<BeamNamespace> {
  const { kube } = ctx.stack;
  const node = ctx.stack.realNode;
  if (!node) throw new Error(`the ${prefix} scenario needs the real node (the stack starts it when this scenario is selected)`);
  const pg = await ctx.stack.newPostgres(prefix);
  const ns = await createNamespace(kube, prefix);
  // ServiceAccount admission: the namespace's default ServiceAccount must exist before a pod can.
  await until('the default ServiceAccount', () => kube.getOptional(`/api/v1/namespaces/${ns}/serviceaccounts/default`), 30_000, 100);
  const url = new URL(pg.url);
  url.hostname = node.hostIp;
  await createSecret(kube, ns, 'db', url.toString());
  await kube.create(`/api/v1/namespaces/${ns}/secrets`, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'cookie' }, stringData: { cookie: randomBytes(24).toString('hex') } }, 'secrets');
  return { ns, pg, node };
}
