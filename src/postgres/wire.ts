// Guards one pg client's wire against a server that is not Postgres (docs/architecture.md, "Postgres"): an
// HTTP server, a port sending garbage, a message header claiming gigabytes. pg would wait for (and buffer)
// a 2 GiB message, and its parser throws out of a socket 'data' handler — an uncaught exception — on some
// malformed messages. Here:
// - the first byte the server sends must be one a Postgres server can send first (libpq checks the same);
// - no message may announce more than MAX_MESSAGE_BYTES (nothing the operator reads comes near it);
// - anything pg's parser or its message handlers throw while reading ends the connection instead of the
//   process.
// Each stops reading at once (the socket is destroyed) and records why: `problem`, which connection.ts turns
// into the NotPostgres reason whatever error pg reports for the destroyed socket.
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type pg from 'pg';
import { errorText } from '../core/redact.ts';

/** Notifications are under 8 KB, the operator's query results a row of two values: 1 MiB is far beyond. */
export const MAX_MESSAGE_BYTES = 1 << 20;

/** What a Postgres server sends first: to an SSLRequest 'S' or 'N' (an old one: 'E'); to a StartupMessage an
 * authentication request 'R', an ErrorResponse 'E', or NegotiateProtocolVersion 'v'. */
const FIRST_BYTES = new Set([0x53, 0x4e, 0x45, 0x52, 0x76]);

export interface WireWatch {
  /** The TCP connection was established: a timeout after this is the server's, not the network's. */
  readonly tcpConnected: boolean;
  /** Why the connection was cut because the server does not speak the protocol (undefined: it was not). */
  readonly problem: string | undefined;
}

/** pg's Connection as far as the guard needs it (not in @types/pg: internals of pg 8). */
interface PgConnectionInternals {
  stream: Duplex;
  attachListeners(stream: Duplex): void;
}

const watches = new WeakMap<pg.Client, WireWatch>();

/** The watch of a client guarded by guardWire. */
export function wireOf(client: pg.Client): WireWatch | undefined {
  return watches.get(client);
}

/** Installs the guard on a client that has not connected yet. Throws if pg's internals are not as expected. */
export function guardWire(client: pg.Client): WireWatch {
  const conn = (client as unknown as { connection: PgConnectionInternals }).connection;
  if (typeof conn?.attachListeners !== 'function' || !conn.stream) {
    throw new Error('pg\'s Connection has no attachListeners/stream (a pg upgrade?): the wire guard cannot be installed');
  }
  const w = { tcpConnected: false, problem: undefined as string | undefined };
  watches.set(client, w);
  const raw = conn.stream;
  const cut = (stream: Duplex, problem: string) => {
    w.problem ??= problem;
    raw.destroy();
    if (stream !== raw) stream.destroy();
  };
  raw.once('connect', () => { w.tcpConnected = true; });
  const first = (b: Buffer) => {
    raw.off('data', first);
    const byte = b[0];
    if (byte !== undefined && !FIRST_BYTES.has(byte)) cut(raw, describeFirstBytes(b));
  };
  raw.prependListener('data', first);

  // pg's parser reads what attachListeners gives it ('data' and 'end'): give it a relay fed through the guard.
  const attach = conn.attachListeners.bind(conn);
  conn.attachListeners = (stream: Duplex) => {
    const relay = new EventEmitter();
    const frames = new FrameCheck(MAX_MESSAGE_BYTES);
    stream.on('data', (b: Buffer) => {
      if (w.problem !== undefined) return;
      const tooLong = frames.feed(b);
      if (tooLong !== undefined) {
        return cut(stream, `it sent a message header announcing ${tooLong} bytes (the operator accepts at most ${MAX_MESSAGE_BYTES})`);
      }
      try {
        relay.emit('data', b);
      } catch (e) {
        cut(stream, `its reply could not be parsed as the Postgres protocol (${errorText(e)})`);
      }
    });
    stream.on('end', () => relay.emit('end'));
    attach(relay as unknown as Duplex);
  };
  return w;
}

function describeFirstBytes(b: Buffer): string {
  const text = b.subarray(0, 8).toString('latin1');
  const byte = b[0] as number;
  const shown = byte >= 0x20 && byte < 0x7f ? `'${String.fromCharCode(byte)}' (0x${byte.toString(16)})` : `0x${byte.toString(16).padStart(2, '0')}`;
  const like = text.startsWith('HTTP/') ? ', like an HTTP server' : text.startsWith('SSH-') ? ', like an SSH server' : '';
  return `its first byte was ${shown}${like}`;
}

/**
 * Follows message boundaries (a type byte, then a length that counts itself) across chunks, reading only
 * headers. feed() answers the announced length of the first message over `max` (or under 4: impossible).
 */
export class FrameCheck {
  readonly #max: number;
  /** Bytes of the current message body still to come. */
  #skip = 0;
  readonly #head = Buffer.alloc(5);
  #headLen = 0;

  constructor(max: number) {
    this.#max = max;
  }

  feed(b: Buffer): number | undefined {
    let i = 0;
    while (i < b.length) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, b.length - i);
        this.#skip -= n;
        i += n;
        continue;
      }
      let len: number;
      if (this.#headLen === 0 && i + 5 <= b.length) {
        len = b.readUInt32BE(i + 1);
        i += 5;
      } else {
        const n = Math.min(5 - this.#headLen, b.length - i);
        b.copy(this.#head, this.#headLen, i, i + n);
        this.#headLen += n;
        i += n;
        if (this.#headLen < 5) return undefined;
        this.#headLen = 0;
        len = this.#head.readUInt32BE(1);
      }
      if (len < 4 || len > this.#max) return len;
      this.#skip = len - 4;
    }
    return undefined;
  }
}
