// 12. Rollouts paced by discovery (docs/readiness-gate.md, "Rollouts paced by discovery"): a Deployment of real BEAM pods of
// examples/elixir-app on the real node (maxSurge 1, maxUnavailable 0, a 3 s preStop sleep), rolled again and
// again, first without the readiness gate, then the same Deployment with it. Per rollout, from the template
// change until every pod is replaced and the cluster has settled:
//   disconnected  the total time during which some Ready pod (Ready, not being deleted) did not have some other
//                 Ready pod in its Node.list() (the app's own report of its connections)
//   duration      from the template change until the Deployment's rollout is complete (kubectl rollout status)
// Both variants run the same pods, PgCluster and operator; only spec.readinessGates differs.
import { join } from 'node:path';
import { type BenchCtx, operator, pick, type Scenario } from '../lib/context.ts';
import { cleanupNamespace } from '../lib/kube.ts';
import { beamNamespace } from '../lib/realnode.ts';
import type { OperatorProc } from '../lib/operator.ts';
import { channelName, say, summarize, until } from '../lib/util.ts';
import { beamDeployment } from '../../test/harness/apps.ts';
import { clusteredNow, disconnectedMs, PodRecorder, rolloutDone } from '../../test/harness/rollout.ts';

const BASENAME = 'rg';

export interface RolloutFigures { variant: string; rollout: number; disconnectedMs: number; durationMs: number; settledMs: number }

export const gate: Scenario = {
  name: 'gate',
  title: 'rolling real BEAM pods with and without the readiness gate: Ready pods not connected, rollout time',
  needsRealNode: true,
  async run(ctx: BenchCtx) {
    const { kube } = ctx.stack;
    const size = pick(ctx.mode, { full: 5, quick: 4, smoke: 3 });
    const rollouts = pick(ctx.mode, { full: 4, quick: 2, smoke: 1 });
    const { ns, pg: pgSrv } = await beamNamespace(ctx, 'gate');
    const cm = `${BASENAME}-peers`;
    let op: OperatorProc | undefined;
    let recorder: PodRecorder | undefined;
    const figures: RolloutFigures[] = [];
    try {
      await kube.create(`/apis/pgcluster.io/v1alpha1/namespaces/${ns}/pgclusters`, {
        apiVersion: 'pgcluster.io/v1alpha1', kind: 'PgCluster', metadata: { name: BASENAME },
        spec: { selector: { matchLabels: { app: BASENAME } }, postgres: { urlSecretRef: { name: 'db' } }, channel: channelName(ns, BASENAME) },
      }, 'pgclusters');
      op = await operator(ctx, 'gate', [ns]);

      for (const [variant, gated] of [['without', false], ['with', true]] as const) {
        const name = `${BASENAME}-${variant}`;
        recorder = new PodRecorder({ kube, ns, labelSelector: `app=${BASENAME}`, basename: BASENAME, kubectl: join(ctx.stack.binDir, 'kubectl'), kubeconfig: ctx.stack.kubeconfig, appContainer: 'app' });
        await recorder.start();
        const rec = recorder;
        const settled = async (what: string) => {
          let detail = '';
          await until(`gate: ${variant} the gate: ${what}: ${size} Ready pods, each connected to the others`, () => {
            const c = clusteredNow(rec.pods.values(), size);
            detail = c.detail;
            return c.ok;
          }, 600_000, 200).catch((e: Error) => { throw new Error(`${e.message}; ${detail}`); });
        };
        say(`gate: ${size} BEAM pods, ${variant} the readiness gate`);
        await kube.create(`/apis/apps/v1/namespaces/${ns}/deployments`, beamDeployment({ name, replicas: size, basename: BASENAME, cookieSecret: 'cookie', configMap: cm, gated, preStopSeconds: 3 }), 'deployments');
        await settled('created');
        for (let r = 1; r <= rollouts; r++) {
          const old = [...rec.pods.values()].filter((p) => p.deletingAt === undefined).map((p) => p.name);
          const t0 = Date.now();
          await kube.patch(`/apis/apps/v1/namespaces/${ns}/deployments/${name}`, { spec: { template: { metadata: { annotations: { 'bench/rollout': String(t0) } } } } }, 'deployments');
          const done = await until(`gate: rollout ${r} ${variant} the gate complete`, async () => (await rolloutDone(kube, ns, name, size, rec.pods, old)) && Date.now(), 600_000, 200);
          await settled(`rollout ${r}`);
          const end = Date.now();
          const f: RolloutFigures = { variant, rollout: r, disconnectedMs: disconnectedMs(rec.pods.values(), t0, end), durationMs: done - t0, settledMs: end - t0 };
          figures.push(f);
          say(`gate: ${variant} the gate, rollout ${r}/${rollouts}: some Ready pod not connected to another for ${f.disconnectedMs} ms; rollout ${(f.durationMs / 1000).toFixed(1)} s`);
        }
        await kube.request('DELETE', `/apis/apps/v1/namespaces/${ns}/deployments/${name}`, { body: { propagationPolicy: 'Foreground' } });
        await until(`gate: the ${variant} pods gone`, async () => (await kube.get<{ items: unknown[] }>(`/api/v1/namespaces/${ns}/pods?labelSelector=app%3D${BASENAME}`)).items.length === 0, 300_000, 500);
        await recorder.stop();
        recorder = undefined;
      }

      for (const variant of ['without', 'with'] as const) {
        const mine = figures.filter((f) => f.variant === variant);
        for (const f of mine) {
          ctx.report.add('gate', `${variant}_${f.rollout}_disconnected_ms`, `${variant} the gate, rollout ${f.rollout}: time some Ready pod was not connected to another`, f.disconnectedMs, 'ms');
          ctx.report.add('gate', `${variant}_${f.rollout}_duration_s`, `${variant} the gate, rollout ${f.rollout}: duration (${size} pods, maxSurge 1)`, f.durationMs / 1000, 's');
        }
        ctx.report.add('gate', `${variant}_disconnected_mean_ms`, `${variant} the gate: not connected, mean of ${mine.length} rollouts`, summarize(mine.map((f) => f.disconnectedMs)).mean, 'ms');
        ctx.report.add('gate', `${variant}_duration_mean_s`, `${variant} the gate: rollout duration, mean of ${mine.length}`, summarize(mine.map((f) => f.durationMs / 1000)).mean, 's');
      }
      ctx.report.detail('gate', { pods: size, rollouts, figures });
    } finally {
      await recorder?.stop();
      await op?.stop();
      await cleanupNamespace(kube, ns).catch(() => {});
      await pgSrv.destroy();
    }
  },
};
