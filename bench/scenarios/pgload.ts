// 6. The load on Postgres, side by side on one dedicated server: the same N members announced (a) the
// libcluster_postgres way (every member two connections and its own NOTIFY transaction every 5 s) and (b) by
// the operator (the members as kwok pods), in clusters of 10 (one channel / one PgCluster per 10 members).
// For each: connections held, NOTIFY commits per second, server CPU for discovery alone, and the throughput
// of a concurrent OLTP workload (pgbench -N, 4 clients) against no discovery at all.
import pg from 'pg';
import { type BenchCtx, operator, pick, type Scenario } from '../lib/context.ts';
import { awaitPublished, buildFleet } from '../lib/fleet.ts';
import { startSim, type SimMember } from '../lib/libcluster-sim.ts';
import { metric } from '../lib/operator.ts';
import { sampleCpu, serverCpuSince } from '../lib/procstat.ts';
import { dbOf, pgbench, pgbenchInit, PgStats, withDb, type PgbenchResult } from '../lib/pg.ts';
import { mono, range, say, sleep } from '../lib/util.ts';

const CLUSTER_SIZE = 10;
const INTERVAL_MS = 5000;

interface Phase {
  key: string;
  label: string;
  /** Starts the discovery; returns how to read its client-side CPU seconds and how to stop it. */
  setup(): Promise<{ cpu(): Promise<number>; teardown(): Promise<void> }>;
}

interface PhaseResult {
  key: string;
  label: string;
  connections: number;
  notifyCommitsPerS: number;
  serverCpuPercent: number;
  clientCpuPercent: number;
  /** The median run by tps. */
  oltp: PgbenchResult;
  runs: PgbenchResult[];
}

