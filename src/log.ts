// The one logger: JSON lines on stdout (pino). Never log a Postgres URL: redact what might carry one.
import { errorText } from './core/redact.ts';
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({
    level,
    base: { component: 'pgcluster-operator' },
    redact: { paths: ['url', '*.url', 'databaseUrl', '*.password', 'connectionString', '*.connectionString'], censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}

/**
 * A thrown exception or rejected promise that nothing handled is a bug: the process is in a state nobody
 * planned for. Log it (its message redacted: it may quote a Postgres URL or address, and an error object
 * would print unredacted) and exit non-zero, so that the Deployment restarts a clean process.
 */
export function installCrashHandlers(log: Logger, exit: (code: number) => void = (c) => process.exit(c)): void {
  const die = (what: string, err: unknown) => {
    log.fatal({ error: errorText(err) }, `${what}: exiting`);
    log.flush?.();
    exit(70); // EX_SOFTWARE
  };
  process.on('uncaughtException', (err) => die('uncaught exception', err));
  process.on('unhandledRejection', (reason) => die('unhandled promise rejection', reason));
}
