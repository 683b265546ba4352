// Per-socket write coalescing. Sending each frame with its own ws.send costs
// one or two socket writes per frame per subscriber, plus a header Buffer and
// a stream chunk per frame that stay queued while a client is behind; in
// fan-out those per-frame writes dominate the relay's CPU (bench/README.md).
// So a connection's frames of one event-loop tick are queued here, and the
// tick's end (setImmediate, after the I/O callbacks that produced them)
// encodes them as ready-made WebSocket frames into one Buffer per socket:
// one write, one queued chunk, per socket per tick.
//
// Writing frames to the socket beside ws's own sender is safe because ws
// writes only whole frames, synchronously (walcast turns compression off, and
// sends no Blobs, the two cases where ws queues): a ping or close from ws
// falls between two of our frames, never inside one.
//
// Bounded: queued bytes are counted by the connection (pendingBytes) and,
// once written, by the socket (bufferedAmount); the send-queue bound is
// checked against both. A tick adds no more delay than the work done in it.

/** What a connection queues for the end of the tick; its owner counts pendingBytes toward its send-queue bound. */
export interface PendingQueue {
  pending: Buffer[];
  pendingBytes: number;
}

export interface FrameQueue extends PendingQueue {
  /** Write ready-made frames to the socket (or drop them if it is closing). */
  writeFrames(frames: Buffer): void;
}

/**
 * The tick mechanism, whatever the framing: queues with something pending
 * are remembered once, and `flushOne` writes each at the tick's end. The
 * WebSocket doors frame text messages (WriteCoalescer); the MQTT door writes
 * its packets as they are (relay/mqtt/outbox.ts).
 */
export class TickCoalescer<Q extends PendingQueue> {
  private queued: Q[] = [];
  private scheduled = false;

  constructor(
    private readonly flushOne: (queue: Q) => void,
    /** After the tick's writes (WriteCoalescer forgets the encoding it shared within them). */
    private readonly tickEnd?: () => void,
  ) {}

  /** Queue `bytes` for `queue`'s socket, to be written at the end of this tick. */
  enqueue(queue: Q, bytes: Buffer): void {
    if (queue.pending.length === 0) {
      this.queued.push(queue);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(this.flushAll);
      }
    }
    queue.pending.push(bytes);
    queue.pendingBytes += bytes.length;
  }

  private readonly flushAll = (): void => {
    this.scheduled = false;
    const queued = this.queued;
    this.queued = [];
    for (const q of queued) this.flushOne(q);
    this.tickEnd?.();
  };
}

/**
 * The tick's last encoding. In fan-out the sockets of one channel are queued
 * one after another and hold the same payload Buffers (one per event, made
 * once), so the next socket whose payloads are the same objects in the same
 * order is written the previous one's Buffer: one copy of the tick's frames
 * per channel rather than per subscriber. Forgotten at the tick's end.
 */
interface SharedEncoding {
  payloads: Buffer[] | null;
  frames: Buffer | null;
}

/** WebSocket text messages: a queue's payloads become frames in one Buffer per tick. */
export class WriteCoalescer extends TickCoalescer<FrameQueue> {
  constructor() {
    const shared: SharedEncoding = { payloads: null, frames: null };
    super(
      (queue) => flushQueue(queue, shared),
      () => {
        shared.payloads = null;
        shared.frames = null;
      },
    );
  }
}

function encodeShared(payloads: Buffer[], shared: SharedEncoding): Buffer {
  if (shared.frames && shared.payloads && samePayloads(shared.payloads, payloads)) return shared.frames;
  shared.payloads = payloads;
  shared.frames = encodeTextFrames(payloads);
  return shared.frames;
}

function samePayloads(a: Buffer[], b: Buffer[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Payloads from this size on are written as they are, after their own frame
 * header, not copied into the tick's Buffer: a large event's bytes are then
 * shared by every socket it goes to instead of copied once per subscriber.
 */
export const SHARED_PAYLOAD_BYTES = 64 * 1024;

/** Write `queue`'s pending frames now (before a close frame, say); within a tick, `shared` reuses an equal encoding. */
export function flushQueue(queue: FrameQueue, shared?: SharedEncoding): void {
  if (queue.pending.length === 0) return;
  const pending = queue.pending;
  queue.pending = [];
  queue.pendingBytes = 0;
  let from = 0;
  for (let i = 0; i < pending.length; i++) {
    const p = pending[i]!;
    if (p.length < SHARED_PAYLOAD_BYTES) continue;
    if (i > from) queue.writeFrames(encodeTextFrames(pending.slice(from, i)));
    queue.writeFrames(textFrameHeader(p.length));
    queue.writeFrames(p);
    from = i + 1;
  }
  if (from === 0) queue.writeFrames(shared ? encodeShared(pending, shared) : encodeTextFrames(pending));
  else if (from < pending.length) queue.writeFrames(encodeTextFrames(pending.slice(from)));
}

/** The header of one unmasked, unfragmented text frame of `len` bytes. */
export function textFrameHeader(len: number): Buffer {
  const out = Buffer.allocUnsafe(headerLength(len));
  writeHeader(out, 0, len);
  return out;
}

/**
 * Unmasked, unfragmented text frames (RFC 6455 §5.2), as a server sends them:
 * FIN + opcode 1, then the payload length in 7, 7+16 or 7+64 bits.
 */
export function encodeTextFrames(payloads: Buffer[]): Buffer {
  let total = 0;
  for (const p of payloads) total += headerLength(p.length) + p.length;
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  for (const p of payloads) {
    at = writeHeader(out, at, p.length);
    at += p.copy(out, at);
  }
  return out;
}

/** FIN + opcode 1, then the payload length in 7, 7+16 or 7+64 bits; returns where the payload starts. */
function writeHeader(out: Buffer, at: number, len: number): number {
  out[at++] = 0x81;
  if (len < 126) {
    out[at++] = len;
  } else if (len < 65536) {
    out[at++] = 126;
    out.writeUInt16BE(len, at);
    at += 2;
  } else {
    out[at++] = 127;
    out.writeUInt32BE(Math.floor(len / 2 ** 32), at);
    out.writeUInt32BE(len >>> 0, at + 4);
    at += 8;
  }
  return at;
}

function headerLength(len: number): number {
  return len < 126 ? 2 : len < 65536 ? 4 : 10;
}
