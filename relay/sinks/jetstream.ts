// The JetStream sink: every event the active relay routes goes into one
// JetStream stream, exactly once and in commit order.
//
//   connecting ──connected, stream ready, tail read──▶ publishing
//        ▲                                                │ a publish failed / NATS gone
//        └──────────── resyncing (backoff) ◀──────────────┘
//   any ──stop()──▶ closed       (stream unusable: `failed`, retried the same way)
//
// How exactly-once holds (docs/streams.md):
// - The slot's position is gated (queue.ts): a commit is released to the
//   replication stream only once JetStream acknowledged every message before it.
// - Each message says which stream sequence must precede it
//   (Nats-Expected-Last-Sequence). JetStream refuses one that would land after
//   a gap or after another writer, so the stream never holds a message whose
//   predecessor is missing; and Nats-Msg-Id drops retries within the window.
// - On start and after any failure the sink reads the stream's last message
//   (nats-stream.ts readTail): everything at or before its position is
//   treated as stored and publishing restarts right after it. That covers a
//   relay killed after JetStream stored a message but before the slot moved,
//   a standby taking over, and retries older than the duplicate window.
import type { NatsConnection } from '@nats-io/transport-node';
import type { JetStreamManager } from '@nats-io/jetstream';
import { PubAcks } from './pub-acks.ts';
import { StreamHeaders } from './stream-headers.ts';
import type { Logger } from '../log.ts';
import type { Lsn } from '../replication/lsn.ts';
import { WalcastError } from '../errors.ts';
import { PublishQueue } from './queue.ts';
import {
  fitPayload,
  toStreamLogicalMessage,
  toStreamMessage,
  type SinkEvent,
  type SinkMessage,
  type StreamMessage,
} from './message.ts';
import { ensureStream, jetstreamManager, natsError, openNats, readTail, type NatsSettings } from './nats-stream.ts';
import { backoffDelay } from '../../client/backoff.ts';

export type SinkState = 'connecting' | 'publishing' | 'resyncing' | 'failed' | 'closed';
export const SINK_STATES: readonly SinkState[] = ['connecting', 'publishing', 'resyncing', 'failed', 'closed'];

export interface JetStreamSinkOptions extends NatsSettings {
  /** Bytes of event payloads held for JetStream before the sink falls behind and re-reads from the slot. */
  bufferBytes: number;
  logger: Logger;
  /** Every event of the transaction ending at `lsn` is stored: the stream may confirm it. */
  onSafe(lsn: Lsn, commitTimeMs: number): void;
  /** The buffer overflowed and has drained: re-read the slot from the last safe position. */
  onRewind(): void;
  /** Stop (true) or resume (false) reading the slot: see HOLD_ABOVE. */
  onHold(on: boolean): void;
}

/** Messages sent and not yet acknowledged, at most. */
const MAX_IN_FLIGHT = 2048;
/** At least one message in this many asks for a PubAck, so acknowledgements flow during a long burst. */
const ACK_EVERY = 128;
/**
 * While publishing, more messages queued than this (sent or not, not yet
 * acknowledged) stop the relay reading the slot until HOLD_RELEASE are left
 * (all of them in flight): a backlog waits in PostgreSQL's WAL, not in this
 * queue. Without it a drain read the slot far ahead of JetStream, up to
 * bufferBytes (64 MiB) of queued events that all outlived V8's young
 * generation. Not while NATS is away: then the queue fills to bufferBytes and
 * the sink re-reads later (queue.ts), and WebSocket clients are not held up.
 */
const HOLD_ABOVE = 2 * MAX_IN_FLIGHT;
const HOLD_RELEASE = MAX_IN_FLIGHT;

/** A message that asked for a PubAck, and the stream sequence it must get. */
interface Sent {
  msg: StreamMessage;
  seq: number;
}
const PUBLISH_TIMEOUT_MS = 5000;
/** Retries after a failure: full jitter, ceiling 200 ms doubling to 5 s. */
const RETRY = { initialMs: 200, maxMs: 5000, factor: 2 };

export interface SinkCounters {
  published: number;
  duplicates: number;
  failures: number;
  resyncs: number;
  rewinds: number;
  /** Events over the server's max_payload, stored as event_too_large notices. */
  tooLarge: number;
}

