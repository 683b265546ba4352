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
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import pg from 'pg';
import { drizzle } from 'drizzle-orm/node-postgres';
import { limit, type Config } from './config.ts';
import { WalcastError } from './errors.ts';
import { asStartupError } from './db/connect-error.ts';
import type { Logger } from './log.ts';
import { ensurePublication, migrate } from './db/migrate.ts';
import { loadRegistrations, type Registration } from './db/registry.ts';
import { shortName } from './table-names.ts';
import { SnapshotReader, type SnapshotReaderOptions } from './db/snapshot.ts';
import { checkServer, ensureSlot, recreateSlot, type SlotInfo } from './replication/slot.ts';
import { ReplicationStream } from './replication/stream.ts';
import { formatLsn, parseLsn, type Lsn } from './replication/lsn.ts';
import { SlotWatchdog } from './replication/watchdog.ts';
import { liveMark, rebuildFrom } from './replication/start-point.ts';
import { Dispatcher } from './hub/dispatcher.ts';
import { Router } from './hub/router.ts';
import { RecoveryBuffer } from './hub/recovery.ts';
import { WsServer } from './ws/server.ts';
import { healthRoutes } from './http/health.ts';
import { replayRoutes } from './http/replay.ts';
import { clientBundleRoutes } from './http/client-bundle.ts';
import { demoRoutes } from './http/demo.ts';
import { metricsRoutes } from './http/metrics.ts';
import { guardRequests } from './http/guard.ts';
import { CLOSE } from '../client/protocol.ts';
import { createPruner, type Pruner } from './jobs/ttl.ts';
import { describeMode, securitySettings } from './auth/settings.ts';
import { Gate } from './auth/gate.ts';
import { Publisher } from './publish/publisher.ts';
import { RelayMetrics } from './metrics.ts';
import { Sinks } from './sinks/sinks.ts';
import { mqttSettings, startMqtt, type MqttFrontDoor } from './mqtt/start.ts';
import { MQTT_WS_PATH } from './mqtt/listener.ts';
import { mqttMessageRoute } from './mqtt/messages.ts';
import { streamPoint } from './replication/position.ts';
import { Ingest } from './ingest/ingest.ts';
import { registerIngestMetrics } from './ingest/metrics.ts';
import { SUPABASE_WS_PATH, SupabaseDoor } from './supabase/door.ts';
import { supabaseMessageRoute } from './supabase/messages.ts';
import { DEFAULT_PRESENCE_LEASE_MS } from './supabase/presence.ts';
import { broadcastRoutes } from './supabase/rest.ts';
import { registerSupabaseMetrics } from './supabase/metrics.ts';
import { LiveFirst } from './live-first.ts';

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

/** A part with a life: the list of them is started in order and stopped in reverse. */
export interface Component {
  name: string;
  start?: () => void | Promise<void>;
  stop?: () => void | Promise<void>;
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
    return await assemble({ config, logger, pool, gate });
  } catch (err) {
    await pool.end().catch(() => {});
    throw asStartupError(err, config.databaseUrl);
  }
}

