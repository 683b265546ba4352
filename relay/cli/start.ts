// `walcast start` (what `npm start` runs): read the configuration, start an
// embedded PostgreSQL when no DATABASE_URL is set, run the relay (active, or
// standby while another relay holds the slot), and shut down gracefully on
// SIGTERM or SIGINT within WALCAST_SHUTDOWN_SECONDS; a second signal exits
// at once. docs/operations.md#shutdown describes the order.
import { resolve } from 'node:path';
import { helpText, loadConfig, type Config } from '../config.ts';
import { createLogger, type Logger } from '../log.ts';
import type { EmbeddedPostgresHandle } from '../db/embedded.ts';
import type { Relay } from '../relay.ts';
import { RelayRunner } from '../standby/runner.ts';
import type { StandbyServer } from '../standby/server.ts';
import { wantsHelp } from './args.ts';

export async function start(argv: string[]): Promise<void> {
  if (wantsHelp(argv)) {
    console.log(`walcast start: run the relay.\n\n${helpText()}`);
    return;
  }
  const config = loadConfig(argv, process.env);
  const logger = createLogger(config.logLevel, process.stdout, config.logFormat);
  let embedded: EmbeddedPostgresHandle | undefined;
  let databaseUrl = config.databaseUrl;
  if (!databaseUrl) {
    logger.info({ dataDir: resolve(config.dataDir), port: config.embeddedPort }, 'starting embedded PostgreSQL');
    // Loaded only here: Docker images and DATABASE_URL users need not ship its binaries.
    const { startEmbeddedPostgres } = await import('../db/embedded.ts');
    embedded = await startEmbeddedPostgres({ dataDir: config.dataDir, port: config.embeddedPort, persistent: true });
    databaseUrl = embedded.url;
  }
  const example = config.example ?? embedded !== undefined;
  const runner = new RelayRunner({ ...config, databaseUrl, example }, logger, {
    onActive: (relay) => printNextSteps(config, relay, embedded, example),
    onStandby: (server) => printStandby(config, server),
  });
  handleSignals(runner, embedded, logger, config.shutdownSeconds);
  try {
    await runner.run();
  } catch (err) {
    await embedded?.stop();
    throw err;
  }
}

function printNextSteps(
  config: Config,
  relay: Relay,
  embedded: EmbeddedPostgresHandle | undefined,
  example: boolean,
): void {
  const psql = embedded ? embedded.psql : 'psql "$DATABASE_URL"';
  const lines = [
    '',
    `walcast is streaming publication ${config.publication} (slot ${config.slot}).`,
    '',
    `  WebSocket:   ${relay.wsUrl}`,
    // MQTT front door (docs/mqtt.md): TCP when its port could be bound, WebSocket always.
    `  MQTT:        ${relay.mqttPort === null ? '' : `mqtt://${new URL(relay.url).hostname}:${relay.mqttPort}   `}${relay.mqttWsUrl}`,
    ...(example ? [`  Demo:        ${relay.url}/?room=lobby`] : []),
    `  Health:      ${relay.url}/healthz   ${relay.url}/readyz   ${relay.url}/metrics`,
    `  PostgreSQL:  ${psql}${embedded ? `   (embedded, data in ${embedded.dataDir})` : ''}`,
    '',
    'Next:',
    `  1. Subscribe:  npx wscat -c ${relay.wsUrl}   then send  {"type":"subscribe","channel":"room-1"}`,
    example
      ? `  2. Publish:    ${psql} -c "insert into chat_messages (channel_id, sender, body) values ('room-1', 'ada', 'hello')"`
      : `  2. Register a table:  walcast register public.my_table --channel channel_id` +
        `\n     (or install the example tables: set WALCAST_EXAMPLE=true)`,
    '',
  ];
  process.stderr.write(`${lines.join('\n')}\n`);
}

function printStandby(config: Config, server: StandbyServer): void {
  const lines = [
    '',
    `walcast is on standby: another relay holds slot ${config.slot}. It takes over when that relay stops.`,
    '',
    `  WebSocket:   ${server.wsUrl}   (refused with 503 until this relay takes over)`,
    `  Health:      ${server.url}/healthz   ${server.url}/readyz (503 while standby)`,
    '',
  ];
  process.stderr.write(`${lines.join('\n')}\n`);
}

/** SIGTERM/SIGINT → stop() within the deadline (also `walcast edge`, relay/cli/edge.ts). */
export function handleSignals(
  runner: { stop(): Promise<void> },
  embedded: { stop(): Promise<void> } | undefined,
  logger: Logger,
  deadlineSeconds: number,
): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting at once');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal, deadlineSeconds }, 'shutting down');
    setTimeout(() => {
      logger.error({ deadlineSeconds }, 'shutdown deadline passed (WALCAST_SHUTDOWN_SECONDS): exiting with status 1');
      process.exit(1);
    }, deadlineSeconds * 1000);
    void (async () => {
      await runner.stop();
      await embedded?.stop();
      logger.info({}, 'shutdown complete');
      process.exit(0);
    })();
  };
  process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
}
