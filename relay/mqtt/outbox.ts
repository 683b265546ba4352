// Per-connection write coalescing for MQTT, with the WebSocket doors' tick
// mechanism (relay/ws/coalesce.ts): a session's packets of one event-loop
// tick are written at the tick's end in one write (one TCP write, or one
// binary WebSocket message carrying several MQTT packets, which MQTT over
// WebSocket allows). Per-packet socket writes are what limits fan-out.
// Bounded: pendingBytes counts toward the session's send-queue bound.
import { TickCoalescer, type PendingQueue } from '../ws/coalesce.ts';

export interface Outgoing extends PendingQueue {
  readonly closed: boolean;
  readonly transport: { write(bytes: Buffer): void };
}

/** Write `o`'s packets now (at the tick's end, or before it closes). */
export function flushOutgoing(o: Outgoing): void {
  if (o.pending.length === 0) return;
  const bytes = o.pending.length === 1 ? o.pending[0]! : Buffer.concat(o.pending, o.pendingBytes);
  o.pending = [];
  o.pendingBytes = 0;
  if (!o.closed) o.transport.write(bytes);
}

export class Outbox extends TickCoalescer<Outgoing> {
  constructor() {
    super(flushOutgoing);
  }

  flush(o: Outgoing): void {
    flushOutgoing(o);
  }
}
