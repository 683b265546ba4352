// The doctor's checks: read-only queries against the server and the walcast
// schema, each turned into findings that say what is wrong and the fix.
// Nothing here changes the database: an unused walcast slot is reported,
// never dropped (dropping it loses what it holds for a relay that returns).
import type pg from 'pg';
import { parseLsn } from '../replication/lsn.ts';
import { fullName } from '../table-names.ts';

export type Level = 'ok' | 'warning' | 'error';

export interface Finding {
  level: Level;
  check: string;
  message: string;
  fix?: string;
}

export interface DoctorOptions {
  slot: string;
  publication: string;
}

export async function diagnose(pool: pg.Pool, opts: DoctorOptions): Promise<Finding[]> {
  const findings: Finding[] = [];
  await checkSettings(pool, findings);
  const { rows } = await pool.query<{ ok: boolean }>(
    `SELECT to_regclass('walcast.tables') IS NOT NULL AND to_regclass('walcast.slots') IS NOT NULL AS ok`,
  );
  if (!rows[0]!.ok) {
    findings.push({
      level: 'error',
      check: 'schema',
      message: 'the walcast schema is not installed in this database',
      fix: 'walcast migrate (or start a relay, which installs it)',
    });
    return findings;
  }
  await checkSlots(pool, opts, findings);
  const registered = await checkPublication(pool, opts, findings);
  for (const r of registered) await checkTable(pool, r, findings);
  return findings;
}

async function checkSettings(pool: pg.Pool, out: Finding[]): Promise<void> {
  const { rows } = await pool.query<{ wal_level: string; keep: string; version: number }>(
    `SELECT current_setting('wal_level') AS wal_level, current_setting('max_slot_wal_keep_size') AS keep,
            current_setting('server_version_num')::int AS version`,
  );
  const s = rows[0]!;
  out.push(
    s.wal_level === 'logical'
      ? { level: 'ok', check: 'wal_level', message: 'wal_level is logical' }
      : {
          level: 'error',
          check: 'wal_level',
          message: `wal_level is '${s.wal_level}'; logical replication needs 'logical'`,
          fix: 'ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL',
        },
  );
  if (s.version < 140000) {
    out.push({
      level: 'error',
      check: 'version',
      message: `PostgreSQL ${s.version} is older than 14`,
      fix: 'upgrade PostgreSQL to 14 or later',
    });
  }
  out.push(
    s.keep === '-1'
      ? {
          level: 'warning',
          check: 'max_slot_wal_keep_size',
          message: 'max_slot_wal_keep_size is unlimited (-1): a slot nobody reads keeps WAL until the disk fills',
          fix: "ALTER SYSTEM SET max_slot_wal_keep_size = '10GB'; SELECT pg_reload_conf();  (size it above the recovery window's WAL)",
        }
      : {
          level: 'ok',
          check: 'max_slot_wal_keep_size',
          message: `max_slot_wal_keep_size is ${s.keep}: beyond it a slot is invalidated and walcast recreates it (clients resync)`,
        },
  );
}

interface SlotRow {
  slot_name: string;
  active: boolean;
  wal_status: string | null;
  current: string;
  confirmed: string | null;
  restart: string | null;
  known: boolean;
}

async function checkSlots(pool: pg.Pool, opts: DoctorOptions, out: Finding[]): Promise<void> {
  // walcast's slots: those it recorded in walcast.slots, and the configured one.
  const { rows } = await pool.query<SlotRow>(
    `SELECT s.slot_name, s.active, s.wal_status, pg_current_wal_lsn()::text AS current,
            s.confirmed_flush_lsn::text AS confirmed, s.restart_lsn::text AS restart, w.slot_name IS NOT NULL AS known
       FROM pg_replication_slots s LEFT JOIN walcast.slots w ON w.slot_name = s.slot_name
      WHERE s.database = current_database() AND s.plugin = 'pgoutput' AND (w.slot_name IS NOT NULL OR s.slot_name = $1)
      ORDER BY s.slot_name`,
    [opts.slot],
  );
  if (!rows.some((r) => r.slot_name === opts.slot)) {
    out.push({
      level: 'warning',
      check: 'slot',
      message: `slot ${opts.slot} does not exist yet`,
      fix: 'start a relay (walcast start): it creates the slot',
    });
  }
  for (const r of rows) {
    const current = parseLsn(r.current);
    const lag = r.confirmed ? current - parseLsn(r.confirmed) : 0n;
    const retained = r.restart ? current - parseLsn(r.restart) : 0n;
    const size = `confirmed ${mb(lag)} behind the current WAL, retaining ${mb(retained)}`;
    if (r.wal_status === 'lost' || r.wal_status === 'unreserved') {
      out.push({
        level: 'error',
        check: 'slot',
        message: `slot ${r.slot_name} wal_status is '${r.wal_status}' (${size}): it lost, or is about to lose, WAL it needs`,
        fix: 'start (or restart) its relay: it recreates the slot with a new epoch and clients resync; or drop it if unused',
      });
    } else if (!r.active) {
      out.push({
        level: 'warning',
        check: 'slot',
        message: `slot ${r.slot_name} is not used by any relay (inactive), ${size}`,
        fix: `start a relay with WALCAST_SLOT=${r.slot_name}; if none will use it again: SELECT pg_drop_replication_slot('${r.slot_name}')`,
      });
    } else {
      out.push({ level: 'ok', check: 'slot', message: `slot ${r.slot_name} is active, ${size}` });
    }
  }
}

