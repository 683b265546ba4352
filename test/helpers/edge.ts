// Edge relays (relay/edge/) for the tests: in this process on port 0, or as
// a real `walcast edge` process, against a test database and nats-server.
import { startEdge, type EdgeRelay } from '../../relay/edge/edge.ts';
import { createLogger, silentLogger } from '../../relay/log.ts';
import type { RelayConfig } from '../../relay/relay.ts';
import { relayConfig, waitFor } from './relay.ts';
import { spawnRelay, type RelayProcess } from './process.ts';

/** An edge in this process, once it consumes the stream. */
export async function startTestEdge(
  databaseUrl: string,
  natsUrl: string,
  overrides: Partial<RelayConfig> = {},
): Promise<EdgeRelay> {
  const logger = process.env.WALCAST_TEST_LOG ? createLogger('debug', process.stderr) : silentLogger;
  const edge = await startEdge(relayConfig(databaseUrl, { natsUrl, ...overrides }), logger);
  await waitFor(() => edge.internals.source.state === 'consuming', 20_000, 'the edge to consume the stream');
  return edge;
}

/** `walcast edge` as a process (resolves once it serves WebSocket clients). */
export function spawnEdge(args: string[], env: Record<string, string>): Promise<RelayProcess> {
  return spawnRelay(args, env, 60_000, undefined, 'edge');
}
