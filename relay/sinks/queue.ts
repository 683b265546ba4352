// The publish queue of a sink: what the dispatcher handed over, in stream
// order, until the downstream system acknowledged it. Pure (no I/O), so the
// rules that make delivery exactly-once are unit-tested on their own:
//
// - Messages and commit marks are queued in the order the dispatcher emits
//   them. A commit mark is released (onSafe) only once every message before
//   it is acknowledged: that is the gate on the slot's confirmed position.
// - Messages are sent in order; acknowledgements may come in any order, the
//   head is released only while it is acknowledged.
// - After a failure, resync(storedKey) marks every queued message at or
//   before what the downstream system holds as acknowledged, and sending
//   restarts from the first one after it. Nothing is sent twice, nothing is
//   skipped.
// - Bounded by `maxBytes` of payload. A message that does not fit puts the
//   queue "behind": it refuses everything (messages and commits) until it has
//   drained, then asks for a rewind (onRewind): the replication stream
//   restarts from the last released commit and the dispatcher hands over
//   again what came after `lastKey`. Memory stays bounded while the downstream
//   is away; PostgreSQL keeps the WAL meanwhile (the slot is not confirmed).
import type { Lsn } from '../replication/lsn.ts';
import { orderKey } from '../replication/position.ts';

export { orderKey };

export interface QueuedMessage {
  /** Stream order: orderKey(commit LSN, index, part). */
  key: string;
  bytes: number;
  commitTimeMs: number;
}

type Entry<M> = { kind: 'msg'; msg: M; acked: boolean } | { kind: 'commit'; lsn: Lsn; timeMs: number };

export interface QueueHooks {
  onSafe(lsn: Lsn, timeMs: number): void;
  onRewind(): void;
}

export class PublishQueue<M extends QueuedMessage> {
  /** Key of the last message accepted (or known stored downstream). */
  lastKey = '';
  behind = false;
  bytes = 0;
  /** Messages queued and not yet acknowledged. */
  pending = 0;
  private entries: (Entry<M> | undefined)[] = [];
  private head = 0;
  /** Index of the next entry to send. */
  private next = 0;

  constructor(
    readonly maxBytes: number,
    private readonly hooks: QueueHooks,
  ) {}

  /** Should the dispatcher hand over the message with this key? */
  wants(key: string): boolean {
    return !this.behind && key > this.lastKey;
  }

  push(msg: M): void {
    if (!this.wants(msg.key)) return;
    if (this.pending > 0 && this.bytes + msg.bytes > this.maxBytes) {
      this.behind = true;
      return;
    }
    this.entries.push({ kind: 'msg', msg, acked: false });
    this.bytes += msg.bytes;
    this.pending++;
    this.lastKey = msg.key;
  }

  /** Every message of the transaction ending at `lsn` was pushed. */
  commit(lsn: Lsn, timeMs: number): void {
    if (this.behind) return;
    if (this.head === this.entries.length) this.hooks.onSafe(lsn, timeMs);
    else this.entries.push({ kind: 'commit', lsn, timeMs });
  }

  /** The next message to send, in order; undefined when all were sent. */
  take(): M | undefined {
    while (this.next < this.entries.length) {
      const e = this.entries[this.next++]!;
      if (e.kind === 'msg' && !e.acked) return e.msg;
    }
    return undefined;
  }

  /** Is there a message left to send (take() would return one)? */
  hasNext(): boolean {
    while (this.next < this.entries.length) {
      const e = this.entries[this.next]!;
      if (e.kind === 'msg' && !e.acked) return true;
      this.next++;
    }
    return false;
  }

  /** Oldest message not yet acknowledged. */
  oldest(): M | undefined {
    for (let i = this.head; i < this.entries.length; i++) {
      const e = this.entries[i]!;
      if (e.kind === 'msg' && !e.acked) return e.msg;
    }
    return undefined;
  }

  ack(msg: M): void {
    for (let i = this.head; i < this.entries.length; i++) {
      const e = this.entries[i]!;
      if (e.kind === 'msg' && e.msg === msg) {
        this.markAcked(e);
        break;
      }
    }
    this.release();
  }

  /**
   * `msg` and every message sent before it are acknowledged (a downstream
   * that stores in order and refuses any message after a gap: its
   * acknowledgement of one message covers all before it).
   */
  ackThrough(msg: M): void {
    for (let i = this.head; i < this.next && i < this.entries.length; i++) {
      const e = this.entries[i]!;
      if (e.kind !== 'msg') continue;
      this.markAcked(e);
      if (e.msg === msg) break;
    }
    this.release();
  }

  /**
   * After a failure: the downstream system holds everything up to `storedKey`
   * ('' for nothing). Those are acknowledged; sending restarts after them.
   */
  resync(storedKey: string): void {
    if (storedKey > this.lastKey) this.lastKey = storedKey;
    for (let i = this.head; i < this.entries.length; i++) {
      const e = this.entries[i]!;
      if (e.kind === 'msg' && !e.acked && e.msg.key <= storedKey) this.markAcked(e);
    }
    this.next = this.head;
    this.release();
  }

  private markAcked(e: Extract<Entry<M>, { kind: 'msg' }>): void {
    if (e.acked) return;
    e.acked = true;
    this.bytes -= e.msg.bytes;
    this.pending--;
  }

  private release(): void {
    while (this.head < this.entries.length) {
      const e = this.entries[this.head]!;
      if (e.kind === 'msg' && !e.acked) break;
      this.entries[this.head++] = undefined;
      if (e.kind === 'commit') this.hooks.onSafe(e.lsn, e.timeMs);
    }
    if (this.next < this.head) this.next = this.head;
    // Compact now and then, so the array does not grow with the stream.
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.next -= this.head;
      this.head = 0;
    }
    if (this.behind && this.head === this.entries.length) {
      this.behind = false;
      this.hooks.onRewind();
    }
  }
}
