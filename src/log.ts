// The one logger: JSON lines on stdout (pino). Never log a Postgres URL: redact what might carry one.
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
