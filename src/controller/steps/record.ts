// Step 6, record: what the reconcile did, for people — the join-to-published latency, the gauges, the
// conditions as metrics, and a NotifyFlood Event when a flood of new names starts or ends (docs/architecture.md,
// "A NOTIFY flood") — and step 7, when to look again.
import { keyLabels } from '../../core/key.ts';
import type { PgClusterObject } from '../../kube/resources.ts';
import type { Context } from '../context.ts';
import type { ClusterRuntime } from '../runtime/clusterRuntime.ts';
import { FLOOD_NAMES_PER_SECOND } from '../runtime/floodMeter.ts';
import { REMOTE_PUBLISH_BURST, REMOTE_PUBLISH_INTERVAL_MS } from '../runtime/publishPacing.ts';
import { recordEvent } from '../write/apply.ts';
import type { Applied } from './apply.ts';
import type { Observed } from './observe.ts';

/** Re-check everything at least this often, even with no event. */
export const RESYNC_MS = 60_000;

export function record(ctx: Pick<Context, 'env' | 'writes'>, o: Observed, applied: Applied): void {
  const { metrics } = ctx.env;
  const labels = keyLabels(o.rt.key);
  const changedAt = o.rt.takeChange();
  if (changedAt !== undefined) metrics.joinToPublished.observe((applied.at - changedAt) / 1000);
  metrics.members.set(labels, o.members);
  metrics.peers.set(labels, o.peers.length);
  metrics.droppedPeers.set(labels, o.dropped + o.droppedForSize);
  reportFlood(ctx, o.pc, o.rt, o.spec.channel, applied.at);
  metrics.setConditions(labels.namespace, labels.name, applied.status.conditions, applied.status.drop);
}

/**
 * In how many ms to reconcile again (`now`, monotonic): the next expiry, publish token, taken-name recheck or
 * read of an unusable Secret.
 */
export function nextWake(rt: ClusterRuntime, now: number): number {
  const next = Math.min(rt.nextWake() ?? Infinity, rt.taken.recheckAt(now) ?? Infinity, rt.secretRetry.wakeAt() ?? Infinity);
  return next === Infinity ? RESYNC_MS : Math.min(RESYNC_MS, Math.max(10, next - now + 5));
}

/** The flood gauge, and an Event when a flood starts or is found over. */
function reportFlood(ctx: Pick<Context, 'env' | 'writes'>, pc: PgClusterObject, rt: ClusterRuntime, channel: string, now: number): void {
  const { metrics, log } = ctx.env;
  const f = rt.flood(now);
  metrics.notifyFlood.set(keyLabels(rt.key), f.flooding ? 1 : 0);
  if (!f.changed) return;
  const rate = Math.round(f.perSecond);
  const ev = f.flooding
    ? {
      type: 'Warning' as const, reason: 'NotifyFlood',
      message: `${rate} new node names a second are NOTIFYed on channel ${channel} (more than ${FLOOD_NAMES_PER_SECOND}): something with access to the database floods it. `
        + `Names beyond maxPeers are dropped and counted, remote changes are published at most every ${REMOTE_PUBLISH_INTERVAL_MS / 1000}s after a burst of ${REMOTE_PUBLISH_BURST}; find the sender with pg_stat_activity`,
    }
    : { type: 'Normal' as const, reason: 'NotifyFloodEnded', message: `new node names on channel ${channel} are back to ${rate} a second` };
  log.warn({ pgcluster: rt.key, perSecond: rate, flooding: f.flooding }, f.flooding ? 'NOTIFY flood on the channel' : 'NOTIFY flood over');
  recordEvent({ writer: ctx.writes.writer, log }, pc, ev);
}
