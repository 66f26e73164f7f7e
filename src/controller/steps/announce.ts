// Step 3, announce: the Postgres side effects. The members that left are said at once to the other operators
// on the channel (they drop them now, not after their peerTimeout), signed when there is a key; the endpoint
// heartbeats the current members from now on. Sent only while attached; a leave missed while down is covered
// by peerTimeout.
import type { Instant } from '../../core/clock.ts';
import { encodeSigned } from '../../core/sideAuth.ts';
import { encodeLeave } from '../../core/sideChannel.ts';
import type { Env } from '../context.ts';
import type { Observed } from './observe.ts';

export function announce(env: Pick<Env, 'identity'>, o: Pick<Observed, 'rt' | 'spec' | 'change'>, t: Instant): void {
  const { rt, spec } = o;
  const attachment = rt.attachment;
  if (!attachment) return;
  const key = rt.auth.signingKey;
  const signed = (type: 'alive' | 'leave', nodes: readonly string[], at: number): string[] =>
    key ? encodeSigned(type, nodes, { channel: attachment.side, from: env.identity, key, now: at }) : [];
  const removed = o.change.removed;
  if (removed.length) {
    const leaves = key ? signed('leave', removed, t.wall) : removed.map((node) => encodeLeave(node, env.identity));
    for (const m of leaves) attachment.endpoint.notifyOnce(attachment.side, m);
  }
  // With a key, every heartbeat also says the members signed ("alive") on the side channel.
  const side = key ? { channel: attachment.side, sign: (names: readonly string[], at: number) => signed('alive', names, at) } : undefined;
  attachment.endpoint.setAnnouncer(rt.key, { channel: spec.channel, intervalMs: spec.heartbeatMs, names: rt.table.memberNames(), side });
}
