// The operators' side channel (docs/protocol.md, "Instant leave across clusters", "Authenticated peers"). Operators that
// share a PgCluster channel also talk on a channel derived from it, which libcluster_postgres nodes never
// LISTEN on, in small versioned JSON messages. Version 1 has one type, "leave": a member stopped being
// eligible (deleted, terminating, unready), so every other operator drops it at once instead of after
// peerTimeout. Version 2 is signed (core/sideAuth.ts) and has "leave" and "alive" (an operator's members,
// each heartbeat). The bare-name heartbeat on the main channel is unchanged. Payloads are untrusted, like
// the main channel's: this module checks only their shape.
import { createHash } from 'node:crypto';
import { parseNodeName } from './payload.ts';

export const SIDE_MESSAGE_VERSION = 1;
export const SIGNED_MESSAGE_VERSION = 2;
export const MAX_SENDER_BYTES = 253;
/** pg_notify refuses payloads of 8000 bytes and more. */
export const MAX_SIDE_PAYLOAD_BYTES = 7999;
const NONCE = /^[0-9a-f]{32}$/;
const SIG = /^[0-9a-f]{64}$/;

/**
 * `<channel, cut to 48>_pgco_<8 hex of sha256(channel)>`: a valid unquoted identifier of at most 62 bytes,
 * one per PgCluster channel.
 */
export function sideChannel(channel: string): string {
  return `${channel.slice(0, 48)}_pgco_${createHash('sha256').update(channel).digest('hex').slice(0, 8)}`;
}

/** The sender's identity as messages carry it: at most MAX_SENDER_BYTES bytes (an identity of one code point
 * per byte in practice: a pod name). */
export function senderId(from: string): string {
  return Buffer.from(from).subarray(0, MAX_SENDER_BYTES).toString('utf8').replace(/\uFFFD+$/, '');
}

export interface LeaveMessage {
  v: 1;
  type: 'leave';
  /** The node that left. */
  node: string;
  /** Who says so: the sending operator's identity (its pod name). */
  from: string;
}

/** A version 2 message, as received: its signature is not checked yet (sideAuth.verifySigned). */
export interface SignedMessage {
  v: 2;
  type: 'alive' | 'leave';
  /** alive: the sender's members now; leave: members that left. */
  nodes: string[];
  from: string;
  /** When it was signed, Unix ms (the sender's wall clock). */
  ts: number;
  /** 16 random bytes, hex: no two messages share one. */
  nonce: string;
  /** HMAC-SHA256, hex, over sideAuth.signedContent(). */
  sig: string;
}

export type SideMessage = LeaveMessage | SignedMessage;

export function encodeLeave(node: string, from: string): string {
  return JSON.stringify({ v: SIDE_MESSAGE_VERSION, type: 'leave', node, from: senderId(from) });
}

export type SideProblem =
  | 'side-too-long' | 'side-not-json' | 'side-unknown-version' | 'side-unknown-type' | 'side-bad-node' | 'side-bad-sender' | 'side-bad-envelope';
export type SideParse = { ok: true; message: SideMessage } | { ok: false; problem: SideProblem };

const fail = (problem: SideProblem): SideParse => ({ ok: false, problem });

/** Checks a side-channel payload's shape: JSON, a known version and type, node names that pass the payload
 * rules, a sender, and for version 2 the envelope (ts, nonce, sig). Never throws. */
export function parseSideMessage(payload: string): SideParse {
  if (Buffer.byteLength(payload) > MAX_SIDE_PAYLOAD_BYTES) return fail('side-too-long');
  let doc: unknown;
  try {
    doc = JSON.parse(payload);
  } catch {
    return fail('side-not-json');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return fail('side-not-json');
  const m = doc as Record<string, unknown>;
  const validSender = typeof m.from === 'string' && m.from.length > 0 && Buffer.byteLength(m.from) <= MAX_SENDER_BYTES;
  if (m.v === SIDE_MESSAGE_VERSION) {
    if (m.type !== 'leave') return fail('side-unknown-type');
    if (typeof m.node !== 'string' || !parseNodeName(m.node).ok) return fail('side-bad-node');
    if (!validSender) return fail('side-bad-sender');
    return { ok: true, message: { v: 1, type: 'leave', node: m.node, from: m.from as string } };
  }
  if (m.v !== SIGNED_MESSAGE_VERSION) return fail('side-unknown-version');
  if (m.type !== 'leave' && m.type !== 'alive') return fail('side-unknown-type');
  if (!Array.isArray(m.nodes) || m.nodes.length === 0 || !m.nodes.every((n) => typeof n === 'string' && parseNodeName(n).ok)) return fail('side-bad-node');
  if (!validSender) return fail('side-bad-sender');
  if (!Number.isSafeInteger(m.ts) || typeof m.nonce !== 'string' || !NONCE.test(m.nonce) || typeof m.sig !== 'string' || !SIG.test(m.sig)) return fail('side-bad-envelope');
  return { ok: true, message: { v: 2, type: m.type, nodes: m.nodes as string[], from: m.from as string, ts: m.ts as number, nonce: m.nonce, sig: m.sig } };
}
