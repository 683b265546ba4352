// One channel subscription and what it remembers across reconnects: the last
// position it saw, so that the client can resubscribe with `since` and the
// relay replays what was missed (or says it cannot: a resync).
//
// Positions (docs/protocol.md): ordered by string comparison. Snapshot rows
// carry "<base>~n" positions, which are never resumed from; the subscribed
// reply's position is. After a resume (recovered: true) the relay replies
// with its current position and then sends the replayed events, which are
// older: the subscription keeps resuming from the last replayed event until
// a later pong proves the replay has all arrived (settle()).
import type { AnyEventMessage, ErrorMessage, SubscribeMessage, SubscribedMessage } from './protocol.ts';
import { Emitter } from './emitter.ts';
import { RelayError } from './errors.ts';
import type { AnyRows, SubscriptionNotices, TableEvent, TableRows } from './events.ts';

export interface SubscribeOptions {
  /** Only rows of these tables. */
  tables?: string[];
  /** Resume from this position (from an event or a subscribed notice) on the first subscribe. */
  since?: string;
  /** Send the channel's current rows first (op "snapshot"), and again after a resync. */
  snapshot?: boolean;
  /** With snapshot: the newest N rows of event tables. */
  limit?: number;
}

type State = 'pending' | 'active' | 'closed';

export class Subscription<T extends TableRows = AnyRows> {
  private readonly notices = new Emitter<SubscriptionNotices>();
  private state: State = 'pending';
  /** Where a resubscribe resumes from. */
  private resumeFrom: string | undefined;
  /** After a resume: the relay's position once the replay is all in. */
  private replayHead: string | undefined;
  private snapshotLeft = 0;
  private snapshotRows = 0;
  /** Id of the subscribe request in flight, to match its reply. */
  requestId: string | undefined;
  /** Retries of a subscribe the relay failed with a retryable error. */
  retries = 0;
  /** Resolves on the first subscribed reply; rejects if the relay refuses it. */
  readonly ready: Promise<SubscribedMessage>;
  private settleReady!: { resolve: (m: SubscribedMessage) => void; reject: (e: RelayError) => void };

  constructor(
    readonly channel: string,
    readonly options: SubscribeOptions,
    private readonly onEvent: (event: TableEvent<T>) => void,
    private readonly remove: (sub: Subscription<T>) => void,
  ) {
    this.resumeFrom = options.since;
    this.ready = new Promise((resolve, reject) => (this.settleReady = { resolve, reject }));
    // Awaiting `ready` is optional: an unobserved refusal must not crash Node.
    this.ready.catch(() => {});
  }

  /** Listen to subscribed, synced, resync or error; returns a function that stops. */
  on<K extends keyof SubscriptionNotices>(type: K, listener: (notice: SubscriptionNotices[K]) => void): () => void {
    return this.notices.on(type, listener);
  }

  /** The position a resubscribe would resume from (undefined before the first reply). */
  get position(): string | undefined {
    return this.resumeFrom;
  }

  get closed(): boolean {
    return this.state === 'closed';
  }

  unsubscribe(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.remove(this);
    this.notices.clear();
  }

  // ---- driven by the client ----

  /** The subscribe to send now: with `since` once there is a position to resume from. */
  request(id: string): SubscribeMessage {
    this.state = 'pending';
    this.requestId = id;
    this.replayHead = undefined;
    const msg: SubscribeMessage = { type: 'subscribe', id, channel: this.channel };
    const { tables, snapshot, limit } = this.options;
    if (tables) msg.tables = tables;
    if (this.resumeFrom !== undefined) msg.since = this.resumeFrom;
    // With since too, the relay replays when it can and sends a fresh snapshot when it cannot.
    if (snapshot) msg.snapshot = true;
    if (snapshot && limit !== undefined) msg.limit = limit;
    return msg;
  }

  subscribed(msg: SubscribedMessage): void {
    if (this.state === 'closed') return;
    this.state = 'active';
    this.requestId = undefined;
    this.retries = 0;
    const since = this.resumeFrom;
    if (msg.recovered === true) {
      this.replayHead = msg.position;
    } else {
      this.resumeFrom = msg.position;
    }
    this.snapshotLeft = msg.snapshot ?? 0;
    this.snapshotRows = 0;
    this.settleReady.resolve(msg);
    const notice: SubscriptionNotices['subscribed'] = { channel: this.channel, position: msg.position };
    if (msg.recovered !== undefined) notice.recovered = msg.recovered;
    if (msg.snapshot !== undefined) notice.snapshot = msg.snapshot;
    this.notices.emit('subscribed', notice);
    if (msg.recovered === false && since !== undefined) {
      this.notices.emit('resync', {
        channel: this.channel,
        since,
        position: msg.position,
        snapshot: msg.snapshot !== undefined,
      });
    }
    if (this.snapshotLeft === 0) this.notices.emit('synced', { channel: this.channel, rows: 0 });
  }

  event(msg: AnyEventMessage): void {
    // Events before our subscribed reply belong to an earlier subscription of the channel.
    if (this.state !== 'active') return;
    if (msg.op === 'snapshot') {
      if (this.snapshotLeft === 0) return;
      this.snapshotLeft--;
      this.snapshotRows++;
      this.deliver(msg);
      if (this.snapshotLeft === 0) this.notices.emit('synced', { channel: this.channel, rows: this.snapshotRows });
      return;
    }
    // Never twice: positions only grow within a subscription.
    if (this.resumeFrom !== undefined && msg.position <= this.resumeFrom) return;
    this.resumeFrom = msg.position;
    if (this.replayHead !== undefined && msg.position >= this.replayHead) this.replayHead = undefined;
    this.deliver(msg);
  }

  /** The relay did not send an event over its size limit (`event_too_large`): note it, and resume after it. */
  skipped(msg: ErrorMessage): void {
    if (this.state !== 'active' || msg.position === undefined) return;
    if (this.resumeFrom !== undefined && msg.position <= this.resumeFrom) return;
    this.resumeFrom = msg.position;
    this.notices.emit('skipped', {
      channel: this.channel,
      table: msg.table ?? '',
      position: msg.position,
      bytes: msg.bytes ?? 0,
      error: new RelayError(msg.code, msg.message, undefined, this.channel),
    });
  }

  /** A pong arrived: everything the relay sent before it, replays included, has arrived. */
  settle(): void {
    if (this.state !== 'active' || this.replayHead === undefined) return;
    if (this.resumeFrom === undefined || this.replayHead > this.resumeFrom) this.resumeFrom = this.replayHead;
    this.replayHead = undefined;
  }

  /** The connection dropped: wait to be resubscribed. */
  suspend(): void {
    if (this.state === 'active') this.state = 'pending';
    this.requestId = undefined;
  }

  /** The relay refused the subscribe for good. */
  fail(err: RelayError): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.remove(this);
    this.settleReady.reject(err);
    this.notices.emit('error', err);
    this.notices.clear();
  }

  private deliver(msg: AnyEventMessage): void {
    this.onEvent(msg as TableEvent<T>);
  }
}
