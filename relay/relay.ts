// The relay, assembled: database checks and schema, the slot, the stream,
// the dispatcher and router, the HTTP/WebSocket server and the TTL job.
// Tests start it on port 0; main.ts starts it from the configuration.
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import pg from 'pg';
import { drizzle } from 'drizzle-orm/node-postgres';
import type { Config } from './config.ts';
import { WalcastError } from './errors.ts';
import { asStartupError } from './db/connect-error.ts';
import type { Logger } from './log.ts';
import { ensurePublication, migrate } from './db/migrate.ts';
import { loadRegistrations } from './db/registry.ts';
import { checkServer, ensureSlot, recreateSlot } from './replication/slot.ts';
import { ReplicationStream } from './replication/stream.ts';
import { formatLsn, parseLsn, type Lsn } from './replication/lsn.ts';
import { Dispatcher } from './hub/dispatcher.ts';
import { Router } from './hub/router.ts';
import { RecoveryBuffer } from './hub/recovery.ts';
import { SnapshotReader } from './hub/snapshot.ts';
import { WsServer } from './ws/server.ts';
import { healthRoutes } from './http/health.ts';
import { replayRoutes } from './http/replay.ts';
import { clientBundleRoutes } from './http/client-bundle.ts';
import { demoRoutes } from './http/demo.ts';
import { CLOSE } from '../client/protocol.ts';
import { createPruner } from './jobs/ttl.ts';
import { describeMode, securitySettings } from './auth/settings.ts';
import { Gate } from './auth/gate.ts';
import { Publisher } from './publish/publisher.ts';
import { displayName } from './hub/snapshot.ts';

import { RelayMetrics } from './metrics.ts';
import { metricsRoutes } from './http/metrics.ts';
import { SlotWatchdog } from './replication/watchdog.ts';
import { startMqtt, type MqttFrontDoor } from './mqtt/start.ts'; // MQTT front door (issue 12)

export { asStartupError, safeTarget } from './db/connect-error.ts';

export type RelayConfig = Omit<Config, 'databaseUrl' | 'dataDir' | 'embeddedPort' | 'example'> & {
  databaseUrl: string;
  example: boolean;
};

export interface Relay {
  /** http://host:port */
  url: string;
  /** ws://host:port/ws */
  wsUrl: string;
  port: number;
  slot: string;
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
  /** MQTT front door (relay/mqtt/): its TCP port is null when off or when the default was taken. */
  mqtt: MqttFrontDoor;
  /** ws://host:port/mqtt */
  mqttWsUrl: string;
  /** Graceful: close clients with 1001, stop the jobs, confirm, end replication. */
  stop(): Promise<void>;
}

/** The reason clients read in the 1001 close frame when the relay stops. */
export const SHUTDOWN_REASON = 'relay shutting down: reconnect and resume with since';

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
    return await assemble(config, logger, pool, gate);
  } catch (err) {
    await pool.end().catch(() => {});
    throw asStartupError(err, config.databaseUrl);
  }
}

