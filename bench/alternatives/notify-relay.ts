// Reference alternative (a): a LISTEN/NOTIFY relay, the pattern of
// pg_eventserv. A trigger on chat_messages sends each new row as JSON with
// pg_notify (installed by installNotifyTrigger below); this process LISTENs
// and pushes each notification to the channel's subscribers over the same
// coalescing ws server as the baseline. NOT part of the product.
//
// Known limits of the pattern, not of this code: payloads over 8000 bytes
// fail the INSERT, NOTIFY serialises committing transactions on a global
// lock, and a relay that is down misses every notification sent meanwhile.
import pg from 'pg';
import { PushServer, announce } from '../lib/push-server.ts';

export const NOTIFY_CHANNEL = 'walcast_bench';

export const INSTALL_TRIGGER = `
CREATE OR REPLACE FUNCTION bench_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('${NOTIFY_CHANNEL}', row_to_json(NEW)::text);
  RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER bench_notify AFTER INSERT ON chat_messages FOR EACH ROW EXECUTE FUNCTION bench_notify();`;

export const DROP_TRIGGER = 'DROP TRIGGER IF EXISTS bench_notify ON chat_messages';

async function main(): Promise<void> {
  const server = new PushServer(true);
  const client = new pg.Client({ connectionString: process.env.DATABASE_URL, options: '-c TimeZone=UTC' });
  await client.connect();
  client.on('notification', (n) => {
    const row = JSON.parse(n.payload ?? '{}') as Record<string, unknown>;
    const channel = String(row.channel_id);
    server.publish(
      channel,
      Buffer.from(JSON.stringify({ type: 'event', channel, table: 'chat_messages', op: 'insert', row })),
    );
  });
  await client.query(`LISTEN ${NOTIFY_CHANNEL}`);
  announce(await server.listen());
}

if (process.env.DATABASE_URL && process.argv[1] === new URL(import.meta.url).pathname) void main();