/** What every phase may use. */
interface Base {
  config: RelayConfig;
  logger: Logger;
  pool: pg.Pool;
  gate: Gate;
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

interface Pipeline {
  router: Router;
  recovery: RecoveryBuffer;
  dispatcher: Dispatcher;
  stream: ReplicationStream;
  watchdog: SlotWatchdog;
  sinks: Sinks;
  /** Where the stream starts reading (the slot's confirmed position, or the rebuild bound). */
  startLsn: Lsn;
  /** The live mark: until the stream has delivered this far it re-reads the recovery window (history). */
  liveFrom: Lsn;
  liveFirst: LiveFirst;
}

/** Phase 2: slot → stream → dispatcher → router and recovery window; the watchdog beside the stream. */
async function buildPipeline({ config, logger, pool }: Base, slot: SlotInfo): Promise<Pipeline> {
  const router = new Router();
  const recovery = new RecoveryBuffer({
    maxAgeMs: config.recoverySeconds * 1000,
    maxPerChannel: config.recoveryEvents,
    maxBytes: config.recoveryMaxBytes,
  });
  const liveFirst = new LiveFirst({
    connectionString: config.databaseUrl,
    slot: config.slot,
    publication: config.publication,
    logger,
    router,
    maxEventBytes: config.maxEventBytes,
    messageRoute,
    minBytes: config.liveSlotBytes ?? 0,
    pace: (on) => stream.hold('rebuild', on),
    rebuildShare: (config.rebuildPercent ?? 100) / 100,
  });
  const liveFrom = await liveMark(pool);
  const startLsn =
    config.recoveryRebuildBytes > 0
      ? rebuildFrom(slot.confirmedFlushLsn, liveFrom, config.recoveryRebuildBytes, logger)
      : slot.confirmedFlushLsn;
  // The sinks gate the slot's delivered position: it moves only once every
  // sink has what it covers. Their callbacks reach the stream and the
  // dispatcher built just below; none is called before the relay starts.
  const sinks = new Sinks(
    config,
    logger,
    {
      delivered: (lsn, timeMs) => stream.delivered(lsn, timeMs),
      rewind: () => stream.rewind(),
      hold: (on) => stream.hold('jetstream', on),
    },
    { pool, startPoint: async () => streamPoint(await currentWalLsn(pool), dispatcher.currentEpoch) },
  );
  const dispatcher = new Dispatcher({
    sink: sinks,
    router,
    logger,
    recovery,
    epoch: slot.epoch,
    startLsn,
    liveFromLsn: liveFrom,
    maxEventBytes: config.maxEventBytes,
    messageRoute,
    handover: liveFirst.permanent,
  });
  dispatcher.setRegistrations(await loadRegistrations(drizzle(pool)));
  const stream = new ReplicationStream({
    connectionString: config.databaseUrl,
    slot: config.slot,
    publication: config.publication,
    logger,
    holdMs: config.recoveryEvents > 0 ? config.recoverySeconds * 1000 : 0,
    holdMaxBytes: config.recoveryRebuildBytes > 0 ? config.recoveryRebuildBytes : undefined,
    onMessage: liveFirst.paced((msg) => dispatcher.handle(msg)),
    recreateSlot: async (reason) => {
      const info = await recreateSlot(pool, config.slot, logger, reason);
      return { epoch: info.epoch, confirmedFlushLsn: info.confirmedFlushLsn, liveFromLsn: await currentWalLsn(pool) };
    },
  });
  dispatcher.on('delivered', (lsn, timeMs) => {
    stream.dispatched(lsn);
    sinks.commit(lsn, timeMs);
  });
  stream.on('slotRecreated', (s) => {
    liveFirst.abandon();
    dispatcher.reset(s.epoch, s.confirmedFlushLsn, s.liveFromLsn);
  });
  stream.on('dispatched', (lsn) => liveFirst.reached(lsn));
  const watchdog = new SlotWatchdog({
    pool,
    slot: config.slot,
    logger,
    intervalMs: config.watchdogMs,
    lagWarnSeconds: config.lagWarnSeconds,
    lagWarnBytes: config.lagWarnBytes,
    // What reached the sockets (from the temporary slot, while it serves): a sink that is behind does not make the relay lag.
    delivered: () => (liveFirst.position > stream.dispatchedPosition ? liveFirst.position : stream.dispatchedPosition),
    streaming: () => stream.state === 'streaming',
    onSlotInvalid: (reason) => stream.invalidate(reason),
  });
  // Before the relay listens: every subscription starts after the temporary slot's start.
  await liveFirst.open(startLsn, liveFrom, slot.epoch, dispatcher.registrationList());
  return { router, recovery, dispatcher, stream, watchdog, sinks, startLsn, liveFrom, liveFirst };
}

/** Logical messages of the MQTT door and the Supabase door's broadcasts (prefixes walcast.mqtt, walcast.supabase). */
function messageRoute(prefix: string, content: Buffer): { channel: string; table: string } | undefined {
  return mqttMessageRoute(prefix, content) ?? supabaseMessageRoute(prefix, content);
}

interface Server {
  /** Reading the stream pauses while any front door's clients are backed up. */
  congestion(door: 'ws' | 'mqtt' | 'supabase', on: boolean): void;
  /** What later phases add to /readyz (the MQTT door's counts). */
  readiness: { mqtt?: () => object; ingest?: () => object };
  app: FastifyInstance;
  ws: WsServer;
  publisher: Publisher;
  snapshots: SnapshotReader;
}

/** Phase 3: HTTP routes, the publisher, the snapshot reader and the WebSocket endpoint. */
async function buildServer(base: Base, pipeline: Pipeline, lifecycle: { stopping: boolean }): Promise<Server> {
  const { config, logger, gate } = base;
  const { router, recovery, dispatcher, stream, watchdog } = pipeline;
  const readiness: Server['readiness'] = {};
  const congested = new Set<string>();
  // A congested door pauses both slots' streams: the permanent one (with the
  // sinks' holds, stream.hold) and, during a restart, the temporary one.
  const congestion = (door: 'ws' | 'mqtt' | 'supabase', on: boolean) => {
    stream.hold(door, on);
    if (on) congested.add(door);
    else congested.delete(door);
    if (congested.size > 0) pipeline.liveFirst.pause();
    else pipeline.liveFirst.resume();
  };
  const app = createHttpApp(config, logger);
  guardRequests(app, gate);
  const { liveFrom } = pipeline;
  await app.register(healthRoutes, {
    source: {
      slot: config.slot,
      state: () => stream.state,
      stopping: () => lifecycle.stopping,
      lagging: () => watchdog.lagging,
      slotStatus: () => watchdog.status,
      rebuilding: () => (stream.dispatchedPosition < liveFrom ? Number(liveFrom - stream.dispatchedPosition) : 0),
      liveSlot: () => pipeline.liveFirst.status,
      sinks: () => pipeline.sinks.status(),
      mqtt: () => readiness.mqtt?.(),
      ingest: () => readiness.ingest?.(),
    },
  });
  const authorize = (header: string | undefined, channel: string) => gate.authorizeRead(header, channel);
  await app.register(replayRoutes, {
    source: {
      recovery,
      position: () => dispatcher.position(),
      authorize,
      maxBytes: limit(config, 'replayMaxBytes'),
      maxPerAddress: limit(config, 'replaysPerIp'),
    },
  });
  await app.register(clientBundleRoutes);
  // The demo writes to the example tables, so it exists only where they do;
  // its writes skip the publish checks, so they exist only in open mode.
  const demoWrites = !gate.authRequired && gate.settings.publish === 'open';
  if (config.example) await app.register(demoRoutes, { pool: base.pool, writes: demoWrites });
  const { publisher, snapshots } = createReaders(
    config,
    { read: config.databaseUrl, write: config.databaseUrl },
    () => dispatcher.registrationList(),
    logger,
  );
  const ws = new WsServer({
    otherDoors: [MQTT_WS_PATH, SUPABASE_WS_PATH],
    router,
    logger,
    ...wsLimits(config),
    onCongestion: (on) => congestion('ws', on),
    position: () => dispatcher.position(),
    hasTable: (name) => dispatcher.hasTable(name),
    recovery,
    snapshots,
    gate,
    publisher,
  });
  ws.attach(app.server);
  // Every socket is counted per address before a byte of it is parsed; past the total, Node closes new ones at once.
  app.server.prependListener('connection', (socket) => gate.track(socket));
  app.server.maxConnections = limit(config, 'maxConnections');
  const reason = 'the replication slot was recreated: subscribe again (earlier positions cannot be resumed)';
  stream.on('slotRecreated', () => ws.closeAll(CLOSE.streamReset, reason));
  return { congestion, readiness, app, ws, publisher, snapshots };
}

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

/** Phase 4: /metrics reads every part; the counters that are events are wired here. */
async function buildMetrics({ gate }: Base, pipeline: Pipeline, server: Server): Promise<RelayMetrics> {
  const { router, recovery, dispatcher, stream, watchdog } = pipeline;
  const { ws, publisher } = server;
  const metrics = new RelayMetrics({
    // The temporary slot's deliveries (after a restart) are deliveries too; its events are counted once the permanent slot re-reads them.
    counters: () => ({
      ...dispatcher.counters,
      deliveries: dispatcher.counters.deliveries + pipeline.liveFirst.deliveries,
    }),
    connections: () => ws.connections.size,
    subscriptions: () => router.subscriptionCount,
    channels: () => router.channelCount,
    bytesSent: () => ws.bytesSent,
    slowConsumerCloses: () => ws.slowConsumerCloses,
    clientErrors: () => ws.clientErrors as Record<string, number>,
    streamState: () => stream.state,
    slot: () => watchdog.status,
    heartbeats: () => watchdog.heartbeats,
    recoveryEvents: () => recovery.count,
    recoveryBytes: () => recovery.bytes,
    gate: () => gate.counters,
    publish: () => publisher.counters,
  });
  dispatcher.on('delivered', (_lsn, timeMs) => metrics.commitToDispatch.observe((Date.now() - timeMs) / 1000));
  stream.on('slotRecreated', () => metrics.slotRecreated.inc());
  stream.on('failure', () => metrics.errors.inc({ code: 'replication_failed' }));
  pipeline.sinks.register(metrics.registry);
  await server.app.register(metricsRoutes, { metrics });
  return metrics;
}

/** Phase 5: the MQTT front door; it binds its TCP port now (listen_failed stops start-up here). */
async function buildMqtt(
  { config, logger, gate }: Base,
  pipeline: Pipeline,
  server: Server,
  metrics: RelayMetrics,
): Promise<MqttFrontDoor> {
  const { router, recovery, dispatcher, stream } = pipeline;
  const door = await startMqtt({
    databaseUrl: config.databaseUrl,
    router,
    gate,
    publisher: server.publisher,
    logger,
    ...mqttSettings(config),
    http: server.app.server,
    registry: metrics.registry,
    registrations: () => dispatcher.registrationList(),
    position: () => dispatcher.position(),
    recovery,
    onCongestion: (on) => server.congestion('mqtt', on),
  });
  server.readiness.mqtt = door.summary;
  const reason = 'the replication slot was recreated: reconnect (sessions resume from current rows)';
  stream.on('slotRecreated', () => door.server.disconnectAll(0x80, reason));
  let closing: Promise<void> | undefined;
  return { ...door, close: () => (closing ??= door.close()) };
}

/** Phase 7: MQTT ingest; it connects to brokers when started (after replication, on the active relay). */
function buildIngest({ config, logger }: Base, server: Server, metrics: RelayMetrics): Ingest {
  const ingest = new Ingest({ databaseUrl: config.databaseUrl, logger });
  registerIngestMetrics(metrics.registry, ingest);
  server.readiness.ingest = () => ingest.summary();
  return ingest;
}

/** Phase 6: the Supabase Realtime door on the HTTP server: its socket endpoint and REST broadcast. */
async function buildSupabase(
  { config, logger, gate, pool }: Base,
  pipeline: Pipeline,
  server: Server,
  metrics: RelayMetrics,
): Promise<SupabaseDoor> {
  const door = new SupabaseDoor({
    router: pipeline.router,
    gate,
    pool,
    logger,
    registrations: () => pipeline.dispatcher.registrationList(),
    recovery: pipeline.recovery,
    maxFrameBytes: config.maxFrameBytes,
    sendQueueBytes: config.sendQueueBytes,
    maxEventBytes: config.maxEventBytes,
    heartbeatMs: config.heartbeatMs,
    slowConsumerMs: config.slowConsumerMs,
    maxSubscriptions: config.maxSubscriptions,
    presenceLeaseMs: config.presenceLeaseMs ?? DEFAULT_PRESENCE_LEASE_MS,
    onCongestion: (on) => server.congestion('supabase', on),
  });
  door.attach(server.app.server);
  registerSupabaseMetrics(metrics.registry, () => door.counters);
  await server.app.register(broadcastRoutes, { gate, pool });
  const reason = 'the replication slot was recreated: reconnect';
  pipeline.stream.on('slotRecreated', () => void door.closeAll(CLOSE.streamReset, reason));
  return door;
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

async function currentWalLsn(pool: pg.Pool): Promise<Lsn> {
  const { rows } = await pool.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  return parseLsn(rows[0]!.lsn);
}