async function assemble(config: RelayConfig, logger: Logger, pool: pg.Pool, gate: Gate): Promise<Relay> {
  await checkServer(pool);
  await migrate(pool, { example: config.example, logger });
  await ensurePublication(pool, config.publication);
  const slot = await ensureSlot(pool, config.slot, logger);
  const router = new Router();
  const recovery = new RecoveryBuffer({
    maxAgeMs: config.recoverySeconds * 1000,
    maxPerChannel: config.recoveryEvents,
    maxBytes: config.recoveryMaxBytes,
  });
  let stream: ReplicationStream | undefined;
  const dispatcher = new Dispatcher({
    router,
    logger,
    recovery,
    epoch: slot.epoch,
    startLsn: slot.confirmedFlushLsn,
    liveFromLsn: await currentWalLsn(pool),
    onDelivered: (lsn, timeMs) => {
      metrics?.commitToDispatch.observe((Date.now() - timeMs) / 1000);
      stream?.delivered(lsn, timeMs);
    },
  });
  dispatcher.setRegistrations(await loadRegistrations(drizzle(pool)));
  // Set below; the stream calls this only after it started.
  let ws: WsServer | undefined;
  let metrics: RelayMetrics | undefined;
  stream = new ReplicationStream({
    connectionString: config.databaseUrl,
    slot: config.slot,
    publication: config.publication,
    logger,
    holdMs: config.recoveryEvents > 0 ? config.recoverySeconds * 1000 : 0,
    onMessage: (msg) => dispatcher.handle(msg),
    recreateSlot: async (reason) => {
      const info = await recreateSlot(pool, config.slot, logger, reason);
      metrics?.slotRecreated.inc();
      dispatcher.reset(info.epoch, info.confirmedFlushLsn, await currentWalLsn(pool));
      ws?.closeAll(CLOSE.streamReset, 'the replication slot was recreated: subscribe again (earlier positions cannot be resumed)');
      mqttDoor?.server.disconnectAll(0x80, 'the replication slot was recreated: reconnect (sessions resume from current rows)'); // issue 12
      return info.confirmedFlushLsn;
    },
  });
  const liveStream = stream;
  stream.on('failure', () => metrics?.errors.inc({ code: 'replication_failed' }));
  const watchdog = new SlotWatchdog({
    pool,
    slot: config.slot,
    logger,
    intervalMs: config.watchdogMs,
    lagWarnSeconds: config.lagWarnSeconds,
    lagWarnBytes: config.lagWarnBytes,
    delivered: () => liveStream.deliveredPosition,
    streaming: () => liveStream.state === 'streaming',
    onSlotInvalid: (reason) => liveStream.invalidate(reason),
  });
  let stopping: Promise<void> | undefined;
  let mqttDoor: MqttFrontDoor | undefined; // set once the MQTT front door started
  // Reading the stream pauses while WebSocket or MQTT clients are backed up.
  const congested = { ws: false, mqtt: false };
  const congestion = (door: 'ws' | 'mqtt', on: boolean) => {
    congested[door] = on;
    if (congested.ws || congested.mqtt) liveStream.pause();
    else liveStream.resume();
  };
  const snapshots = new SnapshotReader(config.databaseUrl, () => dispatcher.registrationList());

  const app: FastifyInstance = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // One line per lifecycle event, not per request (health checks poll).
    logController: new LogController({ disableRequestLogging: true }),
  });
  await app.register(healthRoutes, {
    source: {
      slot: config.slot,
      state: () => liveStream.state,
      lastError: () => liveStream.lastError?.message,
      stopping: () => stopping !== undefined,
      lagging: () => watchdog.lagging,
      slotStatus: () => watchdog.status,
      mqtt: () => mqttDoor?.summary(), // MQTT front door (issue 12)
    },
  });
  await app.register(replayRoutes, { source: { recovery, position: () => dispatcher.position(), authorize: (header, channel) => gate.authorizeRead(header, channel) } });
  await app.register(clientBundleRoutes);
  // The demo writes to the example tables, so it exists only where they do.
  if (config.example) await app.register(demoRoutes, { pool });
  const publisher = new Publisher({
    databaseUrl: config.databaseUrl,
    logger,
    registration: (name) => dispatcher.registrationList().find((r) => displayName(r) === name),
  });
  ws = new WsServer({
    router,
    logger,
    maxSubscriptions: config.maxSubscriptions,
    maxFrameBytes: config.maxFrameBytes,
    sendQueueBytes: config.sendQueueBytes,
    slowConsumerMs: config.slowConsumerMs,
    onCongestion: (congested) => congestion('ws', congested),
    heartbeatMs: config.heartbeatMs,
    position: () => dispatcher.position(),
    hasTable: (name) => dispatcher.hasTable(name),
    recovery,
    snapshots,
    gate,
    publisher,
  });
  ws.attach(app.server);
  const wsServer = ws;
  const relayMetrics = (metrics = new RelayMetrics({
    counters: () => dispatcher.counters,
    connections: () => wsServer.connections.size,
    subscriptions: () => router.subscriptionCount,
    channels: () => router.channelCount,
    bytesSent: () => wsServer.bytesSent,
    slowConsumerCloses: () => wsServer.slowConsumerCloses,
    clientErrors: () => wsServer.clientErrors as Record<string, number>,
    streamState: () => liveStream.state,
    slot: () => watchdog.status,
    heartbeats: () => watchdog.heartbeats,
    recoveryEvents: () => recovery.count,
    recoveryBytes: () => recovery.bytes,
    gate: () => gate.counters,
    publish: () => publisher.counters,
  }));
  await app.register(metricsRoutes, { metrics: relayMetrics });
  // ---- MQTT front door (relay/mqtt/, issue 12) ----
  const mqtt = (mqttDoor = await startMqtt({
    databaseUrl: config.databaseUrl, router, gate, publisher, logger, host: config.host, port: config.mqttPort, http: app.server,
    registry: relayMetrics.registry, registrations: () => dispatcher.registrationList(), position: () => dispatcher.position(), recovery,
    maxPacketBytes: config.maxFrameBytes, sendQueueBytes: config.sendQueueBytes, slowConsumerMs: config.slowConsumerMs,
    maxSubscriptions: config.maxSubscriptions, retainedLimit: config.mqttRetainedLimit ?? 1000,
    connectTimeoutMs: config.authTimeoutMs ?? 10_000, onCongestion: (on) => congestion('mqtt', on),
  }));
  try {
    await app.listen({ host: config.host, port: config.port });
  } catch (err) {
    await mqtt.close();
    throw new WalcastError('listen_failed', { host: config.host, port: config.port, detail: (err as Error).message, fix: 'Set PORT (or --port) to a free port' }, err);
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;

  stream.start(slot.confirmedFlushLsn);
  logger.info({ slot: config.slot, lsn: formatLsn(slot.confirmedFlushLsn), epoch: slot.epoch, created: slot.created }, 'slot ready');
  const pruner = createPruner({ pool, schedule: config.ttlSchedule, logger, onPruned: (table, rows) => relayMetrics.pruned.inc({ table }, rows) });
  pruner.start();
  watchdog.start();

  const stop = () =>
    (stopping ??= (async () => {
      logger.info({ slot: config.slot, connections: wsServer.connections.size }, 'relay stopping');
      // Clients first, so they can resume on another relay at once; then the
      // jobs; then the final confirmation and the end of replication.
      await Promise.all([closeClients(wsServer), mqtt.close()]);
      await pruner.stop();
      await watchdog.stop();
      await liveStream.stop();
      logger.info(
        { slot: config.slot, delivered: formatLsn(liveStream.deliveredPosition), confirmed: formatLsn(liveStream.confirmed) },
        'relay stopped: confirmed the delivered position (up to the recovery window) and ended replication',
      );
      await app.close();
      await snapshots.close();
      await publisher.close();
      await pool.end();
    })());
  return {
    url: `http://${host}:${port}`, wsUrl: `ws://${host}:${port}/ws`, port, slot: config.slot, pool, stream, dispatcher, router,
    recovery, ws: wsServer, app, gate, publisher, metrics: relayMetrics, watchdog, stop,
    mqtt, mqttWsUrl: `ws://${host}:${port}/mqtt`,
  };
}

/** Close every client with 1001; one that does not finish the close handshake within 2 s is cut. */
async function closeClients(ws: WsServer): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([ws.close(CLOSE.goingAway, SHUTDOWN_REASON), new Promise((r) => (timer = setTimeout(r, 2000)))]);
  clearTimeout(timer);
  for (const client of ws.wss.clients) client.terminate();
}

async function currentWalLsn(pool: pg.Pool): Promise<Lsn> {
  const { rows } = await pool.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  return parseLsn(rows[0]!.lsn);
}
