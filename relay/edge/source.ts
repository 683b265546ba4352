// An edge relay's input: an ordered consumer on the change stream, from the
// message after the stream's tail at start (the edge serves what happens
// from now on; older events come from history.ts when a resume asks).
//
//   connecting ──stream found, tail read──▶ consuming ⇄ disconnected (NATS away; the client reconnects)
//        │ ▲
//        ▼ │ retry every second
//      waiting (no stream yet, or no epoch: no slot relay has run)
//   any ──stop()──▶ closed
//   consuming, paused while the edge's sockets are backed up (pause/resume: the
//   consumer is closed and started again after the last routed message)
//
// The ordered consumer (nats.js) delivers every message once, in stream
// order, and recreates itself after a gap or a lost connection from the
// sequence after the last one it delivered. Messages are handled in the
// client's callback, synchronously, with no await per message.
import { EventEmitter } from 'node:events';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  DeliverPolicy,
  jetstream,
  type Consumer,
  type ConsumerMessages,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import type { Logger } from '../log.ts';
import { WalcastError } from '../errors.ts';
import {
  checkCreds,
  isNotFound,
  jetstreamManager,
  natsError,
  openNats,
  type NatsSettings,
} from '../sinks/nats-stream.ts';
import { streamPoint } from '../replication/position.ts';
import { decodeMessage, type StreamEvent } from './decode.ts';
import { headerReader } from './header-block.ts';

export type SourceState = 'connecting' | 'waiting' | 'consuming' | 'disconnected' | 'closed';
export const SOURCE_STATES: readonly SourceState[] = ['connecting', 'waiting', 'consuming', 'disconnected', 'closed'];

export interface StreamSourceOptions extends NatsSettings {
  logger: Logger;
  /** The slot's current epoch (walcast.slots), when a slot relay has run. */
  epoch(): Promise<string | undefined>;
  /** Consuming starts after `position` (of `epoch`): the recovery window starts there. */
  onStart(position: string, epoch: string): void;
  onEvent(e: StreamEvent): void;
}

export interface StreamSourceEvents {
  /** The first event of another epoch (the slot was recreated): clients must start over. */
  epoch: [epoch: string];
  /** The first event of a transaction (committed at `commitTimeMs`) is being routed. */
  transaction: [commitTimeMs: number];
}

const RETRY_MS = 1000;
const LAG_POLL_MS = 1000;
/** Messages asked for per pull; the client asks again at 75% (nats.js). */
const PULL_MESSAGES = 1024;
/**
 * How long a pull request lasts (the server's idle heartbeats come at half
 * of it): a lost server is noticed after two missed heartbeats, so about
 * 2 s instead of nats.js's 30 s default (the ordered consumer then recreates
 * itself); an idle edge renews one request per 2 s.
 */
const PULL_EXPIRES_MS = 2000;

export class StreamSource extends EventEmitter<StreamSourceEvents> {
  state: SourceState = 'connecting';
  /** Why the edge is not consuming (for /readyz and the log). */
  reason: string | undefined = 'connecting to NATS';
  epoch = '';
  /** Where a new subscription starts: the last position routed. */
  position = '';
  /** The stream sequence of the last message routed. */
  deliveredSeq = 0;
  /** The stream's last sequence, polled (lag = lastSeq − deliveredSeq). */
  lastSeq = 0;
  private lastTimeMs = Date.now();
  private lastXid = -1;
  private paused = false;
  private started = false;
  /** The channel of the last message routed (with `position`, what the guard compares). */
  private lastChannel: string | undefined;
  private switching: Promise<void> = Promise.resolve();
  readonly counters = { messages: 0, skipped: 0, pauses: 0, repeats: 0 };
  private conn: NatsConnection | undefined;
  private jsmgr: JetStreamManager | undefined;
  private messages: ConsumerMessages | undefined;
  private consumer: Consumer | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lagTimer: NodeJS.Timeout | undefined;
  private readyResolve!: () => void;
  /** Resolves once consuming (or closed). */
  readonly ready = new Promise<void>((r) => (this.readyResolve = r));

