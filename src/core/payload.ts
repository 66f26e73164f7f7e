// Received payloads are untrusted: any database user can NOTIFY on the channel. A valid payload is what
// libcluster_postgres sends and will turn into an atom and dial: exactly one `name@host`.
export const MAX_NODE_NAME_BYTES = 255; // Erlang's atom length limit

export type PayloadProblem = 'empty' | 'too-long' | 'whitespace-or-control' | 'not-name-at-host';

export type ParsedNodeName = { ok: true; node: string; host: string } | { ok: false; problem: PayloadProblem };

// Whitespace, C0/C1 controls and Unicode line/paragraph separators.
const FORBIDDEN = /[\s\p{Cc}\u2028\u2029]/u;

export function parseNodeName(payload: string): ParsedNodeName {
  if (payload.length === 0) return { ok: false, problem: 'empty' };
  if (Buffer.byteLength(payload, 'utf8') > MAX_NODE_NAME_BYTES) return { ok: false, problem: 'too-long' };
  if (FORBIDDEN.test(payload)) return { ok: false, problem: 'whitespace-or-control' };
  const at = payload.indexOf('@');
  if (at <= 0 || at === payload.length - 1 || payload.indexOf('@', at + 1) !== -1) {
    return { ok: false, problem: 'not-name-at-host' };
  }
  return { ok: true, node: payload, host: payload.slice(at + 1) };
}
