// What npm test (scripts/test.ts) checks once the tests have run, besides their exit code: the waits that
// nearly timed out, and the operator logs the tests wrote, for secrets. (A stack server that died while the
// tests ran: Stack.dead(), with proc.ts's deathReport.)
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface SlowWait { message: string; tookMs: number; timeoutMs: number; file: string }

/** The waits that passed using more than half their time (test/support/poll.ts): the flakes of a busier day. */
export function readSlowWaits(file: string): SlowWait[] {
  const lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
  return lines.map((l) => JSON.parse(l) as SlowWait);
}

/**
 * Every operator log the tests wrote, read for secrets: the stack's database password (every test's Secret
 * holds it), and any URL that carries a password. Answers where (file:line), never the line itself.
 */
export function sweepLogs(dir: string, databaseUrl: string): { files: number; found: string[] } {
  if (!existsSync(dir)) return { files: 0, found: [] };
  const password = databaseUrl ? decodeURIComponent(new URL(databaseUrl).password) : '';
  const urlWithPassword = /[a-z][a-z0-9+.-]*:\/\/[^\s/@:"]+:[^\s/@"]+@/i;
  const files = readdirSync(dir).filter((f) => f.endsWith('.log'));
  const found: string[] = [];
  for (const f of files) {
    readFileSync(join(dir, f), 'utf8').split('\n').forEach((line, i) => {
      if ((password && line.includes(password)) || urlWithPassword.test(line)) found.push(`${f}:${i + 1}`);
    });
  }
  return { files: files.length, found: found.slice(0, 10) };
}
