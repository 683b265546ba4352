// Per-connection write coalescing for MQTT, as relay/ws/coalesce.ts does for
// WebSocket frames: a session's packets of one event-loop tick are written
// at the tick's end in one write (one TCP write, or one binary WebSocket
// message carrying several MQTT packets, which MQTT over WebSocket allows).
// Per-packet socket writes are what limits fan-out. Bounded: pendingBytes
// counts toward the session's send-queue bound.

export interface Outgoing {
  pending: Buffer[];
  pendingBytes: number;
  readonly closed: boolean;
  readonly transport: { write(bytes: Buffer): void };
}

export class Outbox {
  private queued: Outgoing[] = [];
  private scheduled = false;

  enqueue(o: Outgoing, bytes: Buffer): void {
    if (o.pending.length === 0) {
      this.queued.push(o);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(this.flushAll);
      }
    }
    o.pending.push(bytes);
    o.pendingBytes += bytes.length;
  }

  /** Write `o`'s packets now (before it closes). */
  flush(o: Outgoing): void {
    if (o.pending.length === 0) return;
    const bytes = o.pending.length === 1 ? o.pending[0]! : Buffer.concat(o.pending, o.pendingBytes);
    o.pending = [];
    o.pendingBytes = 0;
    o.transport.write(bytes);
  }

  private readonly flushAll = (): void => {
    this.scheduled = false;
    const queued = this.queued;
    this.queued = [];
    for (const o of queued) if (!o.closed) this.flush(o);
  };
}
