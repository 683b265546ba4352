// `walcast migrate [--example]`: install or upgrade the walcast schema (and
// with --example the example tables) into DATABASE_URL, and create the
// publication. The relay does the same at start; this is for deploy steps
// that run migrations before the relays.
import { ensurePublication, migrate } from '../db/migrate.ts';
import { asStartupError } from '../db/connect-error.ts';
import { DATABASE_OPTIONS, databaseUrl, parse, wantsHelp, withPool } from './args.ts';

const HELP = `Usage: walcast migrate [--example] [--publication NAME] [--database-url URL]

Installs or upgrades the walcast schema (the numbered files of sql/) in DATABASE_URL and
creates the publication. Idempotent; concurrent runs are serialised by an advisory lock.

  --example             also install the example tables (sql/example/)
  --publication NAME    publication to create (default WALCAST_PUBLICATION or realtime_events)
  --database-url URL    PostgreSQL to migrate (default DATABASE_URL)`;

export async function migrateCommand(argv: string[]): Promise<void> {
  if (wantsHelp(argv)) return void console.log(HELP);
  const { values } = parse('migrate', argv, {
    ...DATABASE_OPTIONS,
    example: { type: 'boolean' },
    publication: { type: 'string' },
  });
  const url = databaseUrl('migrate', values, process.env);
  const publication =
    (values.publication as string | undefined) ?? process.env.WALCAST_PUBLICATION ?? 'realtime_events';
  await withPool(url, async (pool) => {
    try {
      const { applied } = await migrate(pool, { example: values.example === true });
      await ensurePublication(pool, publication);
      console.log(applied.length ? `applied: ${applied.join(', ')}` : 'the walcast schema is up to date');
      console.log(`publication ${publication} is ready`);
    } catch (err) {
      throw asStartupError(err, url);
    }
  });
}
