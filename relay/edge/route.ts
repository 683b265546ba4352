// A stream event into the hub (hub/deliver.ts), exactly as the slot relay's
// dispatcher hands it over: the same frame bytes, position and transaction,
// kept in the same recovery window. The frame is decoded to a string only
// when the window keeps it.
import { deliver, deliverMessage, deliverTruncate, keeps, type Hub } from '../hub/deliver.ts';
import type { DispatcherCounters } from '../hub/dispatcher.ts';
import type { StreamEvent } from './decode.ts';

export function routeStreamEvent(hub: Hub & { counters: DispatcherCounters }, e: StreamEvent): void {
  // A logical message (docs/streams.md#logical-messages): to the doors that take messages, as the dispatcher routes it.
  if (e.message) {
    const { table, position, xid, timeMs } = e;
    return deliverMessage(hub, { channel: e.channel!, table, position, xid, timeMs, content: e.bytes });
  }
  hub.counters.rows++;
  const frame = keeps(hub) || e.channel === undefined ? e.bytes.toString() : '';
  const { table, position, xid, timeMs } = e;
  if (e.channel === undefined) return deliverTruncate(hub, { table, position, xid, timeMs, frame });
  deliver(hub, { channel: e.channel, table, position, xid, timeMs, frame, bytes: e.bytes });
}
