// Installs the walcast schema: applies the numbered files of sql/ (then
// sql/example/ when asked) that walcast.migrations does not list yet, each
// in its own transaction with its walcast.migrations row, so a failed file
// leaves no trace and the next start retries it. Files must not contain
// BEGIN/COMMIT. A session advisory lock serialises relays starting at once:
// the second waits, then finds nothing left to apply.
import { readdir, readFile } from 'node:fs/promises';
import type pg from 'pg';
import { SQLSTATE, sqlState, WalcastError } from '../errors.ts';
import { silentLogger, type Logger } from '../log.ts';
import { packageUrl } from '../paths.ts';

export const SQL_DIR = packageUrl('sql/');

// pg_advisory_lock(int4, int4) key: 'walc' in ASCII, then 1 for migrations.
const LOCK_KEY = [0x77616c63, 1];

export interface MigrateOptions {
  /** Also apply sql/example/ (the demo tables). */
  example?: boolean;
  logger?: Logger;
  /** Where the numbered files are; tests point this at a fixture. */
  dir?: URL;
}

interface Migration {
  /** Recorded in walcast.migrations: `001_walcast.sql`, `example/001_example.sql`. */
  name: string;
  url: URL;
}

export async function migrate(pool: pg.Pool, opts: MigrateOptions = {}): Promise<{ applied: string[] }> {
  const logger = opts.logger ?? silentLogger;
  const dir = opts.dir ?? SQL_DIR;
  const files = await listMigrations(dir, '');
  if (opts.example) files.push(...(await listMigrations(new URL('example/', dir), 'example/')));
  const client = await pool.connect();
  const onNotice = (n: { message?: string }) => logger.info({ notice: n.message }, 'postgres notice');
  client.on('notice', onNotice);
  let broken: Error | undefined;
  try {
    await step('walcast.migrations', () => client.query('SELECT pg_advisory_lock($1, $2)', LOCK_KEY));
    try {
      await step('walcast.migrations', () => bootstrap(client));
      const done = await step('walcast.migrations', () => appliedNames(client));
      const applied: string[] = [];
      for (const m of files.filter((f) => !done.has(f.name))) {
        await applyOne(client, m);
        logger.info({ migration: m.name }, 'applied migration');
        applied.push(m.name);
      }
      return { applied };
    } finally {
      // If this fails the connection is gone, and the lock with it.
      await client.query('SELECT pg_advisory_unlock($1, $2)', LOCK_KEY).catch((e: Error) => (broken = e));
    }
  } finally {
    client.off('notice', onNotice);
    client.release(broken);
  }
}

/** Makes `name` the relay's publication (see walcast.ensure_publication). */
export async function ensurePublication(pool: pg.Pool, name: string): Promise<void> {
  try {
    await pool.query('SELECT walcast.ensure_publication($1)', [name]);
  } catch (err) {
    if (sqlState(err) === SQLSTATE.invalidParameterValue) {
      throw new WalcastError('config_invalid', { detail: describe(err) }, err);
    }
    throw err;
  }
}

async function listMigrations(dir: URL, prefix: string): Promise<Migration[]> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (cause) {
    throw new WalcastError('migration_failed', { file: dir.pathname, detail: describe(cause) }, cause);
  }
  return entries
    .filter((f) => /^\d+_[\w.-]+\.sql$/.test(f))
    .sort((a, b) => parseInt(a, 10) - parseInt(b, 10) || a.localeCompare(b))
    .map((f) => ({ name: prefix + f, url: new URL(f, dir) }));
}

async function bootstrap(client: pg.PoolClient): Promise<void> {
  // CREATE … IF NOT EXISTS still checks CREATE privileges: a least-privilege
  // role (docs/security.md) runs a schema someone else installed.
  const { rows } = await client.query<{ ok: boolean }>("SELECT to_regclass('walcast.migrations') IS NOT NULL AS ok");
  if (rows[0]?.ok) return;
  await client.query(`
    CREATE SCHEMA IF NOT EXISTS walcast;
    CREATE TABLE IF NOT EXISTS walcast.migrations (
      name text PRIMARY KEY,
      applied_at timestamptz DEFAULT now()
    )`);
}

async function appliedNames(client: pg.PoolClient): Promise<Set<string>> {
  const { rows } = await client.query<{ name: string }>('SELECT name FROM walcast.migrations');
  return new Set(rows.map((r) => r.name));
}

async function applyOne(client: pg.PoolClient, m: Migration): Promise<void> {
  await step(m.name, async () => {
    const text = await readFile(m.url, 'utf8');
    await client.query('BEGIN');
    try {
      // No parameters: the simple protocol runs every statement of the file.
      await client.query(text);
      await client.query('INSERT INTO walcast.migrations (name) VALUES ($1)', [m.name]);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    }
  });
}

async function step<T>(file: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (cause) {
    if (cause instanceof WalcastError) throw cause;
    throw new WalcastError('migration_failed', { file, detail: describe(cause) }, cause);
  }
}

/** A PostgreSQL error's message with its SQLSTATE, hint and PL/pgSQL context. */
function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const e = err as Error & { hint?: string; where?: string; severity?: string };
  const code = e.severity ? sqlState(err) : undefined;
  return [e.message, code && `(SQLSTATE ${code})`, e.hint && `hint: ${e.hint}`, e.where && `at: ${e.where}`]
    .filter(Boolean)
    .join(' ');
}