  constructor(private readonly opts: StreamSourceOptions) {
    super();
  }

  /** Start trying; resolves after the first attempt (ready says when it consumes). A creds file that cannot be used stops start-up. */
  async start(): Promise<void> {
    if (this.opts.credsFile) checkCreds(this.opts.credsFile);
    await this.attempt();
  }

  get jsm(): JetStreamManager | undefined {
    return this.jsmgr;
  }

  get nc(): NatsConnection | undefined {
    return this.conn;
  }

  get stream(): string {
    return this.opts.stream;
  }

  get lag(): { messages: number; seconds: number } {
    const messages = Math.max(0, this.lastSeq - this.deliveredSeq);
    return { messages, seconds: messages > 0 ? Math.max(0, (Date.now() - this.lastTimeMs) / 1000) : 0 };
  }

  async stop(): Promise<void> {
    this.state = 'closed';
    clearTimeout(this.timer);
    clearInterval(this.lagTimer);
    this.readyResolve();
    await this.closeConsumer();
    const nc = this.conn;
    this.conn = undefined;
    await nc?.close().catch(() => {});
  }

  private async attempt(): Promise<void> {
    if (this.state === 'closed') return;
    try {
      if (await this.open()) return;
    } catch (err) {
      const wrapped = natsError(err, this.opts);
      this.wait(wrapped.code === 'nats_publish_failed' ? `NATS: ${(err as Error).message}` : wrapped.message, wrapped);
    }
    this.timer = setTimeout(() => void this.attempt(), RETRY_MS);
  }

  private wait(reason: string, err?: WalcastError): void {
    if (this.reason !== reason) this.opts.logger.warn({ code: err?.code, stream: this.opts.stream }, reason);
    this.state = this.state === 'closed' ? 'closed' : 'waiting';
    this.reason = reason;
  }

  /** Connect, find the stream and its tail, and consume after it; false while there is nothing to consume yet. */
  private async open(): Promise<boolean> {
    if (!this.conn) {
      this.conn = await openNats({ ...this.opts });
      this.jsmgr = await jetstreamManager(this.conn, { timeout: 5000 });
      void this.watch(this.conn);
    }
    const jsm = this.jsmgr!;
    const stream = this.opts.stream;
    const info = await jsm.streams.info(stream).catch((err: unknown) => {
      if (isNotFound(err)) return undefined;
      throw err;
    });
    if (!info) {
      const e = new WalcastError('edge_stream_missing', { stream });
      this.wait(e.message, e);
      return false;
    }
    const tail = info.state.last_seq;
    const tailPosition =
      info.state.messages > 0
        ? (await jsm.streams.getMessage(stream, { seq: tail }))?.header?.get('Walcast-Position')
        : '';
    const epoch = (await this.opts.epoch()) ?? tailPosition?.split('-')[2];
    if (!epoch) {
      const e = new WalcastError('edge_stream_missing', { stream });
      this.wait(e.message, e);
      return false;
    }
    if ((this.state as SourceState) === 'closed') return true;
    this.epoch = epoch;
    this.position = tailPosition?.endsWith(`-${epoch}`) ? tailPosition : streamPoint(0n, epoch);
    this.deliveredSeq = tail;
    this.lastSeq = tail;
    this.opts.onStart(this.position, epoch);
    await this.consume(tail + 1);
    return true;
  }

  /**
   * Stop routing while the edge's sockets are backed up (ws/congestion.ts),
   * as the slot relay stops reading its replication stream: the consumer is
   * closed, and what it had fetched beyond the last routed message is read
   * again on resume.
   */
  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.counters.pauses++;
    this.switchTo(() => this.closeConsumer());
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.switchTo(() => this.restart());
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** Pauses, resumes and restarts run one after the other. */
  private switchTo(step: () => Promise<void>): void {
    this.switching = this.switching
      .then(step)
      .catch((err: unknown) => this.opts.logger.warn({ err }, 'switching the stream consumer failed'));
  }

