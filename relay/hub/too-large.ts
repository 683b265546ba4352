// The largest event walcast sends. PostgreSQL allows a field of 1 GB, which
// no client should receive in one WebSocket message and no relay should hold
// per subscriber, so events are bounded by WALCAST_MAX_EVENT_BYTES (16 MiB by
// default). An event over it is not sent: its subscribers get, in its place
// and at its position, an `event_too_large` error naming the table, channel
// and position, so a row is never skipped silently, the client's resume
// position moves past it (no reconnect loop), and the rows after it follow.
import type { ErrorMessage, EventMessage } from '../../client/protocol.ts';

/** The frame to send for `event`: its JSON, or the notice when that is over `maxBytes`. */
export function eventFrame(event: EventMessage, maxBytes: number, onTooLarge: () => void): string {
  const json = JSON.stringify(event);
  // A UTF-16 unit is at most 3 UTF-8 bytes: most frames need no byte count.
  if (json.length * 3 <= maxBytes) return json;
  const bytes = Buffer.byteLength(json);
  if (bytes <= maxBytes) return json;
  onTooLarge();
  return JSON.stringify(tooLargeNotice(event, bytes, maxBytes));
}

export function tooLargeNotice(event: EventMessage, bytes: number, maxBytes: number): ErrorMessage {
  return {
    type: 'error',
    code: 'event_too_large',
    message:
      `the ${event.op} of ${event.table} at position ${event.position} on channel ${event.channel} is ${bytes} bytes, ` +
      `over WALCAST_MAX_EVENT_BYTES (${maxBytes}): it was not sent. Read the row from the table, or raise WALCAST_MAX_EVENT_BYTES`,
    channel: event.channel,
    table: event.table,
    position: event.position,
    bytes,
  };
}
