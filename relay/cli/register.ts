// `walcast register <table> --channel <column> [--ttl …] [--time-column …]
// [--kind events|state]`: walcast.register_table from the command line.
import { WalcastError, sqlState } from '../errors.ts';
import { asStartupError } from '../db/connect-error.ts';
import { DATABASE_OPTIONS, databaseUrl, parse, wantsHelp, withPool } from './args.ts';

const HELP = `Usage: walcast register <table> --channel <column> [--ttl INTERVAL --time-column COLUMN] [--kind events|state]

Registers a table with walcast (select walcast.register_table(...)): adds it to the publication,
records its channel column, and makes sure deletes carry the channel (REPLICA IDENTITY).
Running relays pick it up without a restart. Safe to run again: it updates the registration.

  <table>                schema-qualified or not: public.chat_messages, chat_messages
  --channel COLUMN       the column whose value is the channel (required)
  --ttl INTERVAL         delete rows older than this ('7 days', '2 minutes'); needs --time-column
  --time-column COLUMN   the timestamp column the TTL is measured on
  --kind events|state    what a snapshot sends: the newest rows (events, default) or every row (state)
  --database-url URL     PostgreSQL (default DATABASE_URL)`;

export async function registerCommand(argv: string[]): Promise<void> {
  if (wantsHelp(argv)) return void console.log(HELP);
  const { values, positionals } = parse('register', argv, {
    ...DATABASE_OPTIONS,
    channel: { type: 'string' },
    ttl: { type: 'string' },
    'time-column': { type: 'string' },
    kind: { type: 'string' },
  });
  const [table, ...extra] = positionals;
  if (!table || extra.length || typeof values.channel !== 'string') {
    throw new WalcastError('config_invalid', {
      detail: 'walcast register needs one table and --channel <column>; see walcast register --help',
    });
  }
  const url = databaseUrl('register', values, process.env);
  await withPool(url, async (pool) => {
    const client = await pool.connect().catch((err: unknown) => Promise.reject(asStartupError(err, url)));
    client.on('notice', (n: { message?: string }) => console.error(`notice: ${n.message}`));
    try {
      await client.query(
        `SELECT walcast.register_table($1::regclass, channel_column => $2, ttl => $3::interval, time_column => $4, kind => $5)`,
        [table, values.channel, values.ttl ?? null, values['time-column'] ?? null, values.kind ?? 'events'],
      );
      console.log(
        `registered ${table}: channel column ${values.channel}${values.ttl ? `, ttl ${values.ttl} on ${values['time-column']}` : ''}`,
      );
    } catch (err) {
      const e = err as Error & { hint?: string };
      const detail = [e.message, sqlState(err) && `(SQLSTATE ${sqlState(err)})`, e.hint && `hint: ${e.hint}`]
        .filter(Boolean)
        .join(' ');
      throw new WalcastError('register_failed', { table, detail }, err);
    } finally {
      client.release();
    }
  });
}
