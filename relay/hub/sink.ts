// What the dispatcher hands a change-stream sink (relay/sinks/): every
// routed event with its place in the stream. Defined here, with the
// dispatcher that produces it, so that hub/ does not import sinks/.
import type { Lsn } from '../replication/lsn.ts';

/** An event as the WebSocket protocol sends it; `channel` absent for table-wide events (truncate). */
export interface SinkEventBody {
  type: string;
  table: string;
  op: string;
  position: string;
  commit_time: string;
  channel?: string | undefined;
}

export interface SinkEvent {
  commitLsn: Lsn;
  /** The change's index in its transaction (from 1). */
  index: number;
  /** Which of the change's messages this is (0, or 1 for the old channel of a moved row). */
  part: number;
  commitTimeMs: number;
  /** The transaction's id (an edge relay tells from it which events a snapshot read includes). */
  xid?: number;
  event: SinkEventBody;
  /** The event serialised, exactly as the WebSocket protocol sends it. */
  frame: string;
}

/**
 * A logical message a door wrote into the WAL (an MQTT retain=0 publish, a
 * Supabase broadcast or presence diff) and messageRoute placed on a channel:
 * carried on the change stream so that edge relays route it as the slot
 * relay does (docs/streams.md#logical-messages).
 */
export interface SinkMessage {
  commitLsn: Lsn;
  /** Its index in the transaction, counted with the changes (its position's). */
  index: number;
  commitTimeMs: number;
  xid: number;
  /** pg_logical_emit_message's prefix (replication/messages.ts, mqtt/messages.ts, supabase/broadcast.ts). */
  prefix: string;
  channel: string;
  /** The table name subscriptions filter it by (messageRoute's). */
  table: string;
  position: string;
  commit_time: string;
  /** The message's content, as the door wrote it. */
  content: Buffer;
}

export interface DispatchSink {
  /** Does the sink want the change with this order key (replication/position.ts orderKey)? */
  wants(key: string): boolean;
  event(e: SinkEvent): void;
  /** A routed logical message, in stream order with the events (only the JetStream sink takes them). */
  message?(m: SinkMessage): void;
}
