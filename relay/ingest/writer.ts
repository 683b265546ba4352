// One broker's writes to PostgreSQL: messages queue here and are written in
// batches (transaction.ts). Group commit: an idle writer starts a
// transaction with everything waiting (up to BATCH_MAX) one event-loop turn
// after the first message; while it runs, the next batch gathers. A second
// transaction starts only for a full batch (PIPELINE: one runs its
// statements while the other waits for its commit to reach the disk). Under
// load (the last batch had LINGER_FROM messages or more) an idle writer
// waits until LINGER_UNTIL messages are queued or the oldest has waited
// LINGER_MS, as PostgreSQL's commit_delay does: small batches cost
// PostgreSQL more CPU per row than large ones (a commit, a statement, a
// counters update each), and that CPU is taken from the broker and the
// publishers when they share the machine. So a batch is bounded by count
// (BATCH_MAX) and by time (a message waits at most LINGER_MS plus the
// transactions before it).
// Each message's `pending.done()` is called only after the COMMIT that covers it, and
// batches are acknowledged in the order they were taken; that is when the
// broker gets its PUBACK. A failed transaction (the database down) is
// retried whole with backoff, acknowledging nothing. The queue cannot grow
// past the broker's bound of unacknowledged messages (broker.ts
// MAX_UNACKED): no more arrive until some are acknowledged.
import type pg from 'pg';
import { backoffDelay } from '../../client/backoff.ts';
import type { Logger } from '../log.ts';
import { writeBatch, type BatchResult, type ExtraCounts, type WriteItem } from './transaction.ts';
import { writeInOneStatement } from './single.ts';

/** Messages per transaction. */
export const BATCH_MAX = 500;
/** Transactions at once: one runs its statements while the one before waits for its commit to reach the disk. */
export const PIPELINE = 2;
/**
 * The linger under load. Measured with the ingest benchmark's flow (fsync on, 2 cores): batches of about 100
 * cost PostgreSQL 25 µs per message, of about 180 (10 ms) 22 µs. Unloaded (the last batch under LINGER_FROM)
 * nothing waits, so a paced 2,000 messages/s keeps its few-ms latency.
 */
export const LINGER_MS = 10;
export const LINGER_FROM = 64;
export const LINGER_UNTIL = 250;

const RETRY = { initialMs: 200, maxMs: 5000, factor: 2 };

export interface QueuedWrite extends WriteItem {
  /** Told once the COMMIT that covers the item happened (pipeline.ts Pending). */
  pending: { done(): void };
}

export class BatchWriter {
  private queue: QueuedWrite[] = [];
  /** Transactions running (at most PIPELINE). */
  private inFlight = 0;
  /** Resolves when the last batch started is acknowledged. */
  private acked: Promise<void> = Promise.resolve();
  /** Resolves when the last batch started has run its statements (it may still be committing). */
  private written: Promise<void> = Promise.resolve();
  private scheduled = false;
  /** Set while an idle writer lingers for a bigger batch. */
  private linger: NodeJS.Timeout | undefined;
  private lastBatch = 0;
  private stopped = false;
  private retryTimer: { timer: NodeJS.Timeout; wake: () => void } | undefined;
  private extra: ExtraCounts = new Map();

  constructor(
    private readonly opts: {
      pool: pg.Pool;
      logger: Logger;
      broker: string;
      /** After each commit: what it covered (metrics, dead-letter logs). */
      onCommitted(items: QueuedWrite[], result: BatchResult): void;
    },
  ) {}

  get queued(): number {
    return this.queue.length;
  }

  push(item: QueuedWrite): void {
    this.queue.push(item);
    if (this.linger && this.queue.length >= LINGER_UNTIL) this.endLinger();
    this.kick();
  }

  /** POST outcomes, added to walcast.flow_stats with the next batch (or on their own). */
  count(flow: string, field: 'committed' | 'dead'): void {
    const c = this.extra.get(flow) ?? this.extra.set(flow, { committed: 0, dead: 0 }).get(flow)!;
    c[field]++;
    this.kick();
  }

  /** Resolves once everything queued so far is committed (or the writer stopped). */
  async drain(): Promise<void> {
    if (this.linger) this.endLinger();
    while (this.inFlight > 0 || this.scheduled) {
      await (this.inFlight > 0 ? this.acked : new Promise((r) => setImmediate(r)));
    }
  }

