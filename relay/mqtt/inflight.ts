// The QoS 1 deliveries of one MQTT session (session.ts), until each PUBACK:
// packet identifiers (MQTT 2.2.1: unique among the unacknowledged), the
// client's Receive Maximum (MQTT 5 3.3.4: past it, messages wait here), and
// the resume position a persistent session stores — the newest position
// before which every QoS 1 message was acknowledged, so a session resumed
// from it misses nothing (acknowledgements may come out of order). Pure:
// bytes in, bytes out; the session writes them.
import { withPacketId } from './outgoing.ts';

interface Unacked {
  /** null: a retained row, which does not move the resume position. */
  position: string | null;
  acked: boolean;
}

export class Inflight {
  private nextId = 1;
  private readonly byId = new Map<number, Unacked>();
  /** In delivery order, until acknowledged: the resume position trails the oldest. */
  private unacked: Unacked[] = [];
  private head = 0;
  private readonly waiting: { template: Buffer; entry: Unacked }[] = [];
  /** Bytes of the messages waiting for Receive Maximum (counted in the session's send bound). */
  waitingBytes = 0;

  constructor(private readonly receiveMaximum: () => number) {}

  /** Is every QoS 1 message acknowledged (so a QoS 0 delivery may move the resume position)? */
  get settled(): boolean {
    return this.head === this.unacked.length;
  }

  /** Messages sent and not yet acknowledged. */
  get size(): number {
    return this.byId.size;
  }

  /** A QoS 1 message: its packet (with an identifier) to write now, or null while it waits for Receive Maximum. */
  add(template: Buffer, position: string | null): Buffer | null {
    const entry: Unacked = { position, acked: false };
    this.unacked.push(entry);
    if (this.byId.size >= this.receiveMaximum()) {
      this.waiting.push({ template, entry });
      this.waitingBytes += template.length;
      return null;
    }
    return this.numbered(template, entry);
  }

  /**
   * PUBACK `id`: where the resume position moves (undefined: it does not),
   * and the next waiting message's packet to write, if one may go now.
   */
  ack(id: number): { moved: string | undefined; next: Buffer | undefined } {
    const entry = this.byId.get(id);
    if (!entry) return { moved: undefined, next: undefined };
    this.byId.delete(id);
    entry.acked = true;
    let moved: string | undefined;
    while (this.head < this.unacked.length && this.unacked[this.head]!.acked)
      moved = this.unacked[this.head++]!.position ?? moved;
    if (this.head > 1024 && this.head * 2 > this.unacked.length) {
      this.unacked = this.unacked.slice(this.head);
      this.head = 0;
    }
    const waiting = this.waiting.shift();
    if (!waiting) return { moved, next: undefined };
    this.waitingBytes -= waiting.template.length;
    return { moved, next: this.numbered(waiting.template, waiting.entry) };
  }

  private numbered(template: Buffer, entry: Unacked): Buffer {
    let id = this.nextId;
    while (this.byId.has(id)) id = (id % 65_535) + 1;
    this.nextId = (id % 65_535) + 1;
    this.byId.set(id, entry);
    return withPacketId(template, id);
  }
}
