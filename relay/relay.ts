// The relay, assembled in phases, each built from the ones before it:
//
//   database   server checks, schema, publication, slot
//   pipeline   router, recovery window, dispatcher, replication stream, watchdog
//   server     fastify (health, replay, client bundle, demo), publisher, snapshots, WebSocket
//   metrics    /metrics over all of the above
//   mqtt       the MQTT front door (TCP and /mqtt over WebSocket), on the same router, window and gate
//   supabase   the Supabase Realtime door (/realtime/v1/websocket and its REST broadcast), on the same router and gate
//   jobs       the TTL pruner
//   ingest     MQTT ingest flows (external brokers → tables), on the active relay only
//
// Parts with a life (something to start or stop) go in one ordered list:
// started in order, stopped in reverse. A new front door or sink is one more
// phase (or a part of one) and one more entry in that list. The pieces talk
// through events (the dispatcher's `delivered`, the stream's `slotRecreated`)
// wired after both ends exist, so nothing refers to a part built later.
// Tests start the relay on port 0; main.ts starts it from the configuration.
// The phases are built in relay/assemble/ (pipeline.ts, server.ts, doors.ts);
// parts.ts holds what an edge relay (relay/edge/edge.ts) assembles alike.
import pg from 'pg';
import type { Config } from './config.ts';
import { asStartupError } from './db/connect-error.ts';
import type { Logger } from './log.ts';
import { ensurePublication, migrate } from './db/migrate.ts';
import { checkServer, ensureSlot, type SlotInfo } from './replication/slot.ts';
import type { ReplicationStream } from './replication/stream.ts';
import { formatLsn, type Lsn } from './replication/lsn.ts';
import type { SlotWatchdog } from './replication/watchdog.ts';
import type { Dispatcher } from './hub/dispatcher.ts';
import type { Router } from './hub/router.ts';
import type { RecoveryBuffer } from './hub/recovery.ts';
import type { WsServer } from './ws/server.ts';
import type { FastifyInstance } from 'fastify';
import { CLOSE } from '../client/protocol.ts';
import { createPruner, type Pruner } from './jobs/ttl.ts';
import { describeMode, securitySettings } from './auth/settings.ts';
import { Gate } from './auth/gate.ts';
import type { Publisher } from './publish/publisher.ts';
import type { RelayMetrics } from './metrics.ts';
import type { Sinks } from './sinks/sinks.ts';
import type { MqttFrontDoor } from './mqtt/start.ts';
import type { Ingest } from './ingest/ingest.ts';
import type { SupabaseDoor } from './supabase/door.ts';
import type { LiveFirst } from './live-first.ts';
import { buildPipeline, type Base, type Pipeline } from './assemble/pipeline.ts';
import { buildServer, type Server } from './assemble/server.ts';
import { buildIngest, buildMetrics, buildMqtt, buildSupabase } from './assemble/doors.ts';
import { closeClients, listen, SHUTDOWN_REASON, startAll, stopAll, type Component } from './assemble/parts.ts';

export {
  closeClients,
  createHttpApp,
  createReaders,
  listen,
  SHUTDOWN_REASON,
  startAll,
  stopAll,
  wsLimits,
  type Component,
} from './assemble/parts.ts';

export type RelayConfig = Omit<Config, 'databaseUrl' | 'dataDir' | 'embeddedPort' | 'example'> & {
  databaseUrl: string;
  example: boolean;
};

export interface Relay {
  /** http://host:port */
  url: string;
  /** ws://host:port/ws */
  wsUrl: string;
  /** ws://host:port/mqtt: MQTT over WebSocket */
  mqttWsUrl: string;
  /** MQTT over TCP: its port, or null when off or when the default was taken (docs/mqtt.md). */
  mqttPort: number | null;
  port: number;
  slot: string;
  /** The highest LSN sent to PostgreSQL as flushed. */
  readonly confirmedLsn: Lsn;
  /** Graceful: close clients with 1001, stop the jobs, confirm, end replication. */
  stop(): Promise<void>;
  /** The parts, for tests and benchmarks to observe: not an interface to build on. */
  internals: RelayInternals;
}

export interface RelayInternals {
  pool: pg.Pool;
  stream: ReplicationStream;
  dispatcher: Dispatcher;
  router: Router;
  recovery: RecoveryBuffer;
  ws: WsServer;
  app: FastifyInstance;
  gate: Gate;
  publisher: Publisher;
  metrics: RelayMetrics;
  watchdog: SlotWatchdog;
  pruner: Pruner;
  /** The change-stream sinks (JetStream, webhooks). */
  sinks: Sinks;
  /** The MQTT front door: its TCP port is null when off or when the default was taken. */
  mqtt: MqttFrontDoor;
  /** MQTT ingest flows (relay/ingest/). */
  ingest: Ingest;
  /** The Supabase Realtime door (docs/supabase.md). */
  supabase: SupabaseDoor;
  /** After a restart: live rows from a temporary slot while the window is re-read (live-first.ts). */
  liveFirst: LiveFirst;
}