  /** Stops retrying; what is not committed is not acknowledged (the broker sends it again). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.linger);
    this.retryTimer?.wake();
  }

  private kick(): void {
    if (this.scheduled || this.stopped || (!this.queue.length && !this.extra.size)) return;
    // An idle writer sends what it has at once; a busy one starts a second transaction only for a full batch.
    if (this.inFlight >= PIPELINE || (this.inFlight > 0 && this.queue.length < BATCH_MAX)) return;
    this.scheduled = true;
    const wait = this.lingerMs();
    if (wait > 0) {
      this.linger = setTimeout(() => this.endLinger(), wait);
      return;
    }
    // One turn first: the messages of the socket read being parsed join this batch.
    setImmediate(() => {
      this.scheduled = false;
      this.startBatch();
    });
  }

  /** How long an idle writer under load waits for more messages (0: start now). */
  private lingerMs(): number {
    if (this.inFlight > 0 || this.lastBatch < LINGER_FROM || this.queue.length >= LINGER_UNTIL) return 0;
    const oldest = this.queue[0]?.receivedAt ?? Date.now();
    return Math.max(0, oldest + LINGER_MS - Date.now());
  }

  private endLinger(): void {
    clearTimeout(this.linger);
    this.linger = undefined;
    this.scheduled = false;
    this.startBatch();
  }

  private startBatch(): void {
    if (this.stopped || this.inFlight >= PIPELINE || (!this.queue.length && !this.extra.size)) return;
    const batch = this.queue.splice(0, BATCH_MAX);
    this.lastBatch = batch.length;
    const extra = this.extra;
    this.extra = new Map();
    this.inFlight++;
    const before = this.acked;
    // Upserts in the order of the batches (the last value wins): a batch with upserts starts its statements once
    // the one before has run its own (its row locks then keep the same rows waiting until its COMMIT). Inserts
    // do not wait: rows of two batches may interleave, each still acknowledged after its own commit.
    const ordered = batch.some((item) => item.flow.action === 'upsert');
    const after = ordered ? this.written : Promise.resolve();
    let written!: () => void;
    this.written = new Promise<void>((resolve) => (written = resolve));
    const acked = this.commitWithRetry(batch, extra, after, written).then(async (result) => {
      // PUBACKs in the order the messages came (MQTT 4.6.0): after the batch before this one's.
      await before;
      if (!result) return; // stopped: nothing acknowledged, the broker sends it again
      this.opts.onCommitted(batch, result);
      for (let i = 0; i < batch.length; i++) batch[i]!.pending.done();
    });
    this.acked = acked;
    void acked.finally(() => {
      this.inFlight--;
      this.kick();
    });
    this.kick();
  }

  private async commitWithRetry(
    batch: QueuedWrite[],
    extra: ExtraCounts,
    after: Promise<void>,
    written: () => void,
  ): Promise<BatchResult | undefined> {
    await after;
    try {
      return await this.attempts(batch, extra, written);
    } finally {
      written(); // a batch that failed or was stopped does not hold the next one back
    }
  }

  private async attempts(
    batch: QueuedWrite[],
    extra: ExtraCounts,
    written: () => void,
  ): Promise<BatchResult | undefined> {
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        return await this.commit(batch, extra, written);
      } catch (err) {
        if (attempt === 0) {
          this.opts.logger.warn(
            { err, broker: this.opts.broker, messages: batch.length },
            `writing ingested messages of broker ${this.opts.broker} failed; retrying with backoff (nothing is acknowledged until it commits)`,
          );
        }
        await new Promise<void>((wake) => {
          const timer = setTimeout(wake, backoffDelay(attempt, RETRY));
          this.retryTimer = { timer, wake };
        });
        this.retryTimer = undefined;
      }
    }
    return undefined;
  }

  private async commit(batch: QueuedWrite[], extra: ExtraCounts, written: () => void): Promise<BatchResult> {
    const client = await this.opts.pool.connect();
    let broken: Error | undefined;
    try {
      const single = await writeInOneStatement(client, batch, extra);
      if (single) {
        written();
        return single;
      }
      await client.query('BEGIN');
      try {
        const result = await writeBatch(client, batch, extra);
        written();
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch((e: Error) => (broken = e));
        throw err;
      }
    } finally {
      client.release(broken);
    }
  }
}
