// Step 4, plan (pure): from the Observed value to every write the PgCluster needs — its ConfigMap and pod
// annotations (plan/outputs.ts), its DNS output (plan/dns.ts) — and its status as a function of what applying
// them reports (an output found taken, writes refused): conditions and fields together (plan/status.ts).
import type { Instant } from '../../core/clock.ts';
import type { ConditionInput } from '../../core/conditions.ts';
import { configMapTakenMessage, planOutputs, timestamp, type OutputsPlan } from '../plan/outputs.ts';
import { planDns, serviceConflictMessage, type DnsPlan } from '../plan/dns.ts';
import { degradedCondition, readyCondition } from '../plan/conditions.ts';
import { planStatus, type StatusWrite } from '../plan/status.ts';
import { planGates, type GatePlan, type PublishedOutputs } from '../plan/gates.ts';
import { nowRfc3339 } from '../../core/conditions.ts';
import { PEERS_VERSION } from '../../core/outputs.ts';
import { ownedBy } from '../../kube/resources.ts';
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
  /** The pods' readiness gate conditions (plan/gates.ts). */
  gates: GatePlan;
  status(report: OutputsReport): StatusPlan;
}

export function plan(o: Observed, t: Instant): ReconcilePlan {
  const { pc, spec, peers } = o;
  const outputs = planOutputs(pc, spec, o.selection.selected, peers, o.outputs);
  const dns = planDns(pc, spec, peers, o.dns);
  const gates = planGates({
    pgcluster: { name: pc.metadata.name, created: timestamp(pc.metadata.creationTimestamp) },
    spec, selected: o.selection.selected, members: o.selection.members, published: peers,
    outputs: publishedOutputs(o, outputs, dns), observed: o.gates.condition, rivals: o.gates.rivals,
  }, nowRfc3339(t.wall));
  return { outputs, dns, gates, status: (report) => planReconcileStatus(o, outputs, dns, report, t) };
}

/** The outputs as observed (as written: through the write memo), in the form the gate reads them. */
function publishedOutputs(o: Observed, outputs: OutputsPlan, dns: DnsPlan): PublishedOutputs {
  const { pc, spec } = o;
  const lines = (v: string | undefined, sep: string) => new Set((v ?? '').split(sep).filter(Boolean));
  // Read only when a gated pod is judged (O(members²) names): not on every reconcile of a settled cluster.
  let configMap: PublishedOutputs['configMap'] | undefined;
  const readConfigMap = () => (outputs.configMapConflict ? { refused: outputs.configMapConflict } : lines(o.outputs.configMap?.data?.peers, '\n'));
  let annotations: Map<string, ReadonlySet<string>> | undefined;
  const readAnnotations = () => {
    const conflicting = new Set(outputs.podConflicts.map((c) => c.pod));
    const byName = new Map(o.outputs.pods.map((p) => [p.observed.metadata.name, p.observed]));
    // Each distinct value once: a list's names, or the names of the list whose version it carries (none if unknown).
    const names = new Map<string | undefined, ReadonlySet<string>>();
    const namesOf = (v: string | undefined): ReadonlySet<string> => {
      let n = names.get(v);
      if (n === undefined) {
        n = spec.podAnnotationFormat === 'version' ? (v !== undefined && PEERS_VERSION.test(v) ? o.outputs.versionNames?.(v) : undefined) ?? new Set<string>() : lines(v, ',');
        names.set(v, n);
      }
      return n;
    };
    return new Map(o.selection.members.filter((m) => !conflicting.has(m.pod))
      .map((m) => [m.pod, namesOf(byName.get(m.pod)?.metadata.annotations?.[spec.podAnnotation])]));
  };
  let addresses: PublishedOutputs['dns'];
  if (dns.conflict) addresses = { refused: dns.conflict };
  else if (spec.serviceName) {
    const slices = dns.slices.map((n) => o.dns.slice(n)).filter((s) => s !== undefined && ownedBy(s, pc));
    addresses = new Set(slices.flatMap((s) => (s?.endpoints ?? []).flatMap((e) => e.addresses)));
  }
  return {
    dns: addresses, refused: o.gates.refused,
    get configMap() {
      return (configMap ??= readConfigMap());
    },
    get annotations() {
      return spec.podAnnotation ? (annotations ??= readAnnotations()) : undefined;
    },
  };
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
