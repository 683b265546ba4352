// One webhook's delivery: the events it matches, in commit order, in batches
// (up to a count and a size), one batch in flight at a time, signed per
// Standard Webhooks, retried with backoff until the receiver answers 2xx, or
// 410 (the webhook is disabled), or the attempts run out (the batch goes to
// walcast.webhook_dead_letters and delivery goes on).
//
// The cursor (walcast.webhooks.cursor: the last delivered position) is
// written after a 2xx (while the next batch is already sent), before the
// batch's commits are released to the slot, so a restart or takeover resumes
// exactly after it; webhook-id is the batch's first position, the same on
// every retry and after a restart.
import type pg from 'pg';
import type { Logger } from '../log.ts';
import type { Lsn } from '../replication/lsn.ts';
import { compile } from '../auth/grants.ts';
import { PublishQueue, orderKey, type QueuedMessage } from './queue.ts';
import { msgIdOf, parseMsgId, type SinkEvent } from './message.ts';
import { secretKey, signWebhook } from './signing.ts';
import { outcome, retryDelay } from './retry.ts';

export interface WebhookDefinition {
  name: string;
  url: string;
  secret: string;
  channels: string;
  tables: string[] | null;
  cursor: string;
}

export interface WebhookLimits {
  batchEvents: number;
  batchBytes: number;
  maxAttempts: number;
  timeoutMs: number;
  retry: { initialMs: number; maxMs: number; factor: number };
  bufferBytes: number;
}

interface WebhookMessage extends QueuedMessage {
  position: string;
  frame: string;
}

export interface WebhookCounters {
  delivered: number;
  failed: number;
  deadLettered: number;
}

/** Bytes of a response body kept in a dead letter. */
const BODY_EXCERPT = 1000;

export class WebhookDelivery {
  readonly counters: WebhookCounters = { delivered: 0, failed: 0, deadLettered: 0 };
  /** Attempts of the batch in flight that failed; > 0: retrying. */
  attempt = 0;
  private def: WebhookDefinition;
  private key: Buffer | undefined;
  /** The channel pattern, compiled once (a profile of a webhook drain showed it compiled per event). */
  private channels: RegExp[];
  private readonly queue: PublishQueue<WebhookMessage>;
  private batch: WebhookMessage[] | undefined;
  private timer: NodeJS.Timeout | undefined;
  private abort: AbortController | undefined;
  private stopped = false;
  /** Cursor and dead-letter writes, in order. */
  private records: Promise<void> = Promise.resolve();
  /** Messages pushed and not taken into a batch yet. */
  private unsent = 0;
  private unsentBytes = 0;

  constructor(
    def: WebhookDefinition,
    private readonly opts: {
      pool: pg.Pool;
      logger: Logger;
      limits: WebhookLimits;
      onSafe(lsn: Lsn, timeMs: number): void;
      onRewind(): void;
      /** The receiver answered 410: the webhook was disabled. */
      onGone(name: string): void;
    },
  ) {
    this.def = def;
    this.key = secretKey(def.secret);
    this.channels = compile([def.channels], null);
    this.queue = new PublishQueue<WebhookMessage>(opts.limits.bufferBytes, {
      onSafe: opts.onSafe,
      onRewind: opts.onRewind,
    });
    this.queue.resync(parseMsgId(def.cursor) ?? '');
  }

  get name(): string {
    return this.def.name;
  }

  /** add_webhook called again: the new URL, secret and filters apply from now on. */
  update(def: WebhookDefinition): void {
    this.def = { ...def, cursor: this.def.cursor };
    this.key = secretKey(def.secret);
    this.channels = compile([def.channels], null);
  }

  get lag(): { events: number; seconds: number } {
    const oldest = this.queue.oldest();
    return { events: this.queue.pending, seconds: oldest ? Math.max(0, (Date.now() - oldest.commitTimeMs) / 1000) : 0 };
  }

  wants(key: string): boolean {
    return this.queue.wants(key);
  }

  event(e: SinkEvent): void {
    const { event } = e;
    if (this.def.tables && !this.def.tables.includes(event.table)) return;
    const channel = event.channel;
    if (channel === undefined ? this.def.channels !== '*' : !this.channels.some((re) => re.test(channel))) return;
    const key = orderKey(e.commitLsn, e.index, e.part);
    if (!this.queue.wants(key)) return;
    const bytes = Buffer.byteLength(e.frame);
    this.queue.push({
      key,
      bytes,
      commitTimeMs: e.commitTimeMs,
      position: msgIdOf(event.position, e.part),
      frame: e.frame,
    });
    // Batches hold whole transactions, unless one is larger than a batch.
    this.unsent++;
    this.unsentBytes += bytes;
    const { batchEvents, batchBytes } = this.opts.limits;
    if (this.unsent >= batchEvents || this.unsentBytes >= batchBytes) this.kick();
  }

  commit(lsn: Lsn, timeMs: number): void {
    this.queue.commit(lsn, timeMs);
    this.kick();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.abort?.abort();
  }

