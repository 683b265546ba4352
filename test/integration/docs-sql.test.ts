// Every ```sql block of the docs runs as written against the example schema
// and a registered table whose channel column is an integer (walcast accepts
// those). psql's \gexec is done as psql does it: the query before it runs,
// then each value of its result runs as a statement. Each block runs in a
// transaction that is rolled back (so CREATE ROLE and registrations leave
// nothing behind), on a connection of its own (a temporary slot ends with it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { relayFixture } from '../helpers/relay.ts';

const fx = relayFixture();
const FILES = [
  'README.md',
  'docs/protocol.md',
  'docs/replay.md',
  'docs/security.md',
  'docs/operations.md',
  'docs/sdk.md',
  'docs/errors.md',
  'docs/ingest.md',
  'docs/tables.md',
  'docs/webhooks.md',
  'docs/scaling.md',
  'docs/supabase.md',
];

function sqlBlocks(file: string): string[] {
  const text = readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8');
  return [...text.matchAll(/^```sql\n([\s\S]*?)^```/gm)].map((m) => m[1]!);
}

async function run(client: pg.Client, block: string): Promise<void> {
  // psql's \gexec: run what precedes it, then every value of the result.
  const parts = block.split(/^\\gexec$/m);
  for (const [i, part] of parts.entries()) {
    if (!part.trim()) continue;
    const result = await client.query({ text: part, rowMode: 'array' });
    if (i === parts.length - 1) continue;
    for (const r of Array.isArray(result) ? result.flatMap((x) => x.rows) : result.rows) {
      for (const statement of r as unknown[]) if (statement !== null) await client.query(String(statement));
    }
  }
}

test('every SQL block in the docs runs against the example schema and an integer channel column', async () => {
  await fx.relay(); // installs the walcast schema and the example tables
  await fx.db.query(
    `create table int_events (id int generated always as identity primary key, room int not null, body text)`,
  );
  await fx.db.query(`select walcast.register_table('public.int_events', channel_column => 'room')`);
  await fx.db.query(`insert into int_events (room, body) values (42, 'hi')`);
  const blocks = FILES.flatMap((f) => sqlBlocks(f).map((sql, i) => ({ where: `${f} block ${i + 1}`, sql })));
  assert.ok(blocks.length >= 10, `found ${blocks.length} SQL blocks`);
  for (const { where, sql } of blocks) {
    // docs/security.md grants on the user's database, called `app` there.
    const text = sql.replace(/DATABASE app\b/g, `DATABASE "${fx.db.name}"`);
    const client = new pg.Client({ connectionString: fx.db.url });
    await client.connect();
    try {
      await client.query('BEGIN');
      await run(client, text);
    } catch (err) {
      assert.fail(`${where} fails: ${(err as Error).message}\n${sql}`);
    } finally {
      await client.query('ROLLBACK').catch(() => {});
      await client.end();
    }
  }
});
