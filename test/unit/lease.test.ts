// Leader election's timing on a FakeClock (src/kube/lease.ts): client-go's renew-deadline rule, i.e. a
// leader stops before the lease it holds could expire for anyone else, even while a request hangs; a leader
// that reads the Lease held by another stops at once; a release hands the Lease back after the renewal in
// flight. The API server is an in-memory Lease with resourceVersion checks.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { KubeApiError } from '../../src/kube/client.ts';
import { LeaderElector, type Lease, type LeaseApi, type LostReason } from '../../src/kube/lease.ts';
import { FakeClock } from '../support/fakeClock.ts';
import { eventually } from '../support/poll.ts';

const LEASE = 15_000;
const DEADLINE = 10_000;
const RETRY = 2_000;

/** One Lease in memory; `hang` makes every request from then on wait until `unhang`. */
class FakeLeaseApi implements LeaseApi {
  lease: Lease | undefined;
  #rv = 0;
  #hanging: (() => void)[] = [];
  hang = false;
  requests = 0;

  async #gate(): Promise<void> {
    this.requests++;
    if (this.hang) await new Promise<void>((r) => this.#hanging.push(r));
  }
  unhang(): void {
    this.hang = false;
    for (const r of this.#hanging.splice(0)) r();
  }
  async get<T>(path: string): Promise<T> {
    await this.#gate();
    if (!this.lease) throw new KubeApiError('GET', path, 404, 'NotFound', 'not found');
    return structuredClone(this.lease) as T;
  }
  async create<T>(path: string, body: unknown): Promise<T> {
    await this.#gate();
    if (this.lease) throw new KubeApiError('POST', path, 409, 'AlreadyExists', 'exists');
    this.lease = { ...(body as Lease), metadata: { ...(body as Lease).metadata, resourceVersion: String(++this.#rv) } };
    return structuredClone(this.lease) as T;
  }
  async update<T>(path: string, body: unknown): Promise<T> {
    await this.#gate();
    const b = body as Lease;
    if (b.metadata.resourceVersion !== this.lease?.metadata.resourceVersion) throw new KubeApiError('PUT', path, 409, 'Conflict', 'changed');
    this.lease = { ...b, metadata: { ...b.metadata, resourceVersion: String(++this.#rv) } };
    return structuredClone(this.lease) as T;
  }
  /** Another replica writes the Lease (as a takeover would). */
  takeOver(holder: string): void {
    const l = this.lease;
    assert.ok(l);
    this.lease = { ...l, spec: { ...l.spec, holderIdentity: holder }, metadata: { ...l.metadata, resourceVersion: String(++this.#rv) } };
  }
}

function elector(api: LeaseApi, clock: FakeClock, identity = 'a') {
  return new LeaderElector(api, { namespace: 'ns', name: 'op', identity, leaseDurationMs: LEASE, renewDeadlineMs: DEADLINE, retryPeriodMs: RETRY, log: pino({ level: 'silent' }), clock });
}

/** Runs the promise callbacks of the in-memory API between clock steps. */
const settle = () => new Promise((r) => setImmediate(r));

async function leader(api = new FakeLeaseApi(), clock = new FakeClock()) {
  const e = elector(api, clock);
  const lost: { reason: LostReason; at: number }[] = [];
  let leading = false;
  void e.acquire((reason) => lost.push({ reason, at: clock.monotonic() })).then(() => { leading = true; });
  await eventually(() => leading, 'the elector to lead');
  return { e, api, clock, lost };
}

test('a leader whose renewals hang stops at renewDeadline after its last renewal started, before the lease could expire', async () => {
  const { api, clock, lost } = await leader();
  // Two good renewals, then the API server stops answering (a request that never returns).
  for (let i = 0; i < 2; i++) { clock.advance(RETRY); await settle(); }
  const lastRenewStart = clock.monotonic();
  assert.equal(api.lease?.spec.holderIdentity, 'a');
  api.hang = true;
  for (let t = 0; t < DEADLINE - RETRY; t += 500) { clock.advance(500); await settle(); }
  assert.equal(lost.length, 0, 'still leading before the deadline');
  for (let t = 0; t < 2 * RETRY; t += 500) { clock.advance(500); await settle(); }
  assert.equal(lost.length, 1, 'lost once');
  assert.equal(lost[0]?.reason, 'RenewDeadlineExceeded');
  // At most renewDeadline after the start of the last renewal that succeeded (plus the 500 ms step here),
  // which is before anyone else may take the lease: leaseDuration after it saw that renewal.
  const at = lost[0]!.at - lastRenewStart;
  assert.ok(at <= DEADLINE + 500 && at < LEASE, `lost ${at} ms after the last renewal started`);
  api.unhang();
  await settle();
  clock.advance(LEASE);
  await settle();
  assert.equal(lost.length, 1, 'onLost is called once');
});

test('failed renewals (API errors) end leadership at the deadline, not at the first error', async () => {
  const api = new FakeLeaseApi();
  const { clock, lost } = await leader(api);
  const started = clock.monotonic();
  const update = api.update.bind(api);
  api.update = async () => { throw new KubeApiError('PUT', 'x', 500, 'InternalError', 'etcd timeout'); };
  clock.advance(RETRY); await settle();
  assert.equal(lost.length, 0, 'one failed renewal is retried');
  for (let t = 0; t < DEADLINE; t += 250) { clock.advance(250); await settle(); }
  assert.equal(lost[0]?.reason, 'RenewDeadlineExceeded');
  assert.ok(lost[0]!.at - started <= DEADLINE + 250);
  api.update = update;
});

test('a leader that reads the Lease held by another stops at once', async () => {
  const { api, clock, lost } = await leader();
  api.takeOver('b');
  clock.advance(RETRY); await settle();
  assert.deepEqual(lost.map((l) => l.reason), ['HeldByAnother']);
});

test('a leader renews with one request, on the record it wrote last; a conflict makes it read the Lease again', async () => {
  const { api, clock, lost } = await leader();
  const before = api.requests;
  for (let i = 0; i < 3; i++) { clock.advance(RETRY); await settle(); }
  assert.equal(api.requests - before, 3, 'one PUT per renewal, no GET');
  // Someone rewrote the record with us still as the holder (kubectl edit, say): the PUT conflicts, the
  // leader reads the Lease and renews on it, and still leads.
  const l = api.lease!;
  api.lease = { ...l, metadata: { ...l.metadata, resourceVersion: `${l.metadata.resourceVersion}-edited` } };
  clock.advance(RETRY); await settle();
  assert.equal(lost.length, 0);
  assert.equal(api.lease.metadata.resourceVersion?.endsWith('-edited'), false, 'renewed after the conflict');
});

test('each successful renewal reports how long it took; a failed one reports nothing', async () => {
  const api = new FakeLeaseApi();
  const clock = new FakeClock();
  const took: number[] = [];
  const e = new LeaderElector(api, { namespace: 'ns', name: 'op', identity: 'a', leaseDurationMs: LEASE, renewDeadlineMs: DEADLINE, retryPeriodMs: RETRY, log: pino({ level: 'silent' }), clock, onRenewed: (ms) => took.push(ms) });
  let leading = false;
  void e.acquire(() => {}).then(() => { leading = true; });
  await eventually(() => leading, 'the elector to lead');
  // A renewal that hangs for 3 s of the API server's time.
  api.hang = true;
  clock.advance(RETRY); await settle();
  clock.advance(3_000); await settle();
  api.unhang(); await settle();
  // A renewal the API server refuses.
  const update = api.update.bind(api);
  api.update = async () => { throw new KubeApiError('PUT', 'x', 500, 'InternalError', 'etcd timeout'); };
  clock.advance(RETRY); await settle();
  api.update = update;
  assert.deepEqual(took, [0, 3_000]);
});

test('a standby takes an unreleased lease only after leaseDuration of an unchanged record by its own clock', async () => {
  const api = new FakeLeaseApi();
  // a leads on a clock of its own that is never moved again: it dies without releasing, its record freezes.
  await leader(api, new FakeClock());
  const clock = new FakeClock(Date.UTC(2030, 0, 1)); // b's wall clock is years off: only its monotonic time counts
  const b = elector(api, clock, 'b');
  let bLeads = false;
  void b.acquire(() => {}).then(() => { bLeads = true; });
  await settle();
  const firstSeen = clock.monotonic();
  for (let t = 0; t < LEASE - RETRY; t += RETRY) { clock.advance(RETRY); await settle(); }
  assert.equal(bLeads, false, 'b waits out the lease duration');
  for (let t = 0; t < 3 * RETRY && !bLeads; t += RETRY / 4) { clock.advance(RETRY / 4); await settle(); }
  assert.equal(bLeads, true, 'b leads once the lease expired');
  assert.ok(clock.monotonic() - firstSeen >= LEASE, 'not before leaseDuration');
  assert.equal(api.lease?.spec.holderIdentity, 'b');
  assert.equal(api.lease?.spec.leaseTransitions, 1);
});

test('release hands the lease back (holder empty, 1 s) after the renewal in flight; a standby takes it at its next try', async () => {
  const { e, api, clock } = await leader();
  const b = elector(api, clock, 'b');
  let bLeads = false;
  void b.acquire(() => {}).then(() => { bLeads = true; });
  await settle();
  api.hang = true;
  clock.advance(RETRY); // a's renewal is now in flight
  await settle();
  const released = e.release();
  api.unhang();
  await released;
  assert.equal(api.lease?.spec.holderIdentity, '', 'released despite the renewal in flight');
  assert.equal(api.lease?.spec.leaseDurationSeconds, 1);
  assert.equal(e.leading, false);
  for (let t = 0; t < RETRY && !bLeads; t += 100) { clock.advance(100); await settle(); }
  assert.equal(bLeads, true, 'b takes the released lease within one retry period');
});

test('renewDeadline must be shorter than leaseDuration', () => {
  assert.throws(() => new LeaderElector(new FakeLeaseApi(), { namespace: 'ns', name: 'op', identity: 'a', leaseDurationMs: 10_000, renewDeadlineMs: 10_000, log: pino({ level: 'silent' }) }), /renewDeadline/);
});
