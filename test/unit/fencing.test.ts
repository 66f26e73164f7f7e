// What a replica that stops leading may still do: nothing. Its Writer refuses every write once fenced, and
// its Postgres sessions carry its identity (pg_stat_activity shows whose a heartbeat is).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fencedWriter, WritesFenced } from '../../src/controller/write/writer.ts';
import { applicationName } from '../../src/postgres/connection.ts';
import { RecordingWriter, pgcluster, chatSpec } from '../support/controllerKit.ts';

test('a fenced Writer passes writes through while allowed, and refuses every write afterwards', async () => {
  const inner = new RecordingWriter();
  let allowed = true;
  const w = fencedWriter(inner, () => allowed);
  await w.patchPodAnnotations('prod', 'a', { 'pgcluster.io/peers': null }, { key: 'pgcluster.io/owner-1', value: 'chat pgcluster.io/peers' });
  assert.deepEqual(inner.calls, [{ verb: 'patchPodAnnotations', name: 'a', annotations: { 'pgcluster.io/peers': null }, guard: { key: 'pgcluster.io/owner-1', value: 'chat pgcluster.io/peers' } }],
    'passed through whole: a guarded removal stays guarded');
  allowed = false;
  const pc = pgcluster('chat', chatSpec);
  for (const write of [
    () => w.createConfigMap({ metadata: { name: 'c', namespace: 'prod' }, data: {} }),
    () => w.patchConfigMap('prod', 'c', { data: {}, labels: {} }),
    () => w.deleteConfigMap('prod', 'c'),
    () => w.patchPodAnnotations('prod', 'a', {}),
    () => w.patchStatus('prod', 'chat', {}),
    () => w.setFinalizers(pc, []),
    () => w.createEvent(pc, { type: 'Normal', reason: 'R', message: 'm' }),
    () => w.createOutput('services', { metadata: { name: 's', namespace: 'prod' } }),
    () => w.patchOutput('endpointslices', 'prod', 's-pgco-4-0', {}),
    () => w.deleteOutput('services', 'prod', 's'),
  ]) await assert.rejects(write(), WritesFenced);
  assert.equal(inner.calls.length, 1, 'nothing reached the API');
});

test('application_name: pgcluster-operator/<which>/<identity>, at most 63 bytes, keeping the end of a long identity', () => {
  assert.equal(applicationName('sender'), 'pgcluster-operator/sender');
  assert.equal(applicationName('listener', 'pgcluster-operator-6d4f9c7b8-x2x9q'), 'pgcluster-operator/listener/pgcluster-operator-6d4f9c7b8-x2x9q');
  const long = applicationName('listener', 'pgco-pgcluster-operator-6d4f9c7b8-x2x9q');
  assert.ok(Buffer.byteLength(long) <= 63, long);
  assert.ok(long.endsWith('-6d4f9c7b8-x2x9q'), long);
  assert.ok(long.startsWith('pgcluster-operator/listener/'), long);
});
