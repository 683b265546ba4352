// JetStream publishes with their acknowledgements matched by hand: each
// message is a core NATS publish whose reply subject is <inbox>.<token>, and
// one subscription on <inbox>.* receives every PubAck. This is what
// JetStreamClient.publish does per message, without its per-request
// subscription bookkeeping, timer and eagerly built Error objects (a profile
// showed those as the sink's largest cost). Timeouts are checked once a
// second against the oldest message in flight.
import { createInbox, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from '@nats-io/transport-node';

export interface PubAckHandlers<T> {
  acked(item: T, ack: { seq: number; duplicate: boolean }): void;
  /** A publish was refused, answered with an error, or not answered in time. */
  failed(err: Error): void;
}

interface InFlight<T> {
  item: T;
  sentAt: number;
}

export class PubAcks<T> {
  private readonly inbox = createInbox();
  private readonly sub: Subscription;
  private readonly inFlight = new Map<number, InFlight<T>>();
  private token = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly nc: NatsConnection,
    private readonly timeoutMs: number,
    private readonly handlers: PubAckHandlers<T>,
  ) {
    this.sub = nc.subscribe(`${this.inbox}.*`, { callback: (_err, msg) => this.onReply(msg) });
    this.timer = setInterval(() => this.checkTimeout(), 1000);
    this.timer.unref();
  }

  get size(): number {
    return this.inFlight.size;
  }

  publish(subject: string, payload: Uint8Array, headers: MsgHdrs, item: T): void {
    const token = ++this.token;
    this.inFlight.set(token, { item, sentAt: Date.now() });
    this.nc.publish(subject, payload, { headers, reply: `${this.inbox}.${token}` });
  }

  /** Forget what is in flight: replies that still come are ignored. */
  clear(): void {
    this.inFlight.clear();
  }

  close(): void {
    clearInterval(this.timer);
    this.inFlight.clear();
    this.sub.unsubscribe();
  }

  private onReply(msg: Msg): void {
    const token = Number(msg.subject.slice(this.inbox.length + 1));
    const entry = this.inFlight.get(token);
    if (!entry) return;
    this.inFlight.delete(token);
    if (msg.headers?.hasError)
      return this.handlers.failed(new Error(`JetStream answered ${msg.headers.code} ${msg.headers.description}`));
    let ack: { seq?: number; duplicate?: boolean; error?: { code?: number; err_code?: number; description?: string } };
    try {
      ack = msg.json();
    } catch {
      return this.handlers.failed(new Error('JetStream answered with something that is not a PubAck'));
    }
    if (ack.error)
      return this.handlers.failed(
        new Error(`JetStream refused the message: ${ack.error.description} (${ack.error.err_code ?? ack.error.code})`),
      );
    this.handlers.acked(entry.item, { seq: ack.seq ?? 0, duplicate: ack.duplicate === true });
  }

  private checkTimeout(): void {
    const oldest = this.inFlight.values().next();
    if (!oldest.done && Date.now() - oldest.value.sentAt > this.timeoutMs) {
      this.inFlight.clear();
      this.handlers.failed(new Error(`no acknowledgement from JetStream within ${this.timeoutMs} ms`));
    }
  }
}
