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

export interface DispatchSink {
  /** Does the sink want the change with this order key (replication/position.ts orderKey)? */
  wants(key: string): boolean;
  event(e: SinkEvent): void;
}
