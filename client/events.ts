// What the SDK hands to applications: row events typed per table, the
// notices of a subscription, and the connection's status.
import type { EventMessage, TruncateMessage } from './protocol.ts';
import type { ConnectionError, RelayError } from './errors.ts';

/** Row types by table name, e.g. `{ chat_messages: { id: string; body: string } }`. */
export type TableRows = Record<string, Record<string, unknown>>;

/** Any table, untyped rows: the default when no row types are given. */
export type AnyRows = Record<string, Record<string, unknown>>;

/**
 * One event; with `TableRows` supplied, a union over the tables, so that
 * checking `event.table` narrows `event.row`. A `truncate` (op) has no row:
 * every row of its table is gone (check `event.op !== 'truncate'` before
 * reading `row`).
 */
export type TableEvent<T extends TableRows = AnyRows> = {
  [K in keyof T & string]: (EventMessage<T[K]> & { table: K }) | (TruncateMessage & { table: K });
}[keyof T & string];

export interface SubscribedNotice {
  channel: string;
  /** The relay's position when the subscription started. */
  position: string;
  /** Set when the subscribe carried `since`: whether every missed event follows. */
  recovered?: boolean;
  /** Set when a snapshot follows: how many `op: "snapshot"` events. */
  snapshot?: number;
}

export interface ResyncNotice {
  channel: string;
  /** The position the client tried to resume from. */
  since: string;
  /** Where the stream picks up again. */
  position: string;
  /** Whether a fresh snapshot follows (the subscription asked for one). */
  snapshot: boolean;
}

export interface SyncedNotice {
  channel: string;
  /** Snapshot rows received (0 without a snapshot). */
  rows: number;
}

/** An event the relay did not send: it was over WALCAST_MAX_EVENT_BYTES (docs/protocol.md "Large events"). */
export interface SkippedNotice {
  channel: string;
  table: string;
  /** The event's position; the subscription resumes after it. */
  position: string;
  /** The event's size in bytes. */
  bytes: number;
  error: RelayError;
}

/** What a Subscription emits besides row events. */
export interface SubscriptionNotices {
  /** The relay confirmed the subscription (first time and after every reconnect). */
  subscribed: SubscribedNotice;
  /** The snapshot, if any, is complete: the state is current from here on. */
  synced: SyncedNotice;
  /**
   * Events were missed and cannot be replayed (`recovered: false`): state
   * built from earlier events is stale. Refetch it, or let the fresh
   * snapshot that follows replace it.
   */
  resync: ResyncNotice;
  /** An event was too large to send: read its row from the table if it matters. The stream goes on. */
  skipped: SkippedNotice;
  /** The relay refused the subscribe. Not retryable: the subscription has ended. */
  error: RelayError;
}

export type Status = 'connecting' | 'open' | 'reconnecting' | 'closed';

export type StatusEvent =
  | { status: 'connecting'; attempt: number }
  | { status: 'open' }
  | { status: 'reconnecting'; attempt: number; delayMs: number; error: ConnectionError }
  | { status: 'closed' };

export interface ClientNotices {
  status: StatusEvent;
  /** An error not tied to a subscription (e.g. a connection failure). */
  error: ConnectionError | RelayError;
}
