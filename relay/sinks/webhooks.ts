// The webhooks of the active relay: reads walcast.webhooks every second (so
// add_webhook, remove_webhook, enable_webhook and disable_webhook take effect
// without a restart), runs one WebhookDelivery per enabled webhook, and
// makes each a member of the commit gate: the slot's confirmed position does
// not pass the slowest enabled webhook.
import type pg from 'pg';
import type { Logger } from '../log.ts';
import type { Lsn } from '../replication/lsn.ts';
import { WebhookDelivery, type WebhookDefinition, type WebhookLimits } from './webhook-delivery.ts';
import type { SinkEvent } from './message.ts';

/** How often walcast.webhooks is read, ms. */
export const WEBHOOK_POLL_MS = 1000;

interface WebhookRow {
  name: string;
  url: string;
  secret: string;
  channels: string;
  tables: string[] | null;
  cursor: string | null;
}

export interface WebhookStatus {
  name: string;
  delivered: number;
  failed: number;
  deadLettered: number;
  retrying: boolean;
  lag: { events: number; seconds: number };
}

export interface WebhooksOptions {
  pool: pg.Pool;
  logger: Logger;
  limits: WebhookLimits;
  /** Where a webhook without a cursor starts: the stream point of the server's current WAL position. */
  startPoint(): Promise<string>;
  /** Membership of the commit gate. */
  join(name: string): void;
  leave(name: string): void;
  release(name: string, lsn: Lsn, timeMs: number): void;
  rewind(): void;
}

export class Webhooks {
  readonly deliveries = new Map<string, WebhookDelivery>();
  private timer: NodeJS.Timeout | undefined;
  private loading: Promise<void> | undefined;
  private stopped = false;
  /** Disabled after a 410, until walcast.webhooks says so too (a read in flight may still list them). */
  private readonly gone = new Set<string>();

  constructor(private readonly opts: WebhooksOptions) {}

  async start(): Promise<void> {
    await this.load();
    this.timer = setInterval(() => void this.load(), WEBHOOK_POLL_MS);
    this.timer.unref();
  }

  wants(key: string): boolean {
    for (const d of this.deliveries.values()) if (d.wants(key)) return true;
    return false;
  }

  event(e: SinkEvent): void {
    for (const d of this.deliveries.values()) d.event(e);
  }

  commit(lsn: Lsn, timeMs: number): void {
    for (const d of this.deliveries.values()) d.commit(lsn, timeMs);
  }

  status(): WebhookStatus[] {
    return [...this.deliveries.values()].map((d) => ({
      name: d.name,
      ...d.counters,
      retrying: d.attempt > 0,
      lag: d.lag,
    }));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.loading;
    // Stopped, not removed: they stay in the gate, so the last confirmation
    // does not pass what they have not delivered.
    for (const d of this.deliveries.values()) d.stop();
  }

  load(): Promise<void> {
    return (this.loading ??= this.sync()
      .catch((err: unknown) => this.opts.logger.warn({ err }, 'reading walcast.webhooks failed; retrying in a second'))
      .finally(() => (this.loading = undefined)));
  }

  private async sync(): Promise<void> {
    const { rows } = await this.opts.pool.query<WebhookRow>(
      'SELECT name, url, secret, channels, tables, cursor FROM walcast.webhooks WHERE enabled ORDER BY name',
    );
    if (this.stopped) return;
    const seen = new Set<string>();
    for (const name of this.gone) if (!rows.some((r) => r.name === name)) this.gone.delete(name);
    for (const row of rows) {
      if (this.gone.has(row.name)) continue;
      seen.add(row.name);
      const def = await this.definition(row);
      if (this.stopped) return;
      const current = this.deliveries.get(row.name);
      if (current) current.update(def);
      else this.add(def);
    }
    for (const name of [...this.deliveries.keys()]) if (!seen.has(name)) this.remove(name);
  }

  /** A webhook without a cursor starts now: the cursor is set to the current WAL position first. */
  private async definition(row: WebhookRow): Promise<WebhookDefinition> {
    let cursor = row.cursor;
    if (cursor === null) {
      const point = await this.opts.startPoint();
      const { rows } = await this.opts.pool.query<{ cursor: string }>(
        'UPDATE walcast.webhooks SET cursor = coalesce(cursor, $2) WHERE name = $1 RETURNING cursor',
        [row.name, point],
      );
      cursor = rows[0]?.cursor ?? point;
    }
    return { name: row.name, url: row.url, secret: row.secret, channels: row.channels, tables: row.tables, cursor };
  }

  private add(def: WebhookDefinition): void {
    const { pool, logger, limits } = this.opts;
    this.opts.join(def.name);
    const delivery = new WebhookDelivery(def, {
      pool,
      logger,
      limits,
      onSafe: (lsn, timeMs) => this.opts.release(def.name, lsn, timeMs),
      onRewind: () => this.opts.rewind(),
      onGone: (name) => {
        this.gone.add(name);
        this.remove(name);
      },
    });
    this.deliveries.set(def.name, delivery);
    logger.info({ webhook: def.name, cursor: def.cursor }, `webhook ${def.name} delivering after ${def.cursor}`);
  }

  private remove(name: string): void {
    const d = this.deliveries.get(name);
    if (!d) return;
    d.stop();
    this.deliveries.delete(name);
    this.opts.leave(name);
    this.opts.logger.info({ webhook: name }, `webhook ${name} stopped (removed or disabled)`);
  }
}
