// relay/jobs/ttl.ts against a real PostgreSQL: what it deletes, in which
// transactions, and the walcast.prune message that marks them.
import assert from 'node:assert/strict';
import { relayFixture } from '../helpers/relay.ts';
import { before, beforeEach, test } from 'node:test';
import pg from 'pg';
import { pino } from 'pino';
import { migrate } from '../../relay/db/migrate.ts';
import { WalcastError } from '../../relay/errors.ts';
import { createPruner } from '../../relay/jobs/ttl.ts';
import { PRUNE_MESSAGE_PREFIX } from '../../relay/replication/messages.ts';
import { silentLogger } from '../../relay/log.ts';

const fx = relayFixture();
const { db } = fx;

before(async () => {
  await fx.ready();
  await migrate(db.pool, {});
  await db.query(`
    CREATE TABLE public.events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, room text NOT NULL, at timestamptz NOT NULL);
    CREATE TABLE public.kept (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, room text NOT NULL, at timestamptz NOT NULL);
    CREATE TABLE public."Daily Notes" (room text NOT NULL, "Day" date NOT NULL);
    SELECT walcast.register_table('public.events', 'room', interval '1 hour', 'at');
    SELECT walcast.register_table('public.kept', 'room');
    SELECT walcast.register_table('public."Daily Notes"', 'room', interval '1 day', 'Day');
  `);
});

beforeEach(async () => {
  await db.query('TRUNCATE public.events, public.kept, public."Daily Notes"');
});

/** Inserts `old` rows two hours old and `fresh` rows from now into `table`. */
async function insertRows(table: string, old: number, fresh: number): Promise<void> {
  await db.query(
    `INSERT INTO ${table} (room, at)
     SELECT 'r' || g, now() - interval '2 hours' FROM generate_series(1, $1) g
     UNION ALL SELECT 'r' || g, now() FROM generate_series(1, $2) g`,
    [old, fresh],
  );
}

async function count(table: string, where = 'true'): Promise<number> {
  const [row] = await db.query(`SELECT count(*)::int AS n FROM ${table} WHERE ${where}`);
  return row?.n;
}

test('runOnce deletes only expired rows, in batches, and reports them', async () => {
  await insertRows('public.events', 5, 3);
  await insertRows('public.kept', 4, 0);
  await db.query(`INSERT INTO public."Daily Notes" VALUES ('a', current_date - 3), ('b', current_date)`);
  const pruned: [string, number][] = [];
  const pruner = createPruner({
    pool: db.pool,
    batchSize: 2,
    logger: silentLogger,
    onPruned: (t, n) => pruned.push([t, n]),
  });
  const results = await pruner.runOnce();
  assert.deepEqual(results, [
    { table: 'public.Daily Notes', deleted: 1 },
    { table: 'public.events', deleted: 5 },
  ]);
  assert.deepEqual(pruned, [
    ['public.Daily Notes', 1],
    ['public.events', 5],
  ]);
  assert.equal(await count('public.events'), 3);
  assert.equal(await count('public.events', `at < now() - interval '1 hour'`), 0);
  assert.equal(await count('public.kept'), 4, 'a table without ttl is never pruned');
  assert.equal(await count('public."Daily Notes"'), 1);
  assert.deepEqual(await pruner.runOnce(), [
    { table: 'public.Daily Notes', deleted: 0 },
    { table: 'public.events', deleted: 0 },
  ]);
});

test('each prune transaction starts with the walcast.prune message, and empty batches leave no trace', async () => {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    // Temporary slots belong to the session that made them: keep this client.
    await client.query(`SELECT pg_create_logical_replication_slot('ttl_test', 'test_decoding', true)`);
    await insertRows('public.events', 4, 1);
    // Batches of 2: two full batches, then an empty one that must roll back.
    await createPruner({ pool: db.pool, batchSize: 2, logger: silentLogger }).runOnce();
    await waitForWalFlush(client);
    const { rows } = await client.query<{ data: string }>(
      `SELECT data FROM pg_logical_slot_get_changes('ttl_test', NULL, NULL)`,
    );
    const txns = transactions(rows.map((r) => r.data));
    const prunes = txns.filter((t) => t.some((l) => l.includes(PRUNE_MESSAGE_PREFIX)));
    assert.equal(prunes.length, 2, 'one transaction per non-empty batch');
    for (const t of prunes) {
      assert.match(t[0] ?? '', /^message: transactional: 1 prefix: walcast\.prune, sz: 0/);
      assert.ok(
        t.slice(1).every((l) => /^table public\.events: DELETE:/.test(l)),
        t.join('\n'),
      );
    }
    assert.equal(prunes.flat().filter((l) => l.includes('DELETE')).length, 4);
    const unmarked = txns.filter((t) => !prunes.includes(t) && t.some((l) => l.includes('DELETE')));
    assert.deepEqual(unmarked, [], 'no prune delete outside a marked transaction');
  } finally {
    await client.end();
  }
});

