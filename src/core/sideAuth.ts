// Signed side-channel messages (docs/protocol.md, "Authenticated peers"). NOTIFY has no access control: anyone who can
// connect to the database can say anything on any channel. Operators that share a key (spec.auth) sign
// their side-channel messages with HMAC-SHA256 over the content, a timestamp and a nonce; a receiver with
// the key refuses a bad signature, a timestamp outside SIGNED_WINDOW_MS, and a nonce it has seen (a message
// captured by anyone who LISTENs and sent again). Pure apart from the nonce's randomness: time comes in.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { MAX_SIDE_PAYLOAD_BYTES, SIGNED_MESSAGE_VERSION, senderId, type SignedMessage } from './sideChannel.ts';

/**
 * How far a signed message's timestamp may be from the receiver's clock, either way. Fixed rather than a
 * multiple of peerTimeout: it has to cover only the delivery delay (a listener more than 3 s behind
 * reconnects, NoEcho) and clock skew between Kubernetes clusters (NTP: well under a second), and it is what
 * the replay cache must remember, so it should not grow to hours with a long heartbeat.
 */
export const SIGNED_WINDOW_MS = 30_000;
/** Keys shorter than this are refused: `openssl rand -hex 32` gives 64. */
export const MIN_KEY_BYTES = 16;
/** The replay cache's bound: far above what operators send in SIGNED_WINDOW_MS (see ReplayCache). */
export const MAX_REMEMBERED_NONCES = 100_000;

export interface SideKeys {
  /** Signs, and verifies. */
  current: Buffer;
  /** Verifies only (key rotation): a message signed with either is accepted. */
  previous?: Buffer | undefined;
}

/**
 * A short, stable name of a key for status messages, so that a person can compare two clusters' keys (and see
 * that a rotation was picked up) without seeing them. It tells an attacker nothing the signatures they can
 * read do not (both are hashes of the key over known input).
 */
export function keyId(key: Buffer): string {
  return createHash('sha256').update('pgcluster.io key id\0').update(key).digest('hex').slice(0, 8);
}

/**
 * What is signed: the side channel (a message cannot be moved to another PgCluster's channel that uses the
 * same key), version, type, sender, ts, nonce and nodes, in one fixed order. JSON of an array of strings and
 * numbers is canonical.
 */
export function signedContent(channel: string, m: Omit<SignedMessage, 'sig'>): string {
  return JSON.stringify(['pgcluster.io/side', channel, m.v, m.type, m.from, m.ts, m.nonce, m.nodes]);
}

function hmac(key: Buffer, content: string): Buffer {
  return createHmac('sha256', key).update(content).digest();
}

export function newNonce(): string {
  return randomBytes(16).toString('hex');
}

/**
 * The signed messages saying `nodes`: as many as needed for each to stay under pg_notify's payload limit
 * (names in order, each message as full as it can be). None for no nodes.
 */
export function encodeSigned(
  type: SignedMessage['type'], nodes: readonly string[],
  o: { channel: string; from: string; key: Buffer; now: number; nonce?: () => string },
): string[] {
  const from = senderId(o.from);
  const nonce = o.nonce ?? newNonce;
  const out: string[] = [];
  const sign = (batch: string[]): string => {
    const m = { v: SIGNED_MESSAGE_VERSION, type, nodes: batch, from, ts: o.now, nonce: nonce() } as const;
    return JSON.stringify({ ...m, sig: hmac(o.key, signedContent(o.channel, m)).toString('hex') });
  };
  // The envelope without names; each name adds its JSON string and a comma. Every name passed the payload
  // rules (at most 255 bytes, at most ~1.5 KB escaped), so one always fits.
  const room = MAX_SIDE_PAYLOAD_BYTES - Buffer.byteLength(sign([]));
  let batch: string[] = [];
  let used = 0;
  for (const n of nodes) {
    const cost = Buffer.byteLength(JSON.stringify(n)) + 1;
    if (batch.length > 0 && used + cost > room) {
      out.push(sign(batch));
      batch = [];
      used = 0;
    }
    batch.push(n);
    used += cost;
  }
  if (batch.length > 0) out.push(sign(batch));
  return out;
}

export type VerifyProblem = 'side-stale' | 'side-bad-signature' | 'side-replay';
export type Verified = { ok: true; key: 'current' | 'previous' } | { ok: false; problem: VerifyProblem };

/**
 * Checks a parsed version 2 message: its timestamp within SIGNED_WINDOW_MS of `now` (wall-clock ms), its
 * signature by either key, and its nonce not seen before. The nonce is remembered only for a message whose
 * signature holds, so that someone without the key cannot fill the cache.
 */
export function verifySigned(m: SignedMessage, channel: string, keys: SideKeys, now: number, seen: ReplayCache): Verified {
  if (Math.abs(now - m.ts) > SIGNED_WINDOW_MS) return { ok: false, problem: 'side-stale' };
  const sig = Buffer.from(m.sig, 'hex');
  const content = signedContent(channel, m);
  const matches = (key: Buffer) => {
    const want = hmac(key, content);
    return want.length === sig.length && timingSafeEqual(want, sig);
  };
  let which: 'current' | 'previous';
  if (matches(keys.current)) which = 'current';
  else if (keys.previous && matches(keys.previous)) which = 'previous';
  else return { ok: false, problem: 'side-bad-signature' };
  if (!seen.remember(m.nonce, m.ts, now)) return { ok: false, problem: 'side-replay' };
  return { ok: true, key: which };
}

/**
 * The nonces of signed messages accepted within the window, each until its timestamp leaves the window (after
 * that, verifySigned refuses the message as stale anyway). Bounded: beyond `max` entries the oldest is
 * forgotten and every timestamp up to its own is refused from then on, so that forgetting never lets a replay
 * through (at worst a late genuine message is refused). Only signed messages get here, so only key holders can
 * make it grow: operators send a few messages per heartbeat.
 */
export class ReplayCache {
  readonly #max: number;
  readonly #windowMs: number;
  #nonces = new Map<string, number>(); // nonce -> ts
  /** Timestamps at or below this are refused: a nonce of theirs may have been forgotten. */
  #floor = -Infinity;
  #lastSweep = -Infinity;

  constructor(max = MAX_REMEMBERED_NONCES, windowMs = SIGNED_WINDOW_MS) {
    this.#max = max;
    this.#windowMs = windowMs;
  }

  /** Remembers `nonce`; false when it was seen already (a replay), or its ts is at or below the floor. */
  remember(nonce: string, ts: number, now: number): boolean {
    if (ts <= this.#floor || this.#nonces.has(nonce)) return false;
    if (now - this.#lastSweep >= 1000 || this.#nonces.size >= this.#max) this.#sweep(now);
    while (this.#nonces.size >= this.#max) {
      const [oldest, oldestTs] = this.#nonces.entries().next().value as [string, number];
      this.#nonces.delete(oldest);
      this.#floor = Math.max(this.#floor, oldestTs);
    }
    if (ts <= this.#floor) return false;
    this.#nonces.set(nonce, ts);
    return true;
  }

  get size(): number {
    return this.#nonces.size;
  }

  #sweep(now: number): void {
    this.#lastSweep = now;
    for (const [nonce, ts] of this.#nonces) if (ts + this.#windowMs < now) this.#nonces.delete(nonce);
  }
}
