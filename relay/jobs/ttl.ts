// The TTL pruner: deletes rows of registered tables whose time column is
// older than the table's ttl. Each batch is its own transaction, so a large
// backlog never becomes one long transaction holding locks and WAL. The
// batch's first statement emits a transactional logical message with prefix
// PRUNE_MESSAGE_PREFIX (replication/messages.ts); the relay drops the delete events of transactions
// that carry it, so expiry never reaches subscribers as deletes.
import { sql, type SQL } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { PgDialect } from 'drizzle-orm/pg-core';
import cron, { type ScheduledTask } from 'node-cron';
import type pg from 'pg';
import { WalcastError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { fullName } from '../table-names.ts';
import { PRUNE_MESSAGE_PREFIX } from '../replication/messages.ts';
import { loadRegistrations, type AnyPgDatabase, type Registration } from '../db/registry.ts';

export const DEFAULT_PRUNE_SCHEDULE = '*/10 * * * * *';
export const DEFAULT_PRUNE_BATCH_SIZE = 5000;

export interface PrunerOptions {
  pool: pg.Pool;
  /** A node-cron expression with seconds; default every 10 seconds. */
  schedule?: string;
  /** Rows deleted per transaction; default 5000. */
  batchSize?: number;
  logger: Logger;
  /** Called after each table that had expired rows, with `schema.table`. */
  onPruned?: (table: string, rows: number) => void;
}

export interface PruneResult {
  /** `schema.table`, unquoted. */
  table: string;
  deleted: number;
}

export interface Pruner {
  start(): void;
  /** Stops the schedule and waits for a run in progress (it ends after its current batch). */
  stop(): Promise<void>;
  /** Prunes every table once; resolves to [] at once if a run is already going. */
  runOnce(): Promise<PruneResult[]>;
}

type Prunable = Registration & { ttl: string; timeColumn: string };

/** What one run needs; `stopping` ends it between batches. */
interface RunContext {
  pool: pg.Pool;
  db: AnyPgDatabase;
  batchSize: number;
  logger: Logger;
  onPruned?: (table: string, rows: number) => void;
  stopping: () => boolean;
}

const dialect = new PgDialect();
// Transactional: decoded inside the batch's transaction, before its deletes.
const PRUNE_MESSAGE = dialect.sqlToQuery(
  sql`SELECT pg_logical_emit_message(true, ${PRUNE_MESSAGE_PREFIX}::text, ''::text)`,
);

export function createPruner(opts: PrunerOptions): Pruner {
  const schedule = opts.schedule ?? DEFAULT_PRUNE_SCHEDULE;
  const batchSize = opts.batchSize ?? DEFAULT_PRUNE_BATCH_SIZE;
  checkOptions(schedule, batchSize);
  const { logger } = opts;
  let task: ScheduledTask | undefined;
  let running: Promise<PruneResult[]> | undefined;
  let stopping = false;
  const ctx: RunContext = { ...opts, db: drizzle(opts.pool), batchSize, stopping: () => stopping };

  function runOnce(): Promise<PruneResult[]> {
    if (running) {
      logger.debug('previous TTL prune still running; skipping');
      return Promise.resolve([]);
    }
    const run = pruneAll(ctx).finally(() => {
      running = undefined;
    });
    running = run;
    return run;
  }

  return {
    runOnce,
    start() {
      if (task) return;
      // The tick returns at once; runOnce itself skips overlapping runs.
      const tick = () => {
        runOnce().catch((err: unknown) => logger.error({ err }, 'TTL prune failed'));
      };
      task = cron.createTask(schedule, tick, { name: 'walcast-ttl', logger: cronLogger(logger) });
      void task.start();
    },
    async stop() {
      const t = task;
      task = undefined;
      await t?.destroy();
      stopping = true;
      await running?.catch(() => {});
      stopping = false;
    },
  };
}

async function pruneAll(ctx: RunContext): Promise<PruneResult[]> {
  const registrations = (await loadRegistrations(ctx.db)).filter(isPrunable);
  const results: PruneResult[] = [];
  for (const r of registrations) {
    if (ctx.stopping()) break;
    const table = fullName(r);
    let deleted: number;
    try {
      deleted = await pruneTable(ctx, r);
    } catch (err) {
      // One broken table (renamed column, lock timeout) must not starve the others.
      ctx.logger.error({ err, table }, 'pruning expired rows failed');
      continue;
    }
    results.push({ table, deleted });
    if (deleted > 0) {
      ctx.logger.info({ table, rows: deleted }, 'pruned expired rows');
      ctx.onPruned?.(table, deleted);
    }
  }
  return results;
}

function checkOptions(schedule: string, batchSize: number): void {
  if (!cron.validate(schedule)) {
    throw new WalcastError('config_invalid', {
      detail: `the TTL prune schedule '${schedule}' is not a cron expression; use e.g. '*/10 * * * * *' (every 10 seconds)`,
    });
  }
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new WalcastError('config_invalid', {
      detail: `the TTL prune batch size must be a positive integer, not ${batchSize}`,
    });
  }
}

function isPrunable(r: Registration): r is Prunable {
  return r.ttl !== null && r.timeColumn !== null;
}

/** Deletes the table's expired rows batch by batch; returns how many. */
async function pruneTable(ctx: RunContext, r: Prunable): Promise<number> {
  const query = dialect.sqlToQuery(deleteExpired(r, ctx.batchSize));
  let total = 0;
  for (;;) {
    const deleted = await pruneBatch(ctx.pool, query);
    total += deleted;
    // A partitioned table may delete more than batchSize (see deleteExpired).
    if (deleted < ctx.batchSize || ctx.stopping()) return total;
  }
}

/**
 * One batch: up to `limit` expired rows, found by ctid. Rows locked by the
 * application are skipped until a later run. On a partitioned table a ctid
 * can match rows of several partitions; the repeated condition keeps every
 * extra match an expired row too.
 */
function deleteExpired(r: Prunable, limit: number): SQL {
  const table = sql`${sql.identifier(r.schema)}.${sql.identifier(r.table)}`;
  const expired = sql`${sql.identifier(r.timeColumn)} < now() - ${r.ttl}::interval`;
  return sql`DELETE FROM ${table} WHERE ${expired} AND ctid = ANY (ARRAY(
    SELECT ctid FROM ${table} WHERE ${expired} LIMIT ${limit} FOR UPDATE SKIP LOCKED))`;
}

async function pruneBatch(pool: pg.Pool, query: { sql: string; params: unknown[] }): Promise<number> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    await client.query(PRUNE_MESSAGE.sql, PRUNE_MESSAGE.params);
    const { rowCount } = await client.query(query.sql, query.params);
    // Nothing expired: roll back, so the message costs no commit and no event.
    await client.query(rowCount ? 'COMMIT' : 'ROLLBACK');
    return rowCount ?? 0;
  } catch (err) {
    await client.query('ROLLBACK').catch((e: Error) => (broken = e));
    throw err;
  } finally {
    client.release(broken);
  }
}

function cronLogger(logger: Logger) {
  return {
    info: (message: string) => logger.debug({ job: 'ttl' }, message),
    debug: (message: string | Error) => logger.debug({ job: 'ttl' }, String(message)),
    warn: (message: string) => logger.warn({ job: 'ttl' }, message),
    error: (message: string | Error, err?: Error) =>
      logger.error({ job: 'ttl', err: err ?? message }, 'node-cron error'),
  };
}
