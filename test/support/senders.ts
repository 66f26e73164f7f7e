// Who sends on a channel: a plain LISTEN client (as any libcluster_postgres node is) records every
// notification with the backend PID that sent it (NOTIFY carries it), and names each PID by its session's
// application_name in pg_stat_activity, read while the sender is still connected (the operator names its
// sessions pgcluster-operator/<listener|sender>/<identity>).
import pg from 'pg';
import { errorMessage } from '../../src/errors.ts';
import { quoteIdent } from '../../src/postgres/connection.ts';

export interface Heard {
  /** performance.now() when it arrived. */
  at: number;
  pid: number;
  payload: string;
}

export interface SenderLog {
  heard: Heard[];
  /** application_name of each sending PID (looked up when the PID was first heard). */
  names: Map<number, string>;
  /** Lookups that failed (a sender gone before it was named): a test should fail on any. */
  errors: string[];
  stop(): Promise<void>;
}

export async function recordSenders(url: string, channel: string): Promise<SenderLog> {
  const listener = new pg.Client({ connectionString: url, application_name: 'test/listen' });
  const lookup = new pg.Client({ connectionString: url, application_name: 'test/lookup' });
  await Promise.all([listener.connect(), lookup.connect()]);
  const log: SenderLog = {
    heard: [], names: new Map(), errors: [],
    stop: async () => { await Promise.all([listener.end(), lookup.end()]); },
  };
  listener.on('notification', (m) => {
    log.heard.push({ at: performance.now(), pid: m.processId, payload: m.payload ?? '' });
    if (log.names.has(m.processId)) return;
    log.names.set(m.processId, '');
    lookup.query<{ application_name: string }>('SELECT application_name FROM pg_stat_activity WHERE pid = $1', [m.processId]).then((r) => {
      const name = r.rows[0]?.application_name;
      if (name) log.names.set(m.processId, name);
      else log.errors.push(`PID ${m.processId} was gone before pg_stat_activity named it`);
    }, (err: unknown) => { log.errors.push(`naming PID ${m.processId}: ${errorMessage(err)}`); });
  });
  await listener.query(`LISTEN ${quoteIdent(channel)}`);
  return log;
}

/** The identities in order of sending, each run of one sender collapsed to one entry: [a, b] is a clean handover, [a, b, a] an overlap. */
export function senderRuns(log: SenderLog, identityOf: (applicationName: string) => string): { identity: string; from: number; to: number; count: number }[] {
  const runs: { identity: string; from: number; to: number; count: number }[] = [];
  for (const h of log.heard) {
    const identity = identityOf(log.names.get(h.pid) ?? `pid ${h.pid}`);
    const last = runs.at(-1);
    if (last?.identity === identity) { last.to = h.at; last.count++; } else runs.push({ identity, from: h.at, to: h.at, count: 1 });
  }
  return runs;
}
