// Step 4, plan (pure): from the Observed value to every write the PgCluster needs — its ConfigMap and pod
// annotations (plan/outputs.ts), its DNS output (plan/dns.ts) — and its status as a function of what applying
// them reports (an output found taken, writes refused): conditions and fields together (plan/status.ts).
import type { Instant } from '../../core/clock.ts';
import type { ConditionInput } from '../../core/conditions.ts';
import { configMapTakenMessage, planOutputs, type OutputsPlan } from '../plan/outputs.ts';
import { planDns, serviceConflictMessage, type DnsPlan } from '../plan/dns.ts';
import { degradedCondition, readyCondition } from '../plan/conditions.ts';
import { planStatus, type StatusWrite } from '../plan/status.ts';
import type { Observed } from './observe.ts';

/** What applying the outputs found that the status reports. */
export interface OutputsReport {
  /** A create got 409: an object we cannot see (not labelled as ours) holds the name. */
  configMapTaken: boolean;
  serviceTaken: boolean;
  /** Writes refused as invalid or too large (422, 413), in the API server's words. */
  rejected: readonly string[];
}

export interface StatusPlan {
  write: StatusWrite | undefined;
  /** The conditions set, and the condition types that no longer apply (removed). */
  conditions: ConditionInput[];
  drop: string[];
}

export interface ReconcilePlan {
  outputs: OutputsPlan;
  dns: DnsPlan;
  status(report: OutputsReport): StatusPlan;
}

export function plan(o: Observed, t: Instant): ReconcilePlan {
  const { pc, spec, peers } = o;
  const outputs = planOutputs(pc, spec, o.selection.selected, peers, o.outputs);
  const dns = planDns(pc, spec, peers, o.dns);
  return { outputs, dns, status: (report) => planReconcileStatus(o, outputs, dns, report, t) };
}

function planReconcileStatus(o: Observed, outputs: OutputsPlan, dns: DnsPlan, report: OutputsReport, t: Instant): StatusPlan {
  const { pc, spec, peers, members } = o;
  const ns = pc.metadata.namespace;
  const dropped = o.dropped + o.droppedForSize;
  const ready = readyCondition({
    spec, connection: o.connection, attached: o.attached, everListening: o.everListening, members,
    remote: peers.filter((p) => p.source === 'remote').length, dropped: o.dropped, droppedForSize: o.droppedForSize,
    unannounced: o.selection.unannounced,
    outputs: {
      configMapConflict: outputs.configMapConflict ?? (report.configMapTaken ? configMapTakenMessage(ns, spec.configMapName) : undefined),
      serviceConflict: dns.conflict ?? (report.serviceTaken ? serviceConflictMessage(ns, spec.serviceName) : undefined),
      podConflicts: outputs.podConflicts,
      rejected: report.rejected,
    },
  });
  const fields = {
    channel: spec.channel, members, peers: peers.length, droppedPeers: dropped, unannouncedPods: o.selection.unannounced.length,
    conflictingPods: outputs.podConflicts.length, podAnnotation: spec.podAnnotation,
  };
  const conditions = [o.connection, ready, ...(spec.minMembers > 0 ? [degradedCondition(members, spec.minMembers)] : []), ...(o.authenticated ? [o.authenticated] : [])];
  const drop = [...(spec.minMembers > 0 ? [] : ['Degraded']), ...(o.authenticated ? [] : ['Authenticated'])];
  return { write: planStatus(pc, o.status, fields, conditions, t.wall, drop), conditions, drop };
}
