// Members announcing themselves the libcluster_postgres way (LibclusterPostgres.Strategy): each member holds
// its own two connections — a Postgrex connection that sends `NOTIFY <channel>, '<node>'` every heartbeat
// interval (its own transaction), and a Postgrex.Notifications connection LISTENing on the channel and
// receiving every member's heartbeat. Plain `pg` clients doing exactly that, in a child process so that
// their work is not the bench's; the parent talks to it over IPC (startSim below).
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

export interface SimMember {
  name: string;
  channel: string;
}

export interface SimStats {
  connections: number;
  sent: number;
  received: number;
  errors: number;
  /** user+system CPU seconds of the simulator process. */
  cpuSeconds: number;
}

interface StartMsg { cmd: 'start'; url: string; members: SimMember[]; intervalMs: number }
type Msg = StartMsg | { cmd: 'stats' } | { cmd: 'stop' };

export interface Sim {
  stats(): Promise<SimStats>;
  stop(): Promise<void>;
}

/** Starts the simulator; resolves once every member is connected, LISTENing and heartbeating. */
export async function startSim(url: string, members: SimMember[], intervalMs: number): Promise<Sim> {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--child'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const replies: ((m: unknown) => void)[] = [];
  let exited = false;
  const gone = new Promise<void>((res) => child.on('exit', () => { exited = true; res(); }));
  child.on('message', (m) => replies.shift()?.(m));
  const ask = <T>(msg: Msg): Promise<T> => new Promise<T>((resolve, reject) => {
    if (exited) { reject(new Error('the libcluster simulator exited')); return; }
    replies.push((m) => {
      const r = m as { error?: string };
      if (r.error) reject(new Error(r.error)); else resolve(m as T);
    });
    child.send(msg);
    void gone.then(() => reject(new Error('the libcluster simulator exited')));
  });
  try {
    await ask<{ ok: true }>({ cmd: 'start', url, members, intervalMs });
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  return {
    stats: () => ask<SimStats>({ cmd: 'stats' }),
    stop: async () => {
      if (!exited) {
        child.send({ cmd: 'stop' } satisfies Msg);
        const t = setTimeout(() => child.kill('SIGKILL'), 30_000);
        await gone;
        clearTimeout(t);
      }
    },
  };
}

// ---- the child process ----

async function child(): Promise<void> {
  const clients: pg.Client[] = [];
  const timers: NodeJS.Timeout[] = [];
  const stats = { sent: 0, received: 0, errors: 0 };
  let stopping = false;
  const reply = (m: unknown) => process.send?.(m);
  process.on('disconnect', () => process.exit(0));

  const connect = async (url: string) => {
    const c = new pg.Client({ connectionString: url });
    c.on('error', () => { stats.errors++; });
    await c.connect();
    clients.push(c);
    return c;
  };

  process.on('message', (raw) => {
    const msg = raw as Msg;
    if (msg.cmd === 'stats') {
      const u = process.cpuUsage();
      reply({ connections: clients.length, ...stats, cpuSeconds: (u.user + u.system) / 1e6 } satisfies SimStats);
      return;
    }
    if (msg.cmd === 'stop') {
      stopping = true;
      for (const t of timers) clearTimeout(t);
      void Promise.allSettled(clients.map((c) => c.end())).then(() => process.exit(0));
      return;
    }
    void (async () => {
      try {
        const { url, members, intervalMs } = msg;
        const senders: pg.Client[] = new Array(members.length);
        // Connect like a fleet starting up: a bounded number of handshakes (SCRAM) at a time.
        let next = 0;
        await Promise.all(Array.from({ length: 16 }, async () => {
          while (next < members.length) {
            const i = next++;
            const m = members[i]!;
            const listener = await connect(url);
            listener.on('notification', () => { stats.received++; });
            await listener.query(`LISTEN "${m.channel}"`);
            senders[i] = await connect(url);
          }
        }));
        // Heartbeats: each member its own loop, spread evenly over the interval (nodes start at different
        // times). As in the strategy's GenServer: `Postgrex.query(conn, "NOTIFY ...")` blocks until the
        // server answers, then the next heartbeat is scheduled `interval` later; each NOTIFY its own transaction.
        members.forEach((m, i) => {
          const beat = () => {
            senders[i]!.query(`NOTIFY ${m.channel}, '${m.name}'`).then(() => { stats.sent++; }, () => { stats.errors++; }).finally(() => {
              if (!stopping) timers.push(setTimeout(beat, intervalMs));
            });
          };
          timers.push(setTimeout(beat, (i * intervalMs) / members.length));
        });
        reply({ ok: true });
      } catch (e) {
        reply({ error: `libcluster simulator: ${(e as Error).message}` });
      }
    })();
  });
}

if (process.argv.includes('--child')) await child();
