// Reference alternative (b): a polling relay, the mechanism of Supabase
// Realtime's Postgres Changes and of graphile's lds: every 100 ms it calls
// pg_logical_slot_get_changes on its own test_decoding slot, parses the
// text lines of chat_messages inserts, and pushes each row to the channel's
// subscribers over the same coalescing ws server as the baseline.
// NOT part of the product.
import pg from 'pg';
import { PushServer, announce } from '../lib/push-server.ts';

const POLL_MS = 100;
// test_decoding: `table public.chat_messages: INSERT: id[bigint]:1 channel_id[text]:'room-1' …`
const PREFIX = 'table public.chat_messages: INSERT: ';
const COLUMN = /(\w+)\[[^\]]+\]:('(?:[^']|'')*'|\S+)/g;

function parseRow(line: string): Record<string, string | null> {
  const row: Record<string, string | null> = {};
  for (const m of line.slice(PREFIX.length).matchAll(COLUMN)) {
    const v = m[2]!;
    row[m[1]!] = v === 'null' ? null : v.startsWith("'") ? v.slice(1, -1).replace(/''/g, "'") : v;
  }
  return row;
}

async function main(): Promise<void> {
  const slot = process.env.POLL_SLOT!;
  const server = new PushServer(true);
  const client = new pg.Client({
    connectionString: process.env.DATABASE_URL,
    options: '-c TimeZone=UTC -c DateStyle=ISO',
  });
  await client.connect();
  await client.query(`SELECT pg_create_logical_replication_slot($1, 'test_decoding')`, [slot]);
  announce(await server.listen());
  const cleanup = async () => {
    await client.query('SELECT pg_drop_replication_slot($1)', [slot]).catch(() => {});
    process.exit(0);
  };
  process.removeAllListeners('disconnect');
  process.on('disconnect', () => void cleanup());
  process.on('SIGTERM', () => void cleanup());
  for (;;) {
    const { rows } = await client.query<{ data: string }>(
      'SELECT data FROM pg_logical_slot_get_changes($1, NULL, NULL)',
      [slot],
    );
    for (const { data } of rows) {
      if (!data.startsWith(PREFIX)) continue;
      const row = parseRow(data);
      const channel = row.channel_id ?? '';
      server.publish(
        channel,
        Buffer.from(JSON.stringify({ type: 'event', channel, table: 'chat_messages', op: 'insert', row })),
      );
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

void main();
