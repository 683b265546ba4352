// The logical messages walcast writes into its own WAL stream
// (pg_logical_emit_message) and reads back from the slot. The prefixes are
// part of the stream's contract: whoever writes a message and whoever reads
// it import the prefix from here.

/**
 * Transactional, written first in each TTL batch (jobs/ttl.ts): the
 * dispatcher drops the delete events of a transaction that carries it, so
 * expiry never reaches subscribers as deletes.
 */
export const PRUNE_MESSAGE_PREFIX = 'walcast.prune';

/**
 * Non-transactional, written by the slot watchdog (watchdog.ts): no event; the
 * stream confirms its LSN once nothing is pending, so an idle publication
 * still moves the slot.
 */
export const HEARTBEAT_PREFIX = 'walcast.heartbeat';
