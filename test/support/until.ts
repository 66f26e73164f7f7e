// Waiting for a condition inside one process (unit tests): yields to the event loop between checks, so
// promises and I/O callbacks run; never a fixed sleep. For polling a server, see waitFor in ./poll.ts.
import { setImmediate as yieldToLoop } from 'node:timers/promises';

export async function until(cond: () => boolean, what: string, maxTurns = 10_000): Promise<void> {
  for (let i = 0; i < maxTurns; i++) {
    if (cond()) return;
    await yieldToLoop();
  }
  throw new Error(`never happened: ${what}`);
}
