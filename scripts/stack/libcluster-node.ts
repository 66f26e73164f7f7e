// A stand-in for an Elixir node running libcluster_postgres (no Erlang runtime here): it does exactly what
// that strategy does on the wire — LISTEN on the channel with one connection, NOTIFY its bare node name on
// another every interval — and records every payload it hears.
import pg from 'pg';

export interface LibclusterNode {
  /** Payloads heard on the channel (including its own). */
  heard: Set<string>;
  onHeard(cb: (payload: string) => void): void;
  stop(): Promise<void>;
}

export async function startLibclusterNode(url: string, channel: string, name: string, intervalMs = 5000): Promise<LibclusterNode> {
  const listener = new pg.Client({ connectionString: url });
  const sender = new pg.Client({ connectionString: url });
  // A server that goes away must not crash the test or demo that runs this node.
  listener.on('error', () => {});
  sender.on('error', () => {});
  await listener.connect();
  await sender.connect();
  const heard = new Set<string>();
  const callbacks: ((payload: string) => void)[] = [];
  listener.on('notification', (m) => {
    if (m.channel !== channel || m.payload === undefined) return;
    heard.add(m.payload);
    for (const cb of callbacks) cb(m.payload);
  });
  await listener.query(`LISTEN "${channel}"`);
  const beat = (): void => void sender.query('SELECT pg_notify($1, $2)', [channel, name]).catch(() => {});
  beat();
  const timer = setInterval(beat, intervalMs);
  let stopped: Promise<void> | undefined;
  return {
    heard,
    onHeard: (cb) => void callbacks.push(cb),
    // Idempotent: a test may stop it and then stop everything it started.
    stop: () => (stopped ??= (async () => {
      clearInterval(timer);
      await Promise.allSettled([listener.end(), sender.end()]);
    })()),
  };
}
