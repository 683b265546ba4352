// The walcast command: one subcommand per module of relay/cli/.
//   start     run the relay (what `npm start` runs)
//   edge      an edge relay: clients served from the JetStream change stream
//   migrate   install the walcast schema (and --example tables)
//   register  register a table with its channel column
//   doctor    check the server and the setup; each finding with its fix
//   tail      print a channel's live events
//   replay    print a channel's events after a position
//   flows     list MQTT ingest brokers and flows with their state and counters
import { helpText } from './config.ts';
import { WalcastError } from './errors.ts';

type Command = (argv: string[]) => Promise<void>;

// Loaded on use: `walcast tail` need not load the relay, fastify and pg.
const COMMANDS: Record<string, { load: () => Promise<Command>; summary: string }> = {
  start: {
    load: async () => (await import('./cli/start.ts')).start,
    summary: 'run the relay (embedded PostgreSQL when DATABASE_URL is unset)',
  },
  edge: {
    load: async () => (await import('./cli/edge.ts')).edgeCommand,
    summary: 'serve WebSocket clients from the JetStream change stream (no slot; docs/scaling.md)',
  },
  migrate: {
    load: async () => (await import('./cli/migrate.ts')).migrateCommand,
    summary: 'install or upgrade the walcast schema; --example adds the example tables',
  },
  register: {
    load: async () => (await import('./cli/register.ts')).registerCommand,
    summary: 'register <table> --channel <column> [--ttl …]',
  },
  doctor: {
    load: async () => (await import('./cli/doctor.ts')).doctorCommand,
    summary: 'check wal_level, slots, publication, indexes, replica identity',
  },
  tail: {
    load: async () => (await import('./cli/tail.ts')).tailCommand,
    summary: 'print the live events of <channel>',
  },
  replay: {
    load: async () => (await import('./cli/replay.ts')).replayCommand,
    summary: 'print the events of <channel> after --since <position>',
  },
  flows: {
    load: async () => (await import('./cli/flows.ts')).flowsCommand,
    summary: 'list MQTT ingest brokers and flows with their state and counters',
  },
};

function usage(): string {
  const rows = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return [
    'Usage: walcast <command> [options]   (walcast <command> --help for each)',
    '',
    'Commands:',
    ...rows,
    '',
    helpText(),
  ].join('\n');
}

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    console.log(usage());
    return;
  }
  const entry = COMMANDS[command];
  if (!entry)
    throw new WalcastError('config_invalid', {
      detail: `unknown command ${JSON.stringify(command)}; run walcast --help`,
    });
  await (await entry.load())(rest);
}

main().catch((err: unknown) => {
  const message = err instanceof WalcastError ? `walcast: ${err.message}` : `walcast: ${(err as Error)?.stack ?? err}`;
  process.stderr.write(`${message}\n`);
  process.exit(1);
});
