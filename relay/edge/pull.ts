// The edge's read of the change stream: an ordered pull consumer, read on a
// plain NATS subscription instead of through nats.js's JetStream consumer.
// nats.js wraps every message in a JsMsg and parses its reply subject into a
// DeliveryInfo (a split into eleven strings, six parseInt) for its own
// ordering check; reading 50,000 stored messages through the edge
// (bench/edge-read.ts: decode, recovery window, routing to 5 subscribers
// per channel), this read costs 7.9–10.6 µs per message against 8.3–13.6
// through nats.js's ordered consumer (2026-12-01, shared machine). What
// nats.js's ordered consumer did is kept, more simply, because the edge
// already knows how to start again (source.ts restart: from the sequence
// after the last message it routed, with a guard against repeats):
//
// - order and gaps: the server numbers deliveries 1, 2, 3… per consumer
//   (the reply subject's delivery sequence); any other number is a gap, and
//   the read stops (onBreak) so that the caller starts a new consumer;
// - a lost server or consumer: the pull asks for idle heartbeats every
//   expiresMs / 2; two periods with nothing received stop the read; a
//   `409 Consumer Deleted` (or any status it does not know) too;
// - flow: up to `batch` messages asked for, asked again at 75 % as nats.js
//   does; a pull that expires (408, or 409 with Nats-Pending-*) gives back
//   what it had left, and another is sent at once.
//
// Not acknowledged (AckPolicy none), in memory, one replica, removed by the
// server after 5 minutes without a reader (as nats.js's ordered consumer).
import { createInbox, nanos, nuid, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, type JetStreamManager } from '@nats-io/jetstream';

export interface OrderedPullOptions {
  nc: NatsConnection;
  jsm: JetStreamManager;
  stream: string;
  /** The stream sequence to start at. */
  from: number;
  /** Messages asked for at most (the client's buffer bound). */
  batch: number;
  /** How long a pull request lasts; heartbeats come at half of it. */
  expiresMs: number;
  /** A stream message with its stream sequence, in order, each once. */
  onMessage(m: Msg, seq: number): void;
  /** The read stopped (a gap, missed heartbeats, the consumer gone): start another after the last routed message. */
  onBreak(reason: string): void;
}

const INACTIVE_NS = nanos(5 * 60 * 1000);

export class OrderedPull {
  private sub: Subscription | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** The delivery sequence the next message must have. */
  private expected = 1;
  private pending = 0;
  /** Heartbeat periods in a row with nothing received. */
  private quiet = 0;
  private stopped = false;
  private readonly next: string;
  private readonly inbox = createInbox();

  private constructor(
    private readonly o: OrderedPullOptions,
    readonly name: string,
  ) {
    this.next = `$JS.API.CONSUMER.MSG.NEXT.${o.stream}.${name}`;
  }

  /** Create the consumer and start reading. */
  static async open(o: OrderedPullOptions): Promise<OrderedPull> {
    const reader = new OrderedPull(o, `walcast_edge_${nuid.next()}`);
    await o.jsm.consumers.add(o.stream, {
      name: reader.name,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: o.from,
      ack_policy: AckPolicy.None,
      mem_storage: true,
      num_replicas: 1,
      inactive_threshold: INACTIVE_NS,
    });
    reader.start();
    return reader;
  }

  private start(): void {
    this.sub = this.o.nc.subscribe(this.inbox, {
      callback: (err, m) => (err ? this.break(`subscription: ${err.message}`) : this.receive(m)),
    });
    const beat = Math.max(500, Math.floor(this.o.expiresMs / 2));
    this.timer = setInterval(() => {
      if (++this.quiet > 2) this.break('missed heartbeats');
    }, beat);
    this.timer.unref();
    this.pull();
  }

  /** Stop reading and delete the consumer (not awaited: the server removes it after 5 minutes anyway). */
  close(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.sub?.unsubscribe();
    this.o.jsm.consumers.delete(this.o.stream, this.name).catch(() => {});
  }

  private break(reason: string): void {
    if (this.stopped) return;
    this.close();
    this.o.onBreak(reason);
  }

  private receive(m: Msg): void {
    if (this.stopped) return;
    this.quiet = 0;
    const reply = m.reply;
    if (!reply) return this.status(m);
    const at = deliveryInfo(reply);
    if (!at || at.delivery !== this.expected) return this.break(at ? 'a gap in the deliveries' : `reply ${reply}`);
    this.expected++;
    this.pending--;
    this.o.onMessage(m, at.seq);
    this.refill();
  }

  /** A status message (no reply subject): a heartbeat, an expired pull, or trouble. */
  private status(m: Msg): void {
    const h = m.headers;
    const code = h?.code ?? 0;
    if (code === 100) return;
    const left = Number(h?.get('Nats-Pending-Messages') || 0);
    if ((code === 408 || code === 409) && left > 0) {
      this.pending = Math.max(0, this.pending - left);
      return this.refill();
    }
    if (code === 408 || code === 404) return this.refill();
    this.break(`${code} ${h?.description ?? ''}`.trim());
  }

  private refill(): void {
    if (this.pending <= Math.floor(this.o.batch * 0.75)) this.pull();
  }

  private pull(): void {
    const batch = this.o.batch - this.pending;
    if (batch <= 0 || this.stopped) return;
    this.pending += batch;
    const expires = nanos(this.o.expiresMs);
    const request = `{"batch":${batch},"expires":${expires},"idle_heartbeat":${nanos(this.o.expiresMs / 2)}}`;
    this.o.nc.publish(this.next, request, { reply: this.inbox });
  }
}

/**
 * The stream and delivery sequences in a JetStream reply subject, without
 * splitting it: `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>`,
 * or with `<domain>.<account hash>` after `$JS.ACK` (and a token at the end).
 */
export function deliveryInfo(reply: string): { seq: number; delivery: number } | undefined {
  if (!reply.startsWith('$JS.ACK.')) return undefined;
  let tokens = 1;
  for (let i = reply.indexOf('.'); i >= 0; i = reply.indexOf('.', i + 1)) tokens++;
  if (tokens !== 9 && tokens < 11) return undefined;
  let at = 0;
  for (let i = tokens === 9 ? 5 : 7; i > 0; i--) at = reply.indexOf('.', at) + 1;
  const mid = reply.indexOf('.', at);
  const end = reply.indexOf('.', mid + 1);
  const seq = Number(reply.slice(at, mid));
  const delivery = Number(reply.slice(mid + 1, end));
  return Number.isInteger(seq) && Number.isInteger(delivery) ? { seq, delivery } : undefined;
}