export const pgload: Scenario = {
  name: 'pgload',
  title: 'load on Postgres: libcluster_postgres vs the operator, with a concurrent OLTP workload',
  async run(ctx: BenchCtx) {
    // pgbench runs `reps` times per phase and the median counts: the machine is shared, and one slow run
    // should not decide a comparison.
    const { sizes, seconds, reps, notifySeconds } = pick(ctx.mode, {
      full: { sizes: [100, 1000], seconds: 10, reps: 3, notifySeconds: 10 },
      quick: { sizes: [100, 300], seconds: 8, reps: 2, notifySeconds: 10 },
      smoke: { sizes: [10], seconds: 3, reps: 1, notifySeconds: 5 },
    });
    const srv = await ctx.stack.newPostgres('pgload');
    const stats = await PgStats.open(srv.url);
    try {
      const db = dbOf(srv.url);
      const oltpUrl = withDb(srv.url, 'oltp');
      const admin = new pg.Client({ connectionString: srv.url });
      await admin.connect();
      await admin.query('CREATE DATABASE oltp').finally(() => admin.end());
      await pgbenchInit(oltpUrl);
      const pid = srv.pid();
      if (!pid) throw new Error('the pgload Postgres is not running');

      const none: Phase = { key: 'none', label: 'no discovery', setup: async () => ({ cpu: async () => 0, teardown: async () => {} }) };
      const phases: Phase[] = [{ ...none, key: 'none' }];
      for (const n of sizes) {
        phases.push({
          key: `libcluster_${n}`,
          label: `libcluster_postgres, ${n} members`,
          setup: async () => {
            const members: SimMember[] = range(n).map((i) => ({ name: `app@10.77.${Math.floor(i / 250)}.${(i % 250) + 1}`, channel: `lc_c${String(Math.floor(i / CLUSTER_SIZE)).padStart(4, '0')}` }));
            say(`pgload: ${n} libcluster_postgres members connecting (${2 * n} connections)`);
            const sim = await startSim(srv.url, members, INTERVAL_MS);
            return { cpu: async () => (await sim.stats()).cpuSeconds, teardown: () => sim.stop() };
          },
        });
        phases.push({
          key: `operator_${n}`,
          label: `operator, ${n} members`,
          setup: async () => {
            const fleet = await buildFleet(ctx.stack.kube, {
              prefix: 'pgload', clusters: n / CLUSTER_SIZE, podsPerCluster: CLUSTER_SIZE, clustersPerNamespace: 100, databaseUrl: srv.url, heartbeat: '5s', node: ctx.stack.kwokNode,
            });
            const op = await operator(ctx, `pgload-${n}`, fleet.namespaces).catch(async (e: unknown) => { await fleet.cleanup(); throw e; });
            try {
              await awaitPublished(fleet, `pgload ${n}`, 600_000);
            } catch (e) {
              await op.stop();
              await fleet.cleanup();
              throw e;
            }
            return {
              cpu: async () => metric(await op.scrape(), 'process_cpu_seconds_total'),
              teardown: async () => { await op.stop(); await fleet.cleanup(); },
            };
          },
        });
      }
      phases.push({ ...none, key: 'none_after', label: 'no discovery (again, at the end)' });

      const results: PhaseResult[] = [];
      for (const ph of phases) {
        say(`pgload: ${ph.label}`);
        const d = await ph.setup();
        try {
          await sleep(INTERVAL_MS + 1000); // a full heartbeat interval under way
          // Discovery alone: commits (transaction ids; pgbench is not running yet) and server CPU.
          const x0 = await stats.nextXid();
          const cpu0 = sampleCpu();
          const c0 = await d.cpu();
          const t0 = mono();
          await sleep(notifySeconds * 1000);
          const x1 = await stats.nextXid();
          const serverCpu = serverCpuSince(cpu0, pid);
          const c1 = await d.cpu();
          const dt = (mono() - t0) / 1000;
          const connections = await stats.connections(db);
          const runs: PgbenchResult[] = [];
          for (const _ of range(reps)) runs.push(await pgbench(oltpUrl, seconds));
          const oltp = [...runs].sort((a, b) => a.tps - b.tps)[Math.floor(runs.length / 2)]!;
          results.push({
            key: ph.key, label: ph.label, connections,
            notifyCommitsPerS: (x1 - x0) / dt,
            serverCpuPercent: (serverCpu / dt) * 100,
            clientCpuPercent: ((c1 - c0) / dt) * 100,
            oltp, runs,
          });
          say(`pgload: ${ph.label}: ${connections} connections, ${((x1 - x0) / dt).toFixed(1)} NOTIFY commits/s, OLTP ${oltp.tps.toFixed(0)} tps`);
        } finally {
          await d.teardown();
        }
      }

      const base = results.filter((r) => r.key.startsWith('none'));
      const baseTps = base.reduce((a, r) => a + r.oltp.tps, 0) / base.length;
      const S = 'pgload';
      const rep = ctx.report;
      const allBase = base.flatMap((r) => r.runs.map((x) => x.tps));
      rep.add(S, 'baseline_tps', `no discovery: OLTP tps (pgbench -N, 4 clients; median of ${reps} x ${seconds} s, before and after)`, baseTps, 'tps');
      rep.add(S, 'baseline_spread_percent', 'no discovery: spread of single runs (max/min - 1): the noise', (Math.max(...allBase) / Math.min(...allBase) - 1) * 100, '%');
      for (const r of results.filter((x) => !x.key.startsWith('none'))) {
        rep.add(S, `${r.key}_connections`, `${r.label}: connections held`, r.connections, '');
        rep.add(S, `${r.key}_notify_commits_per_s`, `${r.label}: NOTIFY commits/s`, r.notifyCommitsPerS, '/s');
        rep.add(S, `${r.key}_server_cpu_percent`, `${r.label}: Postgres CPU for discovery alone`, r.serverCpuPercent, '%');
        rep.add(S, `${r.key}_client_cpu_percent`, `${r.label}: discovery client CPU (sim / operator)`, r.clientCpuPercent, '%');
        rep.add(S, `${r.key}_tps`, `${r.label}: OLTP tps`, r.oltp.tps, 'tps');
        rep.add(S, `${r.key}_tps_vs_baseline`, `${r.label}: OLTP tps vs no discovery`, (r.oltp.tps / baseTps) * 100, '%');
      }
      rep.detail(S, { clusterSize: CLUSTER_SIZE, intervalMs: INTERVAL_MS, pgbenchSeconds: seconds, pgbenchReps: reps, notifyWindowSeconds: notifySeconds, baselineTps: baseTps, phases: results });
    } finally {
      await stats.close();
      await srv.destroy();
    }
  },
};