  private kick(): void {
    if (this.batch || this.stopped) return;
    const batch: WebhookMessage[] = [];
    let bytes = 0;
    const { batchEvents, batchBytes } = this.opts.limits;
    while (batch.length < batchEvents) {
      const m = this.queue.take();
      if (!m) break;
      batch.push(m);
      bytes += m.bytes;
      this.unsent--;
      this.unsentBytes -= m.bytes;
      if (bytes >= batchBytes) break;
    }
    if (batch.length === 0) return;
    this.batch = batch;
    this.attempt = 0;
    void this.send();
  }

  private async send(): Promise<void> {
    const batch = this.batch!;
    const body = `{"events":[${batch.map((m) => m.frame).join(',')}]}`;
    const id = batch[0]!.position;
    let status: number | undefined;
    let text = '';
    let retryAfter: string | null = null;
    try {
      if (!this.key) throw new Error(`the secret of webhook ${this.def.name} is not a whsec_ secret`);
      this.abort = new AbortController();
      const timeout = setTimeout(() => this.abort?.abort(), this.opts.limits.timeoutMs);
      const res = await fetch(this.def.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...signWebhook(this.key, id, Date.now() / 1000, body) },
        body,
        signal: this.abort.signal,
      }).finally(() => clearTimeout(timeout));
      status = res.status;
      retryAfter = res.headers.get('retry-after');
      text = await res.text().catch(() => '');
    } catch (err) {
      text = (err as Error).message;
    }
    if (this.stopped) return;
    const result = status === undefined ? 'retry' : outcome(status);
    if (result === 'delivered') return this.settle(batch, () => this.saveCursor(batch));
    if (result === 'gone') return this.gone(status!);
    this.counters.failed++;
    this.attempt++;
    if (this.attempt >= this.opts.limits.maxAttempts) {
      const attempts = this.attempt;
      return this.settle(batch, () => this.deadLetter(batch, id, attempts, status, text));
    }
    const delay = retryDelay(this.attempt, retryAfter, this.opts.limits.retry);
    this.opts.logger.warn(
      { webhook: this.def.name, status, attempt: this.attempt, delayMs: delay, detail: text.slice(0, 200) },
      `webhook ${this.def.name} delivery failed; retrying`,
    );
    this.timer = setTimeout(() => void this.send(), delay);
  }

  /**
   * The batch is done (delivered, or dead-lettered): the next one goes out at
   * once, while its record (the cursor, or the dead letter) is written; the
   * batch is released to the slot only once its record is stored. Records are
   * written in order, each retried until the database takes it.
   */
  private settle(batch: WebhookMessage[], record: () => Promise<void>): void {
    this.def.cursor = batch[batch.length - 1]!.position;
    this.batch = undefined;
    this.records = this.records.then(async () => {
      for (let attempt = 1; !this.stopped; attempt++) {
        try {
          await record();
          break;
        } catch (err) {
          this.opts.logger.warn(
            { err, webhook: this.def.name },
            `recording webhook ${this.def.name}'s progress failed; retrying`,
          );
          await new Promise((r) => setTimeout(r, retryDelay(attempt, null, this.opts.limits.retry)));
        }
      }
      if (this.stopped) return;
      for (const m of batch) this.queue.ack(m);
    });
    this.kick();
  }

  private async saveCursor(batch: WebhookMessage[]): Promise<void> {
    await this.opts.pool.query('UPDATE walcast.webhooks SET cursor = $2 WHERE name = $1', [
      this.def.name,
      batch[batch.length - 1]!.position,
    ]);
    this.counters.delivered += batch.length;
  }

  private async deadLetter(
    batch: WebhookMessage[],
    id: string,
    attempts: number,
    status: number | undefined,
    text: string,
  ): Promise<void> {
    const client = await this.opts.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(
        `INSERT INTO walcast.webhook_dead_letters (webhook, message_id, events, attempts, last_status, last_body) VALUES ($1, $2, $3::jsonb, $4, $5, $6)`,
        [
          this.def.name,
          id,
          `[${batch.map((m) => m.frame).join(',')}]`,
          attempts,
          status ?? null,
          text.slice(0, BODY_EXCERPT),
        ],
      );
      await client.query('UPDATE walcast.webhooks SET cursor = $2 WHERE name = $1', [
        this.def.name,
        batch[batch.length - 1]!.position,
      ]);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
    this.counters.deadLettered += batch.length;
    this.opts.logger.error(
      { webhook: this.def.name, status, attempts, id },
      `webhook ${this.def.name}: batch ${id} failed ${attempts} times; moved to walcast.webhook_dead_letters`,
    );
  }

  private async gone(status: number): Promise<void> {
    this.stopped = true;
    const reason = `the receiver answered ${status} Gone`;
    await this.opts.pool
      .query('UPDATE walcast.webhooks SET enabled = false, disabled_reason = $2, updated_at = now() WHERE name = $1', [
        this.def.name,
        reason,
      ])
      .catch((err: unknown) => this.opts.logger.warn({ err, webhook: this.def.name }, 'disabling the webhook failed'));
    this.opts.logger.warn(
      { webhook: this.def.name, url: this.def.url },
      `webhook ${this.def.name} disabled: ${reason}`,
    );
    this.opts.onGone(this.def.name);
  }
}