interface Registered {
  schema: string;
  table: string;
  channel: string;
  exists: boolean;
  published: boolean;
}

async function checkPublication(pool: pg.Pool, opts: DoctorOptions, out: Finding[]): Promise<Registered[]> {
  const pub = opts.publication;
  const { rows: p } = await pool.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [pub]);
  if (p.length === 0) {
    out.push({
      level: 'error',
      check: 'publication',
      message: `publication ${pub} does not exist`,
      fix: 'walcast migrate (or start a relay): it creates the publication',
    });
  }
  const { rows: regs } = await pool.query<Registered>(
    `SELECT t.schema_name AS schema, t.table_name AS table, t.channel_column AS channel,
            c.oid IS NOT NULL AS exists, c.oid IS NOT NULL AND walcast.publication_has($1, c.oid) AS published
       FROM walcast.tables t
       LEFT JOIN pg_namespace n ON n.nspname = t.schema_name
       LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.table_name
      WHERE NOT (t.schema_name = 'walcast' AND t.table_name = 'tables')
      ORDER BY 1, 2`,
    [pub],
  );
  for (const r of regs) {
    const name = fullName(r);
    if (!r.exists)
      out.push({
        level: 'error',
        check: 'registration',
        message: `${name} is registered but does not exist`,
        fix: `SELECT walcast.unregister_table('${name}')`,
      });
    else if (!r.published)
      out.push({
        level: 'error',
        check: 'publication',
        message: `${name} is registered but not in publication ${pub}: its rows are not streamed`,
        fix: `walcast register ${name} --channel ${r.channel}`,
      });
    else
      out.push({
        level: 'ok',
        check: 'publication',
        message: `${name} is registered (channel ${r.channel}) and published`,
      });
  }
  const { rows: extra } = await pool.query<{ name: string }>(
    `SELECT pt.schemaname || '.' || pt.tablename AS name FROM pg_publication_tables pt
      WHERE pt.pubname = $1 AND NOT (pt.schemaname = 'walcast' AND pt.tablename = 'tables')
        AND NOT EXISTS (SELECT 1 FROM walcast.tables t WHERE t.schema_name = pt.schemaname AND t.table_name = pt.tablename)
      ORDER BY 1`,
    [pub],
  );
  for (const r of extra) {
    out.push({
      level: 'warning',
      check: 'publication',
      message: `${r.name} is in publication ${pub} but not registered: its rows are decoded and dropped`,
      fix: `walcast register ${r.name} --channel <column>, or ALTER PUBLICATION ${pub} DROP TABLE ${r.name}`,
    });
  }
  return regs.filter((r) => r.exists);
}

async function checkTable(pool: pg.Pool, r: Registered, out: Finding[]): Promise<void> {
  const name = fullName(r);
  const { rows } = await pool.query<{ indexed: boolean; identity: string; changes: string; key_has_channel: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                     WHERE i.indrelid = c.oid AND a.attname = $2) AS indexed,
            c.relreplident AS identity,
            coalesce(s.n_tup_upd + s.n_tup_del, 0)::text AS changes,
            EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                     WHERE i.indrelid = c.oid AND a.attname = $2
                       AND ((c.relreplident = 'd' AND i.indisprimary) OR (c.relreplident = 'i' AND i.indisreplident))) AS key_has_channel
       FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
      WHERE c.oid = format('%I.%I', $1::text, $3::text)::regclass`,
    [r.schema, r.channel, r.table],
  );
  const t = rows[0];
  if (!t) return;
  if (!t.indexed) {
    out.push({
      level: 'warning',
      check: 'index',
      message: `${name} has no index that starts with its channel column ${r.channel}: a snapshot (subscribe with snapshot:true) reads the channel by scanning the whole table`,
      fix: `CREATE INDEX CONCURRENTLY ON ${name} (${r.channel})`,
    });
  }
  const carries = t.identity === 'f' || t.key_has_channel;
  if (carries) {
    out.push({
      level: 'ok',
      check: 'replica identity',
      message: `${name}: deletes and updates carry the channel (REPLICA IDENTITY ${identityName(t.identity)})`,
    });
    return;
  }
  const changed = BigInt(t.changes) > 0n;
  out.push({
    level: changed ? 'error' : 'warning',
    check: 'replica identity',
    message:
      `${name}: REPLICA IDENTITY ${identityName(t.identity)} does not carry ${r.channel}, so deletes (and updates that move a row) cannot be routed` +
      (changed ? ` and the table has had ${t.changes} updates or deletes` : ' (no updates or deletes seen yet)'),
    fix: `ALTER TABLE ${name} REPLICA IDENTITY FULL  (or walcast register ${name} --channel ${r.channel}, which does it)`,
  });
}

function identityName(code: string): string {
  return ({ d: 'DEFAULT', f: 'FULL', i: 'USING INDEX', n: 'NOTHING' } as Record<string, string>)[code] ?? code;
}

function mb(bytes: bigint): string {
  return bytes < 1024n * 1024n ? `${bytes} bytes` : `${(Number(bytes) / 1024 / 1024).toFixed(1)} MiB`;
}