export async function startRelay(config: RelayConfig, logger: Logger): Promise<Relay> {
  // Before touching the database: a relay that must not serve fails at once.
  const security = securitySettings(config);
  const gate = new Gate(security, logger);
  const mode = describeMode(security, config.host);
  if (mode.mode === 'open') logger.warn({ mode: mode.mode, host: config.host }, mode.message);
  else logger.info({ mode: mode.mode }, mode.message);
  const pool = new pg.Pool({ connectionString: config.databaseUrl, max: 4 });
  pool.on('error', (err) => logger.warn({ err }, 'idle database connection failed'));
  try {
    return await assemble({ config, logger, pool, gate });
  } catch (err) {
    await pool.end().catch(() => {});
    throw asStartupError(err, config.databaseUrl);
  }
}

async function assemble(base: Base): Promise<Relay> {
  const slot = await prepareDatabase(base);
  const pipeline = await buildPipeline(base, slot);
  try {
    return await assembleRest(base, slot, pipeline);
  } catch (err) {
    await pipeline.liveFirst.stop(); // its temporary slot goes with its connection
    throw err;
  }
}

async function assembleRest(base: Base, slot: SlotInfo, pipeline: Pipeline): Promise<Relay> {
  const lifecycle = { stopping: false };
  const server = await buildServer(base, pipeline, lifecycle);
  const metrics = await buildMetrics(base, pipeline, server);
  const mqtt = await buildMqtt(base, pipeline, server, metrics);
  const supabase = await buildSupabase(base, pipeline, server, metrics);
  const pruner = createPruner({
    pool: base.pool,
    schedule: base.config.ttlSchedule,
    logger: base.logger,
    onPruned: (table, rows) => metrics.pruned.inc({ table }, rows),
  });
  const ingest = buildIngest(base, server, metrics);
  const components = lifeOf(base, slot, pipeline, server, pruner, mqtt, ingest, supabase);
  await startAll(components, base.logger);
  const { config, logger, pool } = base;
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      lifecycle.stopping = true;
      logger.info({ slot: config.slot, connections: server.ws.connections.size }, 'relay stopping');
      await stopAll(components, logger);
      await pool.end();
    })());
  const address = server.app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  return {
    url: `http://${host}:${port}`,
    wsUrl: `ws://${host}:${port}/ws`,
    mqttWsUrl: `ws://${host}:${port}/mqtt`,
    mqttPort: mqtt.port,
    port,
    slot: config.slot,
    get confirmedLsn() {
      return pipeline.stream.confirmed;
    },
    stop,
    internals: { pool, ...pipeline, ...server, gate: base.gate, metrics, pruner, mqtt, ingest, supabase },
  };
}

/** Phase 1: the server can replicate, the schema and publication exist, the slot is ours. */
async function prepareDatabase({ config, logger, pool }: Base): Promise<SlotInfo> {
  await checkServer(pool);
  await migrate(pool, { example: config.example, logger });
  await ensurePublication(pool, config.publication);
  return ensureSlot(pool, config.slot, logger);
}

/**
 * The order of life. Stopping runs it backwards: clients first (so they can
 * resume on another relay at once), then the jobs, then the final
 * confirmation and the end of replication, then the server and its pools.
 */
function lifeOf(
  base: Base,
  slot: SlotInfo,
  pipeline: Pipeline,
  server: Server,
  pruner: Pruner,
  mqtt: MqttFrontDoor,
  ingest: Ingest,
  supabase: SupabaseDoor,
): Component[] {
  const { config, logger } = base;
  const { stream, watchdog } = pipeline;
  const { app, ws, publisher, snapshots } = server;
  return [
    // Its listener is bound already; if a later part fails to start, it closes too (close runs once).
    { name: 'mqtt', stop: () => mqtt.close() },
    { name: 'publisher', stop: () => publisher.close() },
    { name: 'snapshots', stop: () => snapshots.close() },
    { name: 'http', start: () => listen(app, config), stop: () => app.close() },
    // Sinks read where their streams stand before the first event reaches them.
    { name: 'sinks', start: () => pipeline.sinks.start() },
    {
      name: 'replication',
      start: () => {
        stream.start(pipeline.startLsn);
        const { epoch, created } = slot;
        const confirmed = formatLsn(slot.confirmedFlushLsn);
        logger.info({ slot: config.slot, lsn: formatLsn(pipeline.startLsn), confirmed, epoch, created }, 'slot ready');
      },
      stop: async () => {
        await stream.stop();
        logger.info(
          { slot: config.slot, delivered: formatLsn(stream.deliveredPosition), confirmed: formatLsn(stream.confirmed) },
          'relay stopped: confirmed the delivered position (up to the recovery window) and ended replication',
        );
      },
    },
    // Its connection ends, and PostgreSQL drops the temporary slot with it (it confirmed nothing on ours).
    { name: 'live-slot', stop: () => pipeline.liveFirst.stop() },
    // Stopped before the stream: publishes in flight finish, so the last confirmation covers them.
    { name: 'sinks-drain', stop: () => pipeline.sinks.stop() },
    { name: 'watchdog', start: () => watchdog.start(), stop: () => watchdog.stop() },
    { name: 'ttl', start: () => pruner.start(), stop: () => pruner.stop() },
    // Stopped right after the clients: batches in flight commit and are acknowledged, then the brokers disconnect.
    { name: 'ingest', start: () => ingest.start(), stop: () => ingest.stop() },
    {
      name: 'clients',
      stop: () =>
        Promise.all([closeClients(ws), mqtt.close(), supabase.close(CLOSE.goingAway, SHUTDOWN_REASON)]).then(() => {}),
    },
  ];
}
