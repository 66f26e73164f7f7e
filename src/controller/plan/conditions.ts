// The conditions a reconcile sets besides the status fields: Connected (the endpoint), Ready (the outputs),
// Degraded (minMembers). Pure; their messages say what to fix.
import type { ConditionInput } from '../../core/conditions.ts';
import { formatDuration } from '../../core/duration.ts';
import { ANNOTATION_BUDGET, CONFIGMAP_DATA_BUDGET } from '../../core/outputs.ts';
import type { EffectiveSpec } from '../../core/spec.ts';
import type { EndpointState } from '../../postgres/endpoint.ts';
import type { PodConflict } from './outputs.ts';

export function connectedCondition(state: EndpointState, channel: string, endpointId: string): ConditionInput {
  switch (state.phase) {
    case 'Listening':
      return { type: 'Connected', status: 'True', reason: 'Listening', message: `LISTENing on channel ${channel} (endpoint ${endpointId}); own heartbeats are heard` };
    case 'Connecting':
      return { type: 'Connected', status: 'Unknown', reason: 'Connecting', message: `connecting to Postgres (endpoint ${endpointId})` };
    case 'Failed':
      return { type: 'Connected', status: 'False', reason: state.reason, message: state.message };
  }
}

export interface ReadyInput {
  spec: Pick<EffectiveSpec, 'configMapName' | 'podAnnotation' | 'maxPeers' | 'heartbeatMs'>;
  connection: ConditionInput;
  /** The PgCluster is attached to an endpoint (its URL was usable). */
  attached: boolean;
  /** The endpoint has been Listening since the PgCluster attached to it. */
  everListening: boolean;
  members: number;
  remote: number;
  /** Names left out for maxPeers, and for the outputs' byte budgets. */
  dropped: number;
  droppedForSize: number;
  unannounced: readonly string[];
  outputs: OutputReport;
}

/** What kept an output from being written: someone else owns it, or the API server refused it. */
export interface OutputReport {
  configMapConflict: string | undefined;
  /** The DNS output's Service is someone else's. */
  serviceConflict?: string | undefined;
  podConflicts: readonly PodConflict[];
  /** Writes the API server refused (422, 413): what and why, in its words. */
  rejected: readonly string[];
}

export function readyCondition(r: ReadyInput): ConditionInput {
  const { spec, connection } = r;
  const unannouncedNote = r.unannounced.length ? `; ${r.unannounced.length} selected pod(s) not announced: ${r.unannounced.slice(0, 3).join('; ')}` : '';
  const problem = outputProblem(spec.podAnnotation, r.outputs);
  if (problem) return { type: 'Ready', status: 'False', reason: problem.reason, message: `${problem.message}${unannouncedNote}` };
  if (connection.status !== 'True' && (!r.attached || !r.everListening)) {
    return { type: 'Ready', status: 'False', reason: r.attached ? 'WaitingForListener' : 'NotConnected', message: `peers not yet heard from the channel (${connection.reason}); outputs list members only${unannouncedNote}` };
  }
  if (connection.status !== 'True') {
    return { type: 'Ready', status: 'False', reason: 'Disconnected', message: `Postgres listener is down (${connection.reason}): outputs keep the last known peers and follow the pods; remote peers do not expire until it is back${unannouncedNote}` };
  }
  const published = `${r.members} member(s) and ${r.remote} remote peer(s) published to ConfigMap ${spec.configMapName}${spec.podAnnotation ? ` and pod annotation ${spec.podAnnotation}` : ''}`;
  if (r.droppedForSize > 0) {
    return { type: 'Ready', status: 'True', reason: 'OutputSizeExceeded', message: `${published}; ${r.droppedForSize} name(s) not published: the outputs are full (ConfigMap data ${CONFIGMAP_DATA_BUDGET / 1024} KiB, pod annotation ${ANNOTATION_BUDGET / 1024} KiB; remote peers are left out before members)${r.dropped ? `, and ${r.dropped} more for maxPeers ${spec.maxPeers}` : ''}${unannouncedNote}` };
  }
  if (r.dropped > 0) {
    return { type: 'Ready', status: 'True', reason: 'MaxPeersExceeded', message: `${published}; ${r.dropped} name(s) not published: maxPeers is ${spec.maxPeers}${unannouncedNote}` };
  }
  return { type: 'Ready', status: 'True', reason: 'PeersPublished', message: `${published}; heartbeat every ${formatDuration(spec.heartbeatMs)}${unannouncedNote}` };
}

/** Degraded (minMembers set): True below it, the alarm users otherwise build by hand. Ready is not affected. */
export function degradedCondition(members: number, minMembers: number): ConditionInput {
  return members < minMembers
    ? { type: 'Degraded', status: 'True', reason: 'BelowMinMembers', message: `${members} member(s) announced, fewer than minMembers ${minMembers}` }
    : { type: 'Degraded', status: 'False', reason: 'EnoughMembers', message: `${members} member(s) announced, at least minMembers ${minMembers}` };
}

function outputProblem(podAnnotation: string, o: OutputReport): { reason: 'OutputConflict' | 'OutputRejected'; message: string } | undefined {
  const conflicts: string[] = [];
  if (o.configMapConflict) conflicts.push(o.configMapConflict);
  if (o.serviceConflict) conflicts.push(o.serviceConflict);
  if (o.podConflicts.length) {
    const examples = o.podConflicts.slice(0, 3).map((c) => (c.owner ? `${c.pod} (owned by the older PgCluster ${c.owner})` : `${c.pod} (a value this PgCluster did not write)`));
    conflicts.push(`annotation ${podAnnotation} is left alone on ${o.podConflicts.length} selected pod(s): ${examples.join(', ')}; set a spec.output.podAnnotation of this PgCluster's own, or remove the value if it is stale (kubectl annotate pod <pod> ${podAnnotation}-)`);
  }
  const rejected = o.rejected.length ? `the API server refused ${o.rejected.length} write(s): ${o.rejected.slice(0, 2).join('; ')}` : '';
  if (conflicts.length) return { reason: 'OutputConflict', message: [...conflicts, ...(rejected ? [rejected] : [])].join('; ') };
  if (rejected) return { reason: 'OutputRejected', message: `${rejected}; the other outputs are written` };
  return undefined;
}
