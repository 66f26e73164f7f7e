// Errors shared across the operator.

/** Anything thrown, as text for a log line or a message. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * A problem only the user can fix (an output name taken by an object we do not own, ...): the error policy
 * turns it into a condition with `reason` and an Event, instead of retrying it with backoff forever.
 */
export class UserError extends Error {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.name = 'UserError';
    this.reason = reason;
  }
}
