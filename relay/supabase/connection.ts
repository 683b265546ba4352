// One realtime-js socket: a bounded send queue written once per tick
// (ws/coalesce.ts), and its messages handled one at a time in order (a join
// checks its token and columns asynchronously; what the client sends after
// it waits, as Phoenix handles a channel's messages in order).
import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { WebSocket, type RawData } from 'ws';
import type { Grants } from '../auth/grants.ts';
import type { TokenBucket } from '../auth/limits.ts';
import { flushQueue, type FrameQueue } from '../ws/coalesce.ts';
import { SendBound } from '../ws/send-bound.ts';
import { decode, FrameError, type PhxMessage, type Vsn } from './serializer.ts';
import { errorReply, PHOENIX_TOPIC, PHX, reply } from './frames.ts';
import { WalcastError } from '../errors.ts';
import type { Joined } from './channels.ts';

/** What a connection asks of the door. */
export interface ConnectionHost {
  /** Queue `bytes` for the end of the tick; `queued` is the connection's queue including them. */
  enqueue(conn: SupabaseConnection, bytes: Buffer, queued: number): void;
  overflow(conn: SupabaseConnection): void;
  handle(conn: SupabaseConnection, msg: PhxMessage): Promise<void>;
  failed(conn: SupabaseConnection, err: unknown): void;
  ended(conn: SupabaseConnection): void;
}

export class SupabaseConnection implements FrameQueue {
  /** Identifies this socket's broadcasts in the stream (for `self: false`). */
  readonly id = randomUUID();
  /** The channels joined on this socket, by topic. */
  readonly joined = new Map<string, Joined>();
  /** Broadcasts are written to the stream one after another, so they arrive in the order sent. */
  broadcasts: Promise<void> = Promise.resolve();
  /** How many of them are not committed yet (bounded by MAX_BROADCASTS_IN_FLIGHT). */
  broadcastsInFlight = 0;
  pending: Buffer[] = [];
  pendingBytes = 0;
  isAlive = true;
  private chain: Promise<void> = Promise.resolve();
  private readonly bound: SendBound;

  constructor(
    readonly ws: WebSocket,
    private readonly socket: Duplex,
    readonly vsn: Vsn,
    /** From the `apikey` at connect; a join's access_token overrides it for that channel. */
    public grants: Grants,
    private readonly bucket: TokenBucket,
    private readonly host: ConnectionHost,
    sendQueueBytes: number,
    maxEventBytes: number,
  ) {
    this.bound = new SendBound(sendQueueBytes, maxEventBytes);
    ws.on('message', (data: RawData, binary: boolean) => this.onMessage(data, binary));
    ws.on('pong', () => {
      this.isAlive = true;
    });
    ws.on('error', () => {});
    ws.on('close', () => host.ended(this));
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(frame: string | Buffer): void {
    if (!this.open) return;
    const bytes = typeof frame === 'string' ? Buffer.from(frame) : frame;
    const before = this.queuedBytes();
    if (!this.bound.admit(before, bytes.length)) return this.host.overflow(this);
    this.host.enqueue(this, bytes, before + bytes.length);
  }

  /**
   * A binary frame (a vsn 2.0.0 broadcast): the tick's text frames are
   * written first, so that it keeps its place after them.
   */
  sendBinary(frame: Buffer): void {
    if (!this.open) return;
    if (!this.bound.admit(this.queuedBytes(), frame.length)) return this.host.overflow(this);
    flushQueue(this);
    this.ws.send(frame, { binary: true });
  }

  queuedBytes(): number {
    return this.ws.bufferedAmount + this.pendingBytes;
  }

  writeFrames(frames: Buffer): void {
    if (this.open) this.socket.write(frames);
  }

  private onMessage(data: RawData, binary: boolean): void {
    this.isAlive = true;
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as Buffer);
    let msg: PhxMessage;
    try {
      msg = decode(bytes, binary, this.vsn);
    } catch (err) {
      if (!(err instanceof FrameError)) throw err;
      const reason = new WalcastError('supabase_bad_message', { detail: err.message });
      this.send(
        errorReply(this.vsn, { topic: PHOENIX_TOPIC, ref: null, join_ref: null }, `${reason.code}: ${reason.message}`),
      );
      return;
    }
    if (!this.bucket.take()) {
      this.send(errorReply(this.vsn, msg, 'rate_limited: too many messages; slow down (WALCAST_RATE_LIMIT)'));
      return;
    }
    if (msg.topic === PHOENIX_TOPIC && msg.event === PHX.heartbeat) {
      // Answered at once, not behind a join in progress: realtime-js times the socket out on a late one.
      this.send(reply(this.vsn, msg, 'ok'));
      return;
    }
    this.chain = this.chain
      .then(() => this.host.handle(this, msg))
      .catch((err: unknown) => this.host.failed(this, err));
  }
}
