// A NOTIFY flood (anyone who can connect to the database can NOTIFY on a channel) and a plain LISTEN client
// timing the heartbeats it hears meanwhile: for the flood e2e test and the benchmark's flood scenario.
import pg from 'pg';

export interface FloodResult {
  /** Notifications committed. */
  sent: number;
  seconds: number;
  /** sent / seconds. */
  perSecond: number;
}

export interface Flood {
  /** Notifications committed so far. */
  readonly sent: number;
  /** Stops after the statements in flight; answers what was sent. */
  stop(): Promise<FloodResult>;
}

/**
 * Valid node names NOTIFYed on `channel` by `connections` clients, `batch` per transaction (one
 * `SELECT pg_notify(...) FROM generate_series` statement each), at `perSecond` in all (undefined: as fast as
 * they commit; here that is several hundred thousand a second). Every name is new (`flood<N>@flood.invalid`),
 * or with `newPerSecond` only that many a second are, the rest repeating `batch` others (Postgres delivers
 * identical notifications of one transaction once: the repeats differ within a batch): the volume of a flood
 * with a steady stream of new names (each of which used to cost a round of output writes).
 */
export async function startFlood(url: string, channel: string, o: { connections?: number; batch?: number; prefix?: string; perSecond?: number; newPerSecond?: number } = {}): Promise<Flood> {
  const batch = o.batch ?? 2000;
  const pace = o.perSecond;
  const freshPerBatch = o.newPerSecond === undefined || pace === undefined ? batch : Math.max(1, Math.round((o.newPerSecond * batch) / pace));
  let fresh = 0;
  const prefix = o.prefix ?? 'flood';
  const clients = Array.from({ length: o.connections ?? 2 }, () => new pg.Client({ connectionString: url, application_name: 'pgco-test/flood' }));
  for (const c of clients) c.on('error', () => {});
  await Promise.all(clients.map((c) => c.connect()));
  let next = 0;
  let sent = 0;
  let stopping = false;
  const t0 = performance.now();
  const loops = clients.map(async (c) => {
    while (!stopping) {
      if (pace !== undefined) {
        const ahead = (next + batch) / pace * 1000 - (performance.now() - t0);
        if (ahead > 0) await new Promise((r) => setTimeout(r, ahead));
        if (stopping) break;
      }
      const base = fresh;
      next += batch;
      fresh += freshPerBatch;
      await c.query(`SELECT count(pg_notify($1, CASE WHEN g <= $5 THEN $2 || (g + $3)::text ELSE $2 || 'r' || g::text END || '@flood.invalid'))
        FROM generate_series(1, $4::int) AS g`, [channel, prefix, base, batch, freshPerBatch]);
      sent += batch;
    }
  });
  const done = Promise.allSettled(loops);
  return {
    get sent() { return sent; },
    stop: async () => {
      stopping = true;
      await done;
      const seconds = (performance.now() - t0) / 1000;
      await Promise.allSettled(clients.map((c) => c.end()));
      return { sent, seconds, perSecond: sent / seconds };
    },
  };
}

export interface HeartbeatEar {
  /** Starts a new window: hearings before it are forgotten. */
  reset(): void;
  /** Per name, the longest time (ms) between two hearings in the window, counting from reset() to now at both
   * ends (a name never heard has the whole window). */
  maxGaps(): Map<string, number>;
  /** Every gap (ms) of every name in the window, for percentiles. */
  gaps(): number[];
  close(): Promise<void>;
}

/** A plain pg client LISTENing on `channel`, as a libcluster_postgres node would, timing when it hears `names`. */
export async function heartbeatEar(url: string, channel: string, names: readonly string[]): Promise<HeartbeatEar> {
  const client = new pg.Client({ connectionString: url, application_name: 'pgco-test/ear' });
  client.on('error', () => {});
  await client.connect();
  const heard = new Map<string, number[]>(names.map((n) => [n, []]));
  let windowStart = performance.now();
  client.on('notification', (m) => { heard.get(m.payload ?? '')?.push(performance.now()); });
  await client.query(`LISTEN "${channel.replace(/"/g, '""')}"`);
  const gapsOf = (times: number[]) => {
    const points = [windowStart, ...times, performance.now()];
    return points.slice(1).map((t, i) => t - (points[i] as number));
  };
  return {
    reset: () => {
      windowStart = performance.now();
      for (const t of heard.values()) t.length = 0;
    },
    maxGaps: () => new Map([...heard].map(([n, t]) => [n, Math.max(...gapsOf(t))])),
    // Inner gaps only: the window's ends are not heartbeats.
    gaps: () => [...heard.values()].flatMap((t) => t.slice(1).map((x, i) => x - (t[i] as number))),
    close: async () => { await client.end().catch(() => {}); },
  };
}
