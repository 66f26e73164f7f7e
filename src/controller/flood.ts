// Remote changes and NOTIFY floods (docs/architecture.md, "A NOTIFY flood"). Anyone who can connect to the
// database can NOTIFY on a PgCluster's channel. The peer table keeps what a flood can add bounded (maxPeers
// names, the rest only counted), and ClusterRuntime.peers() publishes remote-only changes at once while they
// are few, then at most once per REMOTE_PUBLISH_INTERVAL_MS. Here a remote change is enqueued for when it may
// be published, new remote names are counted (pgcluster_remote_names_total), and a rate of them above
// FLOOD_NAMES_PER_SECOND is reported: pgcluster_notify_flood is 1 and a Warning Event NotifyFlood is recorded
// when it starts (Normal NotifyFloodEnded when a reconcile finds it over).
import { recordEvent } from './apply.ts';
import type { PgClusterObject } from '../kube/resources.ts';
import { splitKey, type Context } from './context.ts';
import { FLOOD_NAMES_PER_SECOND, REMOTE_PUBLISH_BURST, REMOTE_PUBLISH_INTERVAL_MS, type ClusterRuntime } from './runtime.ts';

function labels(key: string): { namespace: string; name: string } {
  const [namespace, name] = splitKey(key);
  return { namespace, name };
}

/** A new remote name (or one refused by maxPeers) heard on the channel: reconcile when it may be published. */
export function remoteChanged(ctx: Pick<Context, 'clock' | 'queue' | 'metrics'>, rt: ClusterRuntime): void {
  ctx.metrics.remoteNames.inc(labels(rt.key));
  ctx.queue.addAfter(rt.key, rt.remoteChange(ctx.clock.monotonic()));
}

/** Remote peers gone (another operator's "leave"): reconcile when it may be published, at once unless leaves
 * are many (runtime.ts, LEAVE_PUBLISH_BURST: a flood of names and leaves costs a few writes a second). */
export function remoteLeft(ctx: Pick<Context, 'clock' | 'queue'>, rt: ClusterRuntime): void {
  ctx.queue.addAfter(rt.key, rt.remoteChange(ctx.clock.monotonic(), 'leave'));
}

/** At each reconcile: the flood gauge, and an Event when a flood starts or is found over. */
export function reportFlood(ctx: Context, pc: PgClusterObject, rt: ClusterRuntime, channel: string): void {
  const f = rt.flood(ctx.clock.monotonic());
  ctx.metrics.notifyFlood.set(labels(rt.key), f.flooding ? 1 : 0);
  if (!f.changed) return;
  const rate = Math.round(f.perSecond);
  const ev = f.flooding
    ? {
      type: 'Warning' as const, reason: 'NotifyFlood',
      message: `${rate} new node names a second are NOTIFYed on channel ${channel} (more than ${FLOOD_NAMES_PER_SECOND}): something with access to the database floods it. `
        + `Names beyond maxPeers are dropped and counted, remote changes are published at most every ${REMOTE_PUBLISH_INTERVAL_MS / 1000}s after a burst of ${REMOTE_PUBLISH_BURST}; find the sender with pg_stat_activity`,
    }
    : { type: 'Normal' as const, reason: 'NotifyFloodEnded', message: `new node names on channel ${channel} are back to ${rate} a second` };
  ctx.log.warn({ pgcluster: rt.key, perSecond: rate, flooding: f.flooding }, f.flooding ? 'NOTIFY flood on the channel' : 'NOTIFY flood over');
  recordEvent(ctx, pc, ev);
}
