// A stand-in for an Elixir node running libcluster_postgres (no Erlang runtime here): it does exactly what
// that strategy does on the wire — LISTEN on the channel with one connection; on another, `NOTIFY <channel>,
// '<node>'` (its own transaction), the next heartbeat `interval` after the server answered — and records
// every payload it hears. The one stand-in: the tests, the demo and the benchmark's fleet simulator use it.
import pg from 'pg';

export interface LibclusterNode {
  /** Payloads heard on the channel (including its own); empty with recordHeard: false. */
  heard: Set<string>;
  onHeard(cb: (payload: string) => void): void;
  stop(): Promise<void>;
}

export interface LibclusterNodeOptions {
  /** When the first heartbeat goes (a fleet spreads its members over the interval). Default 0. */
  firstBeatAfterMs?: number;
  /** Keep the set of heard payloads (default true; a fleet of 1,000 would hold a million). */
  recordHeard?: boolean;
  onSent?(): void;
  onError?(err: unknown): void;
}

/** NOTIFY takes an identifier and a literal, not parameters: quoted as the strategy's SQL would be. */
const literal = (s: string) => `'${s.replace(/'/g, "''")}'`;

export async function startLibclusterNode(url: string, channel: string, name: string, intervalMs = 5000, o: LibclusterNodeOptions = {}): Promise<LibclusterNode> {
  const onError = (err: unknown) => o.onError?.(err);
  const listener = new pg.Client({ connectionString: url });
  const sender = new pg.Client({ connectionString: url });
  // A server that goes away must not crash the test or demo that runs this node.
  listener.on('error', onError);
  sender.on('error', onError);
  await listener.connect();
  await sender.connect();
  const heard = new Set<string>();
  const callbacks: ((payload: string) => void)[] = [];
  listener.on('notification', (m) => {
    if (m.channel !== channel || m.payload === undefined) return;
    if (o.recordHeard ?? true) heard.add(m.payload);
    for (const cb of callbacks) cb(m.payload);
  });
  await listener.query(`LISTEN "${channel.replace(/"/g, '""')}"`);
  let stopped: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  const beat = (): void => {
    sender.query(`NOTIFY "${channel.replace(/"/g, '""')}", ${literal(name)}`).then(() => o.onSent?.(), onError).finally(() => {
      if (!stopped) timer = setTimeout(beat, intervalMs);
    });
  };
  timer = setTimeout(beat, o.firstBeatAfterMs ?? 0);
  return {
    heard,
    onHeard: (cb) => void callbacks.push(cb),
    // Idempotent: a test may stop it and then stop everything it started.
    stop: () => (stopped ??= (async () => {
      clearTimeout(timer);
      await Promise.allSettled([listener.end(), sender.end()]);
    })()),
  };
}
