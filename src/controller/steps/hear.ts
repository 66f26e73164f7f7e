// Between reconciles: what the endpoint hears for a PgCluster (docs/architecture.md, "From a NOTIFY to a
// published peer"). A name on the channel or a message on the operators' side channel goes into the runtime's
// peer table (runtime/sideChannelAuth.ts decides what may); a change queues a reconcile for when it may be
// published (runtime/publishPacing.ts: at once while changes are few, then paced). Anyone who can connect to
// the database can NOTIFY on a channel: new remote names are counted (pgcluster_remote_names_total), what is
// dropped is counted by problem (pgcluster_invalid_payloads_total).
import { keyLabels } from '../../core/key.ts';
import type { Context } from '../context.ts';
import type { ClusterRuntime } from '../runtime/clusterRuntime.ts';

type HearContext = Pick<Context, 'runtimes' | 'env' | 'queue'>;

/** A NOTIFY heard on the PgCluster's channel. */
export function hearPayload(ctx: HearContext, key: string, payload: string): void {
  const rt = ctx.runtimes.get(key);
  if (!rt) return;
  const { clock, metrics, log } = ctx.env;
  const r = rt.receive(payload, clock.monotonic());
  if (r.outcome === 'invalid' || r.outcome === 'refused') {
    metrics.invalidPayloads.inc({ ...keyLabels(key), problem: r.problem ?? 'unknown' });
    log.debug({ pgcluster: key, problem: r.problem, bytes: Buffer.byteLength(payload) }, r.outcome === 'refused' ? 'not published: an unsigned name (spec.auth.acceptUnsigned is false)' : 'dropped an invalid payload');
  } else if (r.outcome === 'changed') {
    remoteChanged(ctx, rt);
  }
}

/**
 * A message on the operators' side channel: a "leave" takes remote peers out at once (docs/protocol.md, "Instant leave
 * across clusters"); a signed "alive" adds or refreshes them ("Authenticated peers").
 */
export function hearSide(ctx: HearContext, key: string, payload: string): void {
  const rt = ctx.runtimes.get(key);
  if (!rt) return;
  const { clock, metrics, log } = ctx.env;
  const r = rt.receiveSide(payload, clock.now(), clock.monotonic());
  if (r.outcome === 'dropped') {
    metrics.invalidPayloads.inc({ ...keyLabels(key), problem: r.problem });
    log.debug({ pgcluster: key, problem: r.problem, bytes: Buffer.byteLength(payload) }, 'dropped a side-channel message');
  } else if (r.outcome === 'left') {
    log.debug({ pgcluster: key }, 'remote peers left (side channel)');
    // At once unless leaves are many (LEAVE_PUBLISH_BURST: a flood of names and leaves costs a few writes a second).
    ctx.queue.addAfter(rt.key, rt.remoteChange(clock.monotonic(), 'leave'));
  } else if (r.outcome === 'changed') {
    remoteChanged(ctx, rt);
  }
}

/** A new remote name (or one refused by maxPeers): counted; reconcile when it may be published. */
function remoteChanged(ctx: HearContext, rt: ClusterRuntime): void {
  ctx.env.metrics.remoteNames.inc(keyLabels(rt.key));
  ctx.queue.addAfter(rt.key, rt.remoteChange(ctx.env.clock.monotonic()));
}
