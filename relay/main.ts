// The walcast command: one subcommand per module of relay/cli/.
//   start     run the relay (what `npm start` runs)
//   migrate   install the walcast schema (and --example tables)
//   register  register a table with its channel column
//   doctor    check the server and the setup; each finding with its fix
//   tail      print a channel's live events
//   replay    print a channel's events after a position
import { helpText } from './config.ts';
import { WalcastError } from './errors.ts';
import { start } from './cli/start.ts';
import { migrateCommand } from './cli/migrate.ts';
import { registerCommand } from './cli/register.ts';
import { doctorCommand } from './cli/doctor.ts';
import { tailCommand } from './cli/tail.ts';
import { replayCommand } from './cli/replay.ts';

const COMMANDS: Record<string, { run: (argv: string[]) => Promise<void>; summary: string }> = {
  start: { run: start, summary: 'run the relay (embedded PostgreSQL when DATABASE_URL is unset)' },
  migrate: { run: migrateCommand, summary: 'install or upgrade the walcast schema; --example adds the example tables' },
  register: { run: registerCommand, summary: 'register <table> --channel <column> [--ttl …]' },
  doctor: { run: doctorCommand, summary: 'check wal_level, slots, publication, indexes, replica identity' },
  tail: { run: tailCommand, summary: 'print the live events of <channel>' },
  replay: { run: replayCommand, summary: 'print the events of <channel> after --since <position>' },
};

function usage(): string {
  const rows = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return ['Usage: walcast <command> [options]   (walcast <command> --help for each)', '', 'Commands:', ...rows, '', helpText()].join('\n');
}

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    console.log(usage());
    return;
  }
  const entry = COMMANDS[command];
  if (!entry) throw new WalcastError('config_invalid', { detail: `unknown command ${JSON.stringify(command)}; run walcast --help` });
  await entry.run(rest);
}

main().catch((err: unknown) => {
  const message = err instanceof WalcastError ? `walcast: ${err.message}` : `walcast: ${(err as Error)?.stack ?? err}`;
  process.stderr.write(`${message}\n`);
  process.exit(1);
});
