// The walcast command. `walcast start` (what `npm start` runs): read the
// configuration, start an embedded PostgreSQL when no DATABASE_URL is set,
// start the relay, and stop cleanly on SIGINT or SIGTERM.
import { resolve } from 'node:path';
import { helpText, loadConfig, type Config } from './config.ts';
import { WalcastError } from './errors.ts';
import { createLogger, type Logger } from './log.ts';
import type { EmbeddedPostgresHandle } from './db/embedded.ts';
import { startRelay, type Relay } from './relay.ts';

const USAGE = 'Usage: walcast start [options]   (walcast start --help lists the options)';

async function start(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(helpText());
    return;
  }
  const config = loadConfig(argv, process.env);
  const logger = createLogger(config.logLevel);
  let embedded: EmbeddedPostgresHandle | undefined;
  let databaseUrl = config.databaseUrl;
  if (!databaseUrl) {
    logger.info({ dataDir: resolve(config.dataDir), port: config.embeddedPort }, 'starting embedded PostgreSQL');
    // Loaded only here: Docker images and DATABASE_URL users need not ship its binaries.
    const { startEmbeddedPostgres } = await import('./db/embedded.ts');
    embedded = await startEmbeddedPostgres({ dataDir: config.dataDir, port: config.embeddedPort, persistent: true });
    databaseUrl = embedded.url;
  }
  const example = config.example ?? embedded !== undefined;
  let relay: Relay;
  try {
    relay = await startRelay({ ...config, databaseUrl, example }, logger);
  } catch (err) {
    await embedded?.stop();
    throw err;
  }
  printNextSteps(config, relay, embedded, example);
  handleSignals(relay, embedded, logger);
}

function printNextSteps(config: Config, relay: Relay, embedded: EmbeddedPostgresHandle | undefined, example: boolean): void {
  const psql = embedded ? embedded.psql : 'psql "$DATABASE_URL"';
  const lines = [
    '',
    `walcast is streaming publication ${config.publication} (slot ${config.slot}).`,
    '',
    `  WebSocket:   ${relay.wsUrl}`,
    ...(example ? [`  Demo:        ${relay.url}/?room=lobby`] : []),
    `  Health:      ${relay.url}/healthz`,
    `  PostgreSQL:  ${psql}${embedded ? `   (embedded, data in ${embedded.dataDir})` : ''}`,
    '',
    'Next:',
    `  1. Subscribe:  npx wscat -c ${relay.wsUrl}   then send  {"type":"subscribe","channel":"room-1"}`,
    example
      ? `  2. Publish:    ${psql} -c "insert into chat_messages (channel_id, sender, body) values ('room-1', 'ada', 'hello')"`
      : `  2. Register a table:  ${psql} -c "select walcast.register_table('public.my_table', channel_column => 'channel_id')"` +
        `\n     (or install the example tables: set WALCAST_EXAMPLE=true)`,
    '',
  ];
  process.stderr.write(`${lines.join('\n')}\n`);
}

function handleSignals(relay: Relay, embedded: EmbeddedPostgresHandle | undefined, logger: Logger): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(1); // a second signal: exit at once
    stopping = true;
    logger.info({ signal }, 'stopping');
    void (async () => {
      await relay.stop();
      await embedded?.stop();
      process.exit(0);
    })();
  };
  process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
}

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  switch (command) {
    case 'start':
      return start(rest);
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      console.log(`${USAGE}\n\n${helpText()}`);
      return;
    default:
      throw new WalcastError('config_invalid', { detail: `unknown command ${JSON.stringify(command)}. ${USAGE}` });
  }
}

main().catch((err: unknown) => {
  const message = err instanceof WalcastError ? `walcast: ${err.message}` : `walcast: ${(err as Error)?.stack ?? err}`;
  process.stderr.write(`${message}\n`);
  process.exit(1);
});
