// Start-up checks and the replication slot. Each check that fails says what
// is wrong and the fix (errors.ts). The slot is permanent, so rows committed
// while walcast is down are decoded when it returns.
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { SQLSTATE, WalcastError, sqlState } from '../errors.ts';
import type { Logger } from '../log.ts';
import { parseLsn, type Lsn } from './lsn.ts';

export interface SlotInfo {
  slot: string;
  created: boolean;
  /** The slot's incarnation (walcast.slots): new whenever the slot is created. */
  epoch: string;
  /** The slot's confirmed_flush_lsn: streaming resumes after it. */
  confirmedFlushLsn: Lsn;
}

interface SlotRow {
  plugin: string;
  database: string;
  active: boolean;
  active_pid: number | null;
  confirmed_flush_lsn: string | null;
}

export async function checkServer(pool: pg.Pool): Promise<void> {
  const { rows } = await pool.query<{ wal_level: string; rolreplication: boolean; rolsuper: boolean; role: string }>(
    `SELECT current_setting('wal_level') AS wal_level, r.rolreplication, r.rolsuper, current_user AS role
       FROM pg_roles r WHERE r.rolname = current_user`,
  );
  const row = rows[0];
  if (!row) throw new Error('current_user has no pg_roles row');
  if (row.wal_level !== 'logical') throw new WalcastError('wal_level_not_logical', { walLevel: row.wal_level });
  if (!row.rolreplication && !row.rolsuper) throw new WalcastError('replication_not_permitted', { role: row.role });
}

async function readSlot(pool: pg.Pool, slot: string): Promise<SlotRow | undefined> {
  const { rows } = await pool.query<SlotRow>(
    `SELECT plugin, database, active, active_pid, confirmed_flush_lsn::text AS confirmed_flush_lsn
       FROM pg_replication_slots WHERE slot_name = $1`,
    [slot],
  );
  return rows[0];
}

/**
 * Make sure the slot exists, belongs to this database, uses pgoutput and is
 * free, and that a WAL sender is free to stream it. A slot still held by a
 * relay that just died is waited for, up to `waitMs`.
 */
export async function ensureSlot(pool: pg.Pool, slot: string, logger: Logger, waitMs = 10_000): Promise<SlotInfo> {
  const { rows: dbRows } = await pool.query<{ db: string }>('SELECT current_database() AS db');
  const database = dbRows[0]!.db;
  let created = false;
  let row = await readSlot(pool, slot);
  if (!row) {
    await createSlot(pool, slot);
    created = true;
    logger.info({ slot }, 'replication slot created');
    row = await readSlot(pool, slot);
    if (!row) throw new Error(`slot ${slot} vanished right after it was created`);
  }
  if (row.plugin !== 'pgoutput') throw new WalcastError('slot_wrong_plugin', { slot, plugin: row.plugin });
  if (row.database !== database) throw new WalcastError('slot_wrong_database', { slot, database: row.database });
  const deadline = Date.now() + waitMs;
  while (row.active && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    row = (await readSlot(pool, slot)) ?? row;
  }
  if (row.active) throw new WalcastError('slot_in_use', { slot, pid: row.active_pid ?? '?' });
  await checkWalSenders(pool);
  const confirmed = row.confirmed_flush_lsn ? parseLsn(row.confirmed_flush_lsn) : 0n;
  const epoch = await slotEpoch(pool, slot, created);
  return { slot, created, epoch, confirmedFlushLsn: confirmed };
}

/**
 * The slot vanished or can no longer be used: drop what is left of it and
 * create it again, with a new epoch. Events committed in between are lost to
 * the stream; clients learn it from `recovered: false`.
 */
export async function recreateSlot(pool: pg.Pool, slot: string, logger: Logger, reason: string): Promise<SlotInfo> {
  let row = await readSlot(pool, slot);
  // The watchdog may ask while our own WAL sender is still exiting.
  for (let i = 0; row?.active && i < 50; i++) {
    await new Promise((r) => setTimeout(r, 200));
    row = await readSlot(pool, slot);
  }
  if (row && !row.active) {
    await pool.query('SELECT pg_drop_replication_slot($1)', [slot]).catch((err: unknown) => {
      if (sqlState(err) !== SQLSTATE.undefinedObject) throw err;
    });
  }
  const info = await ensureSlot(pool, slot, logger);
  logger.warn(
    { slot, epoch: info.epoch, reason },
    'replication slot recreated: events committed while it was missing are lost; clients resync',
  );
  return info;
}

async function slotEpoch(pool: pg.Pool, slot: string, created: boolean): Promise<string> {
  const fresh = randomBytes(4).toString('hex');
  const { rows } = await pool.query<{ epoch: string }>(
    `INSERT INTO walcast.slots AS s (slot_name, epoch) VALUES ($1, $2)
     ON CONFLICT (slot_name) DO UPDATE SET epoch = CASE WHEN $3 THEN excluded.epoch ELSE s.epoch END,
       created_at = CASE WHEN $3 THEN now() ELSE s.created_at END
     RETURNING epoch`,
    [slot, fresh, created],
  );
  return rows[0]!.epoch;
}

async function createSlot(pool: pg.Pool, slot: string): Promise<void> {
  try {
    await pool.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
  } catch (err) {
    const state = sqlState(err);
    if (state === SQLSTATE.duplicateObject) return; // another relay created it first
    if (state === SQLSTATE.configurationLimitExceeded) {
      const { rows } = await pool.query<{ max: string }>(`SELECT current_setting('max_replication_slots') AS max`);
      throw new WalcastError('no_free_replication_slot', { slot, max: rows[0]?.max }, err);
    }
    if (state === SQLSTATE.insufficientPrivilege) {
      const { rows } = await pool.query<{ role: string }>('SELECT current_user AS role');
      throw new WalcastError('replication_not_permitted', { role: rows[0]?.role }, err);
    }
    throw err;
  }
}

async function checkWalSenders(pool: pg.Pool): Promise<void> {
  const { rows } = await pool.query<{ max: number; used: number }>(
    `SELECT current_setting('max_wal_senders')::int AS max,
            (SELECT count(*)::int FROM pg_stat_replication) AS used`,
  );
  const r = rows[0]!;
  if (r.used >= r.max) throw new WalcastError('no_free_wal_sender', { max: r.max });
}
