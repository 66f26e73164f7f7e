// Both sides of the bench's simulators (libcluster-sim.ts, kube-sim.ts): each runs its clients in a child
// process of its own, so that their CPU is counted apart from the bench's, and answers one request at a time.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface SimChild<Msg> {
  /** Sends a message; resolves with the child's reply, rejects with its `error` or if it exits. */
  ask<T>(msg: Msg): Promise<T>;
  /** Sends `{cmd: 'stop'}` and waits for the child to exit, killing it after `killAfterMs`. */
  stop(killAfterMs: number): Promise<void>;
}

/** Forks `moduleUrl --child` and asks it `start`; a failed start kills the child and throws. */
export async function forkSim<Msg>(moduleUrl: string, name: string, start: Msg): Promise<SimChild<Msg>> {
  const child: ChildProcess = fork(fileURLToPath(moduleUrl), ['--child'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const replies: ((m: unknown) => void)[] = [];
  let exited = false;
  const gone = new Promise<void>((res) => child.on('exit', () => { exited = true; res(); }));
  child.on('message', (m) => replies.shift()?.(m));
  const ask = <T>(msg: Msg): Promise<T> => new Promise<T>((resolve, reject) => {
    if (exited) { reject(new Error(`the ${name} exited`)); return; }
    replies.push((m) => {
      const r = m as { error?: string };
      if (r.error) reject(new Error(r.error)); else resolve(m as T);
    });
    child.send(msg as object);
    void gone.then(() => reject(new Error(`the ${name} exited`)));
  });
  try {
    await ask<{ ok: true }>(start);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  return {
    ask,
    stop: async (killAfterMs) => {
      if (exited) return;
      child.send({ cmd: 'stop' });
      const t = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
      await gone;
      clearTimeout(t);
    },
  };
}

/**
 * The child side: `stats` answers stats() with the process's CPU seconds, `stop` runs stop() and exits, any
 * other message starts the simulator (start replies `{ok: true}` or `{error}`). The child exits with its parent.
 */
export function serveSim<Start, Stats extends { cpuSeconds: number }>(sim: {
  start(msg: Start, reply: (m: { ok: true } | { error: string }) => void): void;
  stats(): Omit<Stats, 'cpuSeconds'>;
  stop(): void | Promise<unknown>;
}): void {
  const reply = (m: unknown) => process.send?.(m);
  process.on('disconnect', () => process.exit(0));
  process.on('message', (raw) => {
    const cmd = (raw as { cmd: string }).cmd;
    if (cmd === 'stats') {
      const u = process.cpuUsage();
      reply({ ...sim.stats(), cpuSeconds: (u.user + u.system) / 1e6 });
    } else if (cmd === 'stop') {
      void Promise.resolve(sim.stop()).finally(() => process.exit(0));
    } else {
      sim.start(raw as Start, reply);
    }
  });
}