/**
 * Decoding stops at the flushed WAL, and the suite's server runs with
 * synchronous_commit off: wait for the WAL writer to flush what is written.
 */
async function waitForWalFlush(client: pg.Client): Promise<void> {
  const { rows } = await client.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
  for (let i = 0; i < 100; i++) {
    const flushed = await client.query('SELECT pg_current_wal_flush_lsn() >= $1::pg_lsn AS ok', [rows[0]?.lsn]);
    if (flushed.rows[0]?.ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('the WAL was not flushed within 5 s');
}

/** test_decoding lines grouped by transaction, BEGIN and COMMIT left out. */
function transactions(lines: string[]): string[][] {
  const out: string[][] = [];
  let current: string[] | undefined;
  for (const line of lines) {
    if (line.startsWith('BEGIN')) current = [];
    else if (line.startsWith('COMMIT')) {
      if (current) out.push(current);
      current = undefined;
    } else current?.push(line);
  }
  return out;
}

test('a failing table is logged and does not stop the others', async () => {
  await db.query(`
    CREATE TABLE public.broken (room text NOT NULL, at timestamptz NOT NULL);
    SELECT walcast.register_table('public.broken', 'room', interval '1 hour', 'at');
    ALTER TABLE public.broken RENAME COLUMN at TO happened_at;
  `);
  try {
    await insertRows('public.events', 2, 0);
    const logs: Record<string, unknown>[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => logs.push(JSON.parse(line)) });
    const results = await createPruner({ pool: db.pool, logger }).runOnce();
    assert.deepEqual(
      results.map((r) => r.table),
      ['public.Daily Notes', 'public.events'],
    );
    assert.equal(await count('public.events'), 0);
    const failure = logs.find((l) => l.table === 'public.broken');
    assert.equal(failure?.msg, 'pruning expired rows failed');
    assert.equal((failure?.err as { code?: string } | undefined)?.code, '42703');
    assert.ok(logs.some((l) => l.table === 'public.events' && l.rows === 2 && l.msg === 'pruned expired rows'));
  } finally {
    await db.query(`SELECT walcast.unregister_table('public.broken'); DROP TABLE public.broken`);
  }
});

test('runOnce does not run concurrently with itself', async () => {
  await insertRows('public.events', 3, 0);
  const pruner = createPruner({ pool: db.pool, logger: silentLogger });
  const [first, second] = await Promise.all([pruner.runOnce(), pruner.runOnce()]);
  assert.deepEqual(
    first.find((r) => r.table === 'public.events'),
    { table: 'public.events', deleted: 3 },
  );
  assert.deepEqual(second, [], 'the overlapping run was skipped');
});

test('start() prunes on its schedule until stop()', async () => {
  await insertRows('public.events', 2, 1);
  let done!: (n: number) => void;
  const pruned = new Promise<number>((resolve) => (done = resolve));
  const pruner = createPruner({
    pool: db.pool,
    schedule: '* * * * * *',
    logger: silentLogger,
    onPruned: (_t, n) => done(n),
  });
  pruner.start();
  try {
    assert.equal(await within(pruned, 5000), 2);
  } finally {
    await pruner.stop();
  }
  assert.equal(await count('public.events'), 1);
  await insertRows('public.events', 1, 0);
  const later = await pruner.runOnce();
  assert.equal(later.find((r) => r.table === 'public.events')?.deleted, 1, 'runOnce still works after stop()');
});

async function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`nothing within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

test('an invalid schedule or batch size is a config error', () => {
  const isConfigError = (err: unknown) => err instanceof WalcastError && err.code === 'config_invalid';
  assert.throws(
    () => createPruner({ pool: db.pool, schedule: 'every ten seconds', logger: silentLogger }),
    isConfigError,
  );
  assert.throws(() => createPruner({ pool: db.pool, batchSize: 0, logger: silentLogger }), isConfigError);
});
