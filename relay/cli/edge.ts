// `walcast edge`: an edge relay (relay/edge/, docs/scaling.md). The same
// configuration as `walcast start`; WALCAST_NATS_URL and DATABASE_URL (a
// read-only role or a read replica) are required, WALCAST_PUBLISH_DATABASE_URL
// lets its clients publish. SIGTERM/SIGINT stop it gracefully.
import { helpText, loadConfig } from '../config.ts';
import { WalcastError } from '../errors.ts';
import { createLogger } from '../log.ts';
import { startEdge } from '../edge/edge.ts';
import { wantsHelp } from './args.ts';
import { handleSignals } from './start.ts';

export async function edgeCommand(argv: string[]): Promise<void> {
  if (wantsHelp(argv)) {
    console.log(
      `walcast edge: serve WebSocket and MQTT clients from the JetStream change stream (needs WALCAST_NATS_URL and DATABASE_URL).\n\n${helpText()}`,
    );
    return;
  }
  const config = loadConfig(argv, process.env);
  if (!config.natsUrl) throw new WalcastError('edge_needs_nats');
  if (!config.databaseUrl) throw new WalcastError('edge_needs_database');
  const logger = createLogger(config.logLevel, process.stdout, config.logFormat);
  const edge = await startEdge(config, logger);
  handleSignals(edge, undefined, logger, config.shutdownSeconds);
  process.stderr.write(
    `\nwalcast edge: waiting for JetStream stream ${config.natsStream ?? 'walcast'} (GET ${edge.url}/readyz says why until it serves).\n`,
  );
  await edge.ready;
  const lines = [
    '',
    `walcast edge is serving from JetStream stream ${config.natsStream ?? 'walcast'}.`,
    '',
    `  WebSocket:   ${edge.wsUrl}`,
    // The MQTT door (docs/mqtt.md): TCP when its port could be bound, WebSocket always.
    `  MQTT:        ${edge.mqttPort === null ? '' : `mqtt://${new URL(edge.url).hostname}:${edge.mqttPort}   `}${edge.mqttWsUrl}`,
    `  Health:      ${edge.url}/healthz   ${edge.url}/readyz   ${edge.url}/metrics`,
    `  Publishing:  ${config.publishDatabaseUrl ? 'INSERTs into WALCAST_PUBLISH_DATABASE_URL' : 'refused (set WALCAST_PUBLISH_DATABASE_URL)'}`,
    '',
  ];
  process.stderr.write(`${lines.join('\n')}\n`);
}
