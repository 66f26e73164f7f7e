// The Postgres notification queue (docs/monitoring.md, runbook PgClusterNotifyQueueFilling): shared by every LISTEN and
// NOTIFY on a server; it only empties as far as the slowest listener has read, so one session that LISTENs
// and then stays in a transaction (or stops reading) makes it grow until every NOTIFY on the server fails.

/** Above this fill the operator warns (an Event on each PgCluster of that server)... */
export const QUEUE_FILLING = 0.5;
/** ...and says it is over once the fill is back below this (a gap, so that a fill hovering at 50 % is one warning). */
export const QUEUE_DRAINED = 0.25;

/** Whether the queue counts as filling now, given whether it did and the latest fill (0 to 1). */
export function queueFilling(was: boolean, usage: number): boolean {
  return was ? usage >= QUEUE_DRAINED : usage > QUEUE_FILLING;
}
