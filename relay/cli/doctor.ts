// `walcast doctor`: checks the server and the walcast setup (relay/db/doctor.ts)
// and prints each finding with its fix. Exit status 1 when any is an error.
import { diagnose, type Finding } from '../db/doctor.ts';
import { asStartupError } from '../db/connect-error.ts';
import { DATABASE_OPTIONS, databaseUrl, parse, wantsHelp, withPool } from './args.ts';

const HELP = `Usage: walcast doctor [--slot NAME] [--publication NAME] [--json] [--database-url URL]

Checks, read-only: wal_level, max_slot_wal_keep_size, walcast's slots (lag, WAL retained,
wal_status, and slots no relay uses), publication membership against walcast.tables,
channel columns without an index, and the REPLICA IDENTITY of registered tables.
Each finding says the fix. Exits 1 if any finding is an error, else 0.
Unused slots are reported, never dropped.

  --slot NAME          the relay's slot (default WALCAST_SLOT or walcast)
  --publication NAME   the relay's publication (default WALCAST_PUBLICATION or realtime_events)
  --json               print the findings as one JSON array
  --database-url URL   PostgreSQL (default DATABASE_URL)`;

export async function doctorCommand(argv: string[]): Promise<void> {
  if (wantsHelp(argv)) return void console.log(HELP);
  const { values } = parse('doctor', argv, {
    ...DATABASE_OPTIONS,
    slot: { type: 'string' },
    publication: { type: 'string' },
    json: { type: 'boolean' },
  });
  const url = databaseUrl('doctor', values, process.env);
  const slot = (values.slot as string | undefined) ?? process.env.WALCAST_SLOT ?? 'walcast';
  const publication =
    (values.publication as string | undefined) ?? process.env.WALCAST_PUBLICATION ?? 'realtime_events';
  const findings = await withPool(url, (pool) => diagnose(pool, { slot, publication })).catch((err: unknown) =>
    Promise.reject(asStartupError(err, url)),
  );
  if (values.json) console.log(JSON.stringify(findings, null, 2));
  else print(findings);
  if (findings.some((f) => f.level === 'error')) process.exitCode = 1;
}

function print(findings: Finding[]): void {
  for (const f of findings) {
    console.log(`${f.level.padEnd(8)} ${f.check}: ${f.message}`);
    if (f.fix && f.level !== 'ok') console.log(`${' '.repeat(9)}fix: ${f.fix}`);
  }
  const errors = findings.filter((f) => f.level === 'error').length;
  const warnings = findings.filter((f) => f.level === 'warning').length;
  console.log(`\n${errors} error${errors === 1 ? '' : 's'}, ${warnings} warning${warnings === 1 ? '' : 's'}`);
}
