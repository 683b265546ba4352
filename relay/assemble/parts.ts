// Parts that the slot relay (relay.ts) and an edge relay (relay/edge/edge.ts)
// assemble alike: the HTTP server, the publisher and snapshot reader, the
// WebSocket limits, and the ordered start/stop of parts with a life.
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { limit, type Config } from '../config.ts';
import { WalcastError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Registration } from '../db/registry.ts';
import { shortName } from '../table-names.ts';
import { SnapshotReader, type SnapshotReaderOptions } from '../db/snapshot.ts';
import type { WsServer } from '../ws/server.ts';
import { CLOSE } from '../../client/protocol.ts';
import { Publisher } from '../publish/publisher.ts';
import type { RelayConfig } from '../relay.ts';

/** A part with a life: the list of them is started in order and stopped in reverse. */
export interface Component {
  name: string;
  start?: () => void | Promise<void>;
  stop?: () => void | Promise<void>;
}

/** The reason clients read in the 1001 close frame when the relay stops. */
export const SHUTDOWN_REASON = 'relay shutting down: reconnect and resume with since';

/** The WebSocket server's limits from the configuration (an edge's too). */
export function wsLimits(config: RelayConfig | Omit<Config, 'dataDir' | 'embeddedPort' | 'example'>) {
  const { maxSubscriptions, maxFrameBytes, sendQueueBytes, maxEventBytes, slowConsumerMs, heartbeatMs } = config;
  return { maxSubscriptions, maxFrameBytes, sendQueueBytes, maxEventBytes, slowConsumerMs, heartbeatMs };
}

/** The publisher (client rows → INSERTs into `write`) and the snapshot reader (of `read`); an edge's two may differ. */
export function createReaders(
  config: Partial<Config>,
  urls: { read: string; write: string },
  registrations: () => Registration[],
  logger: Logger,
  /** The snapshot reader's class (an edge's waits for a read replica). */
  Reader: new (url: string, regs: () => Registration[], opts: SnapshotReaderOptions) => SnapshotReader = SnapshotReader,
): { publisher: Publisher; snapshots: SnapshotReader } {
  const publisher = new Publisher({
    databaseUrl: urls.write,
    logger,
    registration: (name) => registrations().find((r) => shortName(r) === name),
  });
  const snapshots = new Reader(urls.read, registrations, {
    perConnection: limit(config, 'snapshotsPerConnection'),
    perSubject: limit(config, 'snapshotsPerSubject'),
    queue: limit(config, 'snapshotQueue'),
    timeoutMs: limit(config, 'snapshotTimeoutMs'),
  });
  return { publisher, snapshots };
}

/** The HTTP server of a relay (and of an edge relay, relay/edge/): timeouts against trickling clients, quiet logs. */
export function createHttpApp(config: Pick<Config, 'httpTimeoutMs'>, logger: Logger): FastifyInstance {
  const httpTimeoutMs = limit(config, 'httpTimeoutMs');
  return Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // Slow requests end (408) and idle connections close, so trickling
    // clients cannot hold descriptors; Node checks every second.
    requestTimeout: httpTimeoutMs,
    connectionTimeout: httpTimeoutMs,
    keepAliveTimeout: Math.min(5000, httpTimeoutMs),
    http: { headersTimeout: httpTimeoutMs, connectionsCheckingInterval: Math.min(1000, httpTimeoutMs / 2) },
    // One line per lifecycle event, not per request (health checks poll).
    logController: new LogController({ disableRequestLogging: true }),
  });
}

/** Start each part in order; if one fails, stop those before it (in reverse) and rethrow. */
export async function startAll(components: Component[], logger: Logger): Promise<void> {
  for (let i = 0; i < components.length; i++) {
    try {
      await components[i]!.start?.();
    } catch (err) {
      await stopAll(components.slice(0, i), logger);
      throw err;
    }
  }
}

/** Stop each part in reverse order; one that fails is logged and the rest still stop. */
export async function stopAll(components: Component[], logger: Logger): Promise<void> {
  for (const c of [...components].reverse()) {
    try {
      await c.stop?.();
    } catch (err) {
      logger.warn({ err, component: c.name }, 'a part of the relay failed to stop');
    }
  }
}

export async function listen(app: FastifyInstance, config: Pick<Config, 'host' | 'port'>): Promise<void> {
  try {
    await app.listen({ host: config.host, port: config.port });
  } catch (err) {
    throw new WalcastError(
      'listen_failed',
      { host: config.host, port: config.port, detail: (err as Error).message },
      err,
    );
  }
}

/** Close every client with 1001; one that does not finish the close handshake within 2 s is cut. */
export async function closeClients(ws: WsServer): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([ws.close(CLOSE.goingAway, SHUTDOWN_REASON), new Promise((r) => (timer = setTimeout(r, 2000)))]);
  clearTimeout(timer);
  for (const client of ws.wss.clients) client.terminate();
}
