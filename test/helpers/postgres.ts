// A fresh database per test file on the suite's PostgreSQL (see
// scripts/test.ts), dropped with its replication slots afterwards.
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export interface TestDatabase {
  url: string;
  name: string;
  /** A pool on the fresh database, for the test's own SQL. */
  pool: pg.Pool;
  query<T extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<T[]>;
  drop(): Promise<void>;
}

export function serverUrl(): string {
  const url = process.env.TEST_DATABASE_URL;
  if (!url) throw new Error('TEST_DATABASE_URL is not set: run the tests with `npm test`');
  return url;
}

export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(5).toString('hex')}`;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const admin = new pg.Client({ connectionString: serverUrl() });
  await admin.connect();
  const name = uniqueName('walcast_test');
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = withDatabase(serverUrl(), name);
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  return {
    url,
    name,
    pool,
    async query(text, values) {
      return (await pool.query(text, values as unknown[])).rows;
    },
    async drop() {
      await pool.end();
      await dropDatabase(name);
    },
  };
}

export async function dropDatabase(name: string): Promise<void> {
  const admin = new pg.Client({ connectionString: serverUrl() });
  await admin.connect();
  try {
    // Slots outlive the database's connections; drop them first (inactive
    // ones only: a slot still active means a relay was leaked by the test).
    for (let i = 0; i < 50; i++) {
      const { rows } = await admin.query('SELECT slot_name, active FROM pg_replication_slots WHERE database = $1', [
        name,
      ]);
      if (rows.length === 0) break;
      for (const r of rows) {
        if (!r.active) await admin.query('SELECT pg_drop_replication_slot($1)', [r.slot_name]).catch(() => {});
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}