export class JetStreamSink {
  state: SinkState = 'connecting';
  lastError: string | undefined;
  readonly counters: SinkCounters = { published: 0, duplicates: 0, failures: 0, resyncs: 0, rewinds: 0, tooLarge: 0 };
  private readonly queue: PublishQueue<StreamMessage>;
  private nc: NatsConnection | undefined;
  private acks: PubAcks<Sent> | undefined;
  private jsm: JetStreamManager | undefined;
  /** The stream sequence the next message must follow. */
  private lastSeq = 0;
  /** The stream sequence up to which JetStream acknowledged. */
  private ackedSeq = 0;
  private sinceAsked = 0;
  private pumpScheduled = false;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private resyncing: Promise<void> | undefined;
  private holding = false;

  constructor(private readonly opts: JetStreamSinkOptions) {
    this.queue = new PublishQueue<StreamMessage>(opts.bufferBytes, {
      onSafe: opts.onSafe,
      onRewind: () => {
        this.counters.rewinds++;
        opts.logger.info(
          { stream: opts.stream },
          'JetStream sink caught up after falling behind: re-reading the slot from the last stored event',
        );
        opts.onRewind();
      },
    });
  }

  /**
   * Connect, check or create the stream and read its last position. A stream
   * that cannot hold the subjects, or a creds file that cannot be used, is a
   * start-up error; NATS unreachable or refusing is not: the relay serves
   * WebSocket clients and the sink keeps trying.
   */
  async start(): Promise<void> {
    try {
      await this.resync();
    } catch (err) {
      // nats_stream_incompatible, nats_creds_invalid: an operator's fix is needed.
      if (err instanceof WalcastError && !err.retryable) {
        await this.stop();
        throw err;
      }
      this.fail(err);
    }
  }

  // ---- from the dispatcher ----

  wants(key: string): boolean {
    return this.queue.wants(key);
  }

  event(e: SinkEvent): void {
    this.push(toStreamMessage(e));
  }

  /** A logical message: in the same queue, so in stream order with the events and gated the same way. */
  message(m: SinkMessage): void {
    this.push(toStreamLogicalMessage(m));
  }

  private push(msg: StreamMessage): void {
    if (this.state === 'closed') return;
    this.queue.push(msg);
    if (!this.holding && this.queue.pending > HOLD_ABOVE) this.hold();
    this.schedulePump();
  }

  commit(lsn: Lsn, timeMs: number): void {
    this.queue.commit(lsn, timeMs);
  }

  // ---- state for /readyz and /metrics ----

  get lag(): { events: number; seconds: number; behind: boolean } {
    const oldest = this.queue.oldest();
    return {
      events: this.queue.pending,
      seconds: oldest ? Math.max(0, (Date.now() - oldest.commitTimeMs) / 1000) : 0,
      behind: this.queue.behind,
    };
  }

  get bufferedBytes(): number {
    return this.queue.bytes;
  }

  async stop(): Promise<void> {
    this.state = 'closed';
    this.hold();
    clearTimeout(this.retryTimer);
    const nc = this.nc;
    // Drain: publishes in flight get their acknowledgement (so their commits
    // are released before the stream's last confirmation) or fail. NATS away:
    // closed after 2 s; what was not acknowledged stays in the slot.
    if (!nc) return;
    this.nc = undefined;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([nc.drain().catch(() => {}), new Promise((r) => (timer = setTimeout(r, 2000)))]);
    clearTimeout(timer);
    this.acks?.close();
    await nc.close().catch(() => {});
  }

