// Errors shared across the operator.

/** Anything thrown, as text for a log line or a message. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