  private async restart(): Promise<void> {
    await this.closeConsumer();
    if (this.state === 'closed' || this.paused || !this.conn) return;
    await this.consume(this.deliveredSeq + 1);
  }

  /** Stop pulling, and delete the consumer on the server (nats.js leaves it for 5 minutes of inactivity). */
  private async closeConsumer(): Promise<void> {
    const messages = this.messages;
    const consumer = this.consumer;
    this.messages = undefined;
    this.consumer = undefined;
    clearInterval(this.lagTimer);
    await messages?.close().catch(() => {});
    await consumer?.delete().catch(() => {});
  }

  private async consume(from: number): Promise<void> {
    const consumer = await jetstream(this.conn!).consumers.get(this.opts.stream, {
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: from,
    });
    this.consumer = consumer;
    this.messages = await consumer.consume({
      max_messages: PULL_MESSAGES,
      expires: PULL_EXPIRES_MS,
      callback: (m) => this.handle(m),
    });
    this.state = 'consuming';
    this.reason = undefined;
    this.lagTimer = setInterval(() => void this.pollLag(), LAG_POLL_MS);
    this.lagTimer.unref();
    // Once at info; again (after a pause for congestion, or a reconnect) at debug.
    this.opts.logger[this.started ? 'debug' : 'info'](
      { stream: this.opts.stream, from, epoch: this.epoch, position: this.position },
      'edge consuming the change stream',
    );
    this.started = true;
    this.readyResolve();
  }

  private handle(m: JsMsg): void {
    // Paused: not routed, so not counted as delivered; the next consumer starts at it again.
    if (this.paused) return;
    const e = decodeMessage({
      seq: m.seq,
      subject: m.subject,
      data: m.data,
      header: headerReader(m),
    });
    this.counters.messages++;
    if (m.seq > this.lastSeq) this.lastSeq = m.seq;
    if (!e) {
      // Another writer in the stream (the sink must be its only one): skipped, said once.
      if (this.counters.skipped++ === 0)
        this.opts.logger.warn(
          { stream: this.opts.stream, subject: m.subject, seq: m.seq },
          'a message in the change stream is not a walcast event (no Walcast-Position/Walcast-Table headers, or not walcast.<table>.<channel>): skipped',
        );
      return;
    }
    // A guard by position: positions only grow within an epoch, and one
    // position is on two messages only for a row that moved (two channels).
    // Whatever repeats a message (a consumer started again across a NATS
    // restart, or the stream itself), a client never gets it twice.
    if (
      e.epoch === this.epoch &&
      (e.position < this.position || (e.position === this.position && e.channel === this.lastChannel))
    ) {
      this.counters.repeats++;
      return;
    }
    this.lastChannel = e.channel;
    if (e.epoch !== this.epoch) {
      this.epoch = e.epoch;
      this.emit('epoch', e.epoch);
    }
    this.deliveredSeq = e.seq;
    this.position = e.position;
    this.lastTimeMs = e.timeMs;
    if (e.xid !== this.lastXid) {
      this.lastXid = e.xid;
      this.emit('transaction', e.timeMs);
    }
    this.opts.onEvent(e);
  }

  private async pollLag(): Promise<void> {
    try {
      const info = await this.jsmgr?.streams.info(this.opts.stream);
      if (info && info.state.last_seq > this.lastSeq) this.lastSeq = info.state.last_seq;
    } catch {
      // NATS away: the state says so; the next poll tries again
    }
  }

  private async watch(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (nc !== this.conn || this.state === 'closed') return;
      if (s.type === 'disconnect') {
        this.state = 'disconnected';
        this.reason = 'disconnected from NATS; reconnecting';
      } else if (s.type === 'reconnect' && this.messages) {
        // The ordered consumer recreates itself after the last message it
        // delivered (nats.js); closing and replacing it here raced with that
        // and left consumers running twice.
        this.state = 'consuming';
        this.reason = undefined;
      }
    }
  }
}