  /**
   * Publish once per turn of the event loop: the events of every replication
   * chunk read in this turn (and the acknowledgements) go out in one burst,
   * one socket write per 32 KiB instead of one per chunk (a profile showed
   * those writes as the sink's largest cost).
   */
  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(this.pumpNow);
  }

  private readonly pumpNow = (): void => {
    this.pumpScheduled = false;
    this.pump();
  };

  private pump(): void {
    if (this.state !== 'publishing') return;
    const acks = this.acks!;
    const nc = this.nc!;
    while (this.lastSeq - this.ackedSeq < MAX_IN_FLIGHT) {
      const msg = this.queue.take();
      if (!msg) return;
      if (fitPayload(msg, nc.info?.max_payload)) {
        this.counters.tooLarge++;
        this.opts.logger.warn(
          { position: msg.event.position, table: msg.event.table },
          'an event over the NATS max_payload was stored as an event_too_large notice',
        );
      }
      const h = new StreamHeaders(`Nats-Expected-Last-Sequence: ${this.lastSeq++}\r\n${msg.headerLines}`);
      // Only the last message of a burst, and every ACK_EVERY-th, asks for a
      // PubAck: each message names the sequence it must follow, so JetStream
      // stores none after a refused one, and an acknowledgement covers every
      // message before it (docs/streams.md). Half the messages on the wire,
      // and the server's work per message, for the same guarantee.
      if (++this.sinceAsked >= ACK_EVERY || !this.queue.hasNext() || this.lastSeq - this.ackedSeq >= MAX_IN_FLIGHT) {
        this.sinceAsked = 0;
        acks.publish(msg.subject, msg.payload, h, { msg, seq: this.lastSeq });
      } else {
        nc.publish(msg.subject, msg.payload, { headers: h });
      }
    }
  }

  private onAck(sent: Sent, ack: { seq: number; duplicate: boolean }): void {
    // A duplicate is not checked against the expected sequence: it does not
    // vouch for the messages before it. Start again after what the stream holds.
    if (ack.duplicate || ack.seq !== sent.seq) {
      this.counters.duplicates += ack.duplicate ? 1 : 0;
      return this.fail(
        new Error(`JetStream stored ${ack.duplicate ? 'a duplicate' : `sequence ${ack.seq}, not ${sent.seq}`}`),
      );
    }
    this.counters.published += sent.seq - this.ackedSeq;
    this.ackedSeq = sent.seq;
    this.queue.ackThrough(sent.msg);
    if (this.holding) this.hold();
    this.schedulePump();
  }

  /** Hold the slot's reading while publishing with more than HOLD_ABOVE queued; release at HOLD_RELEASE or when not publishing. */
  private hold(): void {
    const pending = this.queue.pending;
    const on = this.state === 'publishing' && pending > (this.holding ? HOLD_RELEASE : HOLD_ABOVE);
    if (on === this.holding) return;
    this.holding = on;
    this.opts.onHold(on);
  }

  private fail(err: unknown): void {
    if (this.state === 'closed') return;
    this.acks?.clear();
    this.counters.failures++;
    this.lastError = (err as Error).message;
    if (this.state !== 'failed') this.state = 'resyncing';
    this.hold();
    const delay = backoffDelay(this.attempt++, RETRY);
    const wrapped = natsError(err, this.opts);
    this.opts.logger.warn({ err: wrapped, delayMs: Math.round(delay) }, wrapped.message);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.resync().catch((e: unknown) => this.fail(e)), delay);
  }

  /** The client reconnects by itself; the sink stops at a disconnect and resyncs at once on reconnect. */
  private async watch(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (nc !== this.nc || this.state === 'closed') return;
      if (s.type === 'disconnect') this.fail(new Error(`disconnected from NATS (${s.server})`));
      else if (s.type === 'reconnect') {
        clearTimeout(this.retryTimer);
        void this.resync().catch((e: unknown) => this.fail(e));
      }
    }
  }

  /** (Re)connect if needed, make sure of the stream, and restart after its last stored message. */
  private resync(): Promise<void> {
    return (this.resyncing ??= this.doResync().finally(() => (this.resyncing = undefined)));
  }

  private async doResync(): Promise<void> {
    if (this.state === 'closed') return;
    if (!this.nc || this.nc.isClosed()) {
      const nc = await openNats(this.opts);
      if ((this.state as SinkState) === 'closed') {
        await nc.close();
        return;
      }
      this.nc = nc;
      this.acks?.close();
      this.acks = new PubAcks<Sent>(nc, PUBLISH_TIMEOUT_MS, {
        acked: (sent, ack) => this.onAck(sent, ack),
        failed: (err) => this.fail(err),
      });
      this.jsm = await jetstreamManager(this.nc, { timeout: PUBLISH_TIMEOUT_MS });
      void this.watch(this.nc);
    }
    await ensureStream(this.jsm!, this.opts);
    const tail = await readTail(this.jsm!, this.opts.stream);
    if ((this.state as SinkState) === 'closed') return;
    this.counters.resyncs++;
    this.lastSeq = tail.seq;
    this.ackedSeq = tail.seq;
    this.sinceAsked = 0;
    this.queue.resync(tail.key);
    this.state = 'publishing';
    this.lastError = undefined;
    this.attempt = 0;
    this.opts.logger.info(
      { stream: this.opts.stream, seq: tail.seq, pending: this.queue.pending },
      'JetStream sink publishing after the last stored event',
    );
    this.pump();
  }
}
