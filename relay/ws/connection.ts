// One WebSocket client: a router sink with a bounded send queue. What it
// needs from the server is the narrow ConnectionHost below, so the server's
// bookkeeping (counters, coalescing, congestion, closes) stays in server.ts.
import type { Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import { ERROR_CODES, withId, type ErrorCode, type ErrorMessage, type ServerMessage } from '../../client/protocol.ts';
import type { Frame, Router, Sink } from '../hub/router.ts';
import type { Gate } from '../auth/gate.ts';
import { flushQueue, type FrameQueue } from './coalesce.ts';
import type { Subscriber } from './subscribe.ts';
import { Access } from './access.ts';
import { SendBound } from './send-bound.ts';

/** What a connection asks of the server that owns it. */
export interface ConnectionHost {
  readonly gate: Gate;
  readonly router: Router;
  /** The bound of a connection's send queue (socket buffer plus this tick's frames), bytes. */
  readonly sendQueueBytes: number;
  /** The largest event sent; the queue has room for one event up to this size beyond its bound (send-bound.ts). */
  readonly maxEventBytes: number;
  /** Queue `bytes` for the end of the tick; `queued` is the connection's queue including them. */
  enqueue(conn: Connection, bytes: Buffer, queued: number): void;
  /** Count an error frame sent, by code (for /metrics). */
  countError(code: ErrorCode): void;
  closeConnection(conn: Connection, code: number, reason: string): void;
  closeSlowConsumer(conn: Connection): void;
}

export class Connection implements Sink, Subscriber, FrameQueue {
  readonly subscriptions = new Set<string>();
  isAlive = true;
  readonly access: Access;
  /** Frames of this tick not yet written (coalesce.ts). */
  pending: Buffer[] = [];
  pendingBytes = 0;
  /** The send queue's hard bound, with room for one event larger than it (send-bound.ts). */
  private readonly bound: SendBound;

  constructor(
    readonly ws: WebSocket,
    private readonly host: ConnectionHost,
    /** The upgraded TCP socket under `ws`: a tick's frames are written to it in one piece. */
    private readonly socket: Duplex,
  ) {
    this.access = new Access(host.gate, this, host.router);
    this.bound = new SendBound(host.sendQueueBytes, host.maxEventBytes);
  }

  close(code: number, reason: string): void {
    this.host.closeConnection(this, code, reason);
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  overflow(): void {
    this.host.closeSlowConsumer(this);
  }

  send(frame: Frame): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    const bytes = typeof frame === 'string' ? Buffer.from(frame) : frame;
    const before = this.queuedBytes();
    if (!this.bound.admit(before, bytes.length)) {
      this.host.closeSlowConsumer(this);
      return;
    }
    this.host.enqueue(this, bytes, before + bytes.length);
  }

  queuedBytes(): number {
    return this.ws.bufferedAmount + this.pendingBytes;
  }

  writeFrames(frames: Buffer): void {
    // A connection closed in the meantime must not get data after its close frame.
    if (this.ws.readyState === WebSocket.OPEN) this.socket.write(frames);
  }

  /** Write this tick's frames now: before a close frame, they would be dropped. */
  flush(): void {
    flushQueue(this);
  }

  reply(msg: ServerMessage): void {
    this.send(JSON.stringify(msg));
  }

  /** Send an error frame (the request's `id` attached when there is one); the connection stays open. */
  error(code: ErrorCode, message: string = ERROR_CODES[code], id?: string): void {
    this.host.countError(code);
    this.reply(withId<ErrorMessage>({ type: 'error', code, message }, id));
  }
}
