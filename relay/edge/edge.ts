// An edge relay (`walcast edge`): serves WebSocket, MQTT and Supabase clients from the
// JetStream change stream the slot relay fills (relay/sinks/jetstream.ts),
// so that fan-out grows with the number of edges while one relay reads the
// slot. No replication slot, no REPLICATION privilege: its DATABASE_URL (a
// read-only role or a read replica) is read for the registered tables, the
// slot's epoch and snapshots. Publishes from its clients INSERT into
// WALCAST_PUBLISH_DATABASE_URL, or are refused without it.
//
//   stream ─▶ source.ts (ordered consumer) ─▶ decode.ts ─▶ hub/deliver.ts (router, recovery window)
//                                                              ─▶ ws/ (the same protocol, coalescing, limits)
//                                                              ─▶ mqtt/ (the same door: mqtt.ts)
//                                                              ─▶ supabase/ (the same door: supabase.ts)
//   subscribe with `since` before the window ─▶ history.ts (the stream, by position)
//
// Parts with a life are started in order and stopped in reverse, as in relay.ts.
import pg from 'pg';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config.ts';
import { limit } from '../config.ts';
import { WalcastError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { asStartupError } from '../db/connect-error.ts';
import type { SnapshotReader } from '../db/snapshot.ts';
import type { Publisher } from '../publish/publisher.ts';
import { Router } from '../hub/router.ts';
import { RecoveryBuffer } from '../hub/recovery.ts';
import type { DispatcherCounters } from '../hub/dispatcher.ts';
import { WsServer } from '../ws/server.ts';
import { Gate } from '../auth/gate.ts';
import { describeMode, securitySettings } from '../auth/settings.ts';
import { guardRequests } from '../http/guard.ts';
import { replayRoutes } from '../http/replay.ts';
import { clientBundleRoutes } from '../http/client-bundle.ts';
import { metricsRoutes } from '../http/metrics.ts';
import { streamPoint } from '../replication/position.ts';
import { CLOSE } from '../../client/protocol.ts';
import {
  closeClients,
  createHttpApp,
  createReaders,
  listen,
  wsLimits,
  startAll,
  stopAll,
  type Component,
} from '../relay.ts';
import { StreamSource } from './source.ts';
import { StreamHistory } from './history.ts';
import { EdgeRegistrations } from './registrations.ts';
import { edgeHealthRoutes } from './health.ts';
import { edgeSnapshots, replicaCaughtUp } from './snapshots.ts';
import { congestionOf, startEdgeMqtt } from './mqtt.ts';
import { MQTT_WS_PATH } from '../mqtt/listener.ts';
import type { MqttFrontDoor } from '../mqtt/start.ts';
import { SUPABASE_WS_PATH, type SupabaseDoor } from '../supabase/door.ts';
import { buildEdgeSupabase, type EdgeSupabase } from './supabase.ts';
import { routeStreamEvent } from './route.ts';
import { edgeMetrics } from './metrics.ts';
import { natsSettings } from '../sinks/sinks.ts';

export type EdgeConfig = Omit<Config, 'dataDir' | 'embeddedPort' | 'example'>;

export interface EdgeRelay {
  url: string;
  wsUrl: string;
  port: number;
  /** ws://host:port/mqtt: MQTT over WebSocket */
  mqttWsUrl: string;
  /** MQTT over TCP: its port, or null when off or when the default was taken (docs/mqtt.md). */
  mqttPort: number | null;
  /** Resolves once the edge consumes the stream and accepts WebSocket clients. */
  ready: Promise<void>;
  stop(): Promise<void>;
  /** The parts, for tests and benchmarks to observe. */
  internals: {
    source: StreamSource;
    router: Router;
    recovery: RecoveryBuffer;
    ws: WsServer;
    app: FastifyInstance;
    mqtt: MqttFrontDoor;
    supabase: SupabaseDoor;
  };
}

export const PUBLISH_REFUSAL =
  'this is an edge relay without WALCAST_PUBLISH_DATABASE_URL: publish through the slot relay, or set it on the edge';
const STARTING = 'the edge is not consuming the change stream yet; try again shortly (GET /readyz says why)';

export async function startEdge(config: EdgeConfig, logger: Logger): Promise<EdgeRelay> {
  if (!config.natsUrl) throw new WalcastError('edge_needs_nats');
  if (!config.databaseUrl) throw new WalcastError('edge_needs_database');
  const publishUrl = config.publishDatabaseUrl;
  const security = securitySettings(publishUrl ? config : { ...config, publish: 'off' });
  const gate = new Gate(security, logger);
  const mode = describeMode(security, config.host);
  logger[mode.mode === 'open' ? 'warn' : 'info']({ mode: mode.mode, role: 'edge' }, mode.message);
  const pool = new pg.Pool({ connectionString: config.databaseUrl, max: 2 });
  pool.on('error', (err) => logger.warn({ err }, 'idle database connection failed'));
  const registrations = new EdgeRegistrations(pool, config.slot, logger);
  try {
    await registrations.start();
  } catch (err) {
    await pool.end().catch(() => {});
    throw asStartupError(err, config.databaseUrl);
  }
  return assemble(config, logger, {
    pool,
    gate,
    registrations,
    databaseUrl: config.databaseUrl,
    natsUrl: config.natsUrl,
  });
}

interface Base {
  pool: pg.Pool;
  gate: Gate;
  registrations: EdgeRegistrations;
  databaseUrl: string;
  natsUrl: string;
}

interface Pipeline {
  router: Router;
  recovery: RecoveryBuffer;
  counters: DispatcherCounters;
  source: StreamSource;
}

/** Phase 1: stream → source → hub (router, recovery window, counters). */
function buildPipeline(config: EdgeConfig, logger: Logger, base: Base): Pipeline {
  const router = new Router();
  const recovery = new RecoveryBuffer({
    maxAgeMs: config.recoverySeconds * 1000,
    maxPerChannel: config.recoveryEvents,
    maxBytes: config.recoveryMaxBytes,
  });
  const counters: DispatcherCounters = { rows: 0, events: 0, deliveries: 0, unrouted: 0, transactions: 0, tooLarge: 0 };
  const hub = { router, recovery, counters };
  const source = new StreamSource({
    ...natsSettings(config, base.natsUrl),
    logger,
    epoch: () => base.registrations.epoch(),
    onStart: (position, epoch) => recovery.reset(position, epoch),
    onEvent: (e) => routeStreamEvent(hub, e),
  });
  return { router, recovery, counters, source };
}

interface Server {
  app: FastifyInstance;
  ws: WsServer;
  publisher: Publisher;
  snapshots: SnapshotReader;
  mqtt: MqttFrontDoor;
  supabase: EdgeSupabase;
}

/** Phase 2: HTTP routes, the publisher, the snapshot reader, the WebSocket server, metrics, the MQTT door (binds its TCP port). */
async function buildServer(
  config: EdgeConfig,
  logger: Logger,
  base: Base,
  p: Pipeline,
  lifecycle: { stopping: boolean },
): Promise<Server> {
  const { gate, registrations } = base;
  const { router, recovery, counters, source } = p;
  const app = createHttpApp(config, logger);
  guardRequests(app, gate);
  const readiness: { mqtt?: () => object } = {};
  await app.register(edgeHealthRoutes, {
    source,
    stopping: () => lifecycle.stopping,
    lagWarnSeconds: config.lagWarnSeconds,
    mqtt: () => readiness.mqtt?.(),
  });
  await app.register(replayRoutes, {
    source: {
      recovery,
      position: () => source.position,
      authorize: (header: string | undefined, channel: string) => gate.authorizeRead(header, channel),
      maxBytes: limit(config, 'replayMaxBytes'),
      maxPerAddress: limit(config, 'replaysPerIp'),
    },
  });
  await app.register(clientBundleRoutes);
  const caughtUp = replicaCaughtUp(base.pool, () => source.position, limit(config, 'snapshotTimeoutMs'));
  const { publisher, snapshots } = createReaders(
    config,
    { read: base.databaseUrl, write: config.publishDatabaseUrl ?? base.databaseUrl },
    () => registrations.registrations(),
    logger,
    edgeSnapshots(caughtUp),
  );
  // Backed-up sockets of either door stop the stream, as on the slot relay (the others are not flooded past their queues).
  const congestion = congestionOf(source);
  // One for both doors: its bound on concurrent reads is the edge's.
  const history = new StreamHistory(source);
  const ws = new WsServer({
    router,
    logger,
    ...wsLimits(config),
    otherDoors: [MQTT_WS_PATH, SUPABASE_WS_PATH],
    onCongestion: (on) => congestion('ws', on),
    position: () => source.position,
    hasTable: (name) => registrations.hasTable(name),
    recovery,
    snapshots,
    gate,
    publisher,
    publishRefusal: config.publishDatabaseUrl ? undefined : PUBLISH_REFUSAL,
    history,
  });
  source.on('epoch', (epoch) => {
    recovery.reset(streamPoint(0n, epoch), epoch);
    ws.closeAll(
      CLOSE.streamReset,
      'the replication slot was recreated: subscribe again (earlier positions cannot be resumed)',
    );
  });
  const metrics = edgeMetrics({ source, counters, ws, router, recovery, gate, publisher });
  source.on('transaction', (timeMs) => {
    counters.transactions++;
    metrics.commitToDispatch.observe((Date.now() - timeMs) / 1000);
  });
  await app.register(metricsRoutes, { metrics });
  const supabase = await buildEdgeSupabase(config, logger, {
    pool: base.pool,
    app,
    registry: metrics.registry,
    router,
    recovery,
    gate,
    source,
    registrations: () => registrations.registrations(),
    onCongestion: (on) => congestion('supabase', on),
  });
  acceptWhenReady(app, ws, gate, source, config, supabase);
  const mqtt = await startEdgeMqtt(config, logger, {
    databaseUrl: base.databaseUrl,
    http: app.server,
    registry: metrics.registry,
    router,
    recovery,
    gate,
    publisher,
    source,
    registrations: () => registrations.registrations(),
    caughtUp,
    history,
    onCongestion: (on) => congestion('mqtt', on),
    publishRefusal: PUBLISH_REFUSAL,
    starting: STARTING,
  }).catch(async (err: unknown) => {
    await Promise.all([publisher.close(), snapshots.close(), supabase.close()]).catch(() => {});
    throw err;
  });
  readiness.mqtt = mqtt.summary;
  return { app, ws, publisher, snapshots, mqtt, supabase };
}

async function assemble(config: EdgeConfig, logger: Logger, base: Base): Promise<EdgeRelay> {
  const pipeline = buildPipeline(config, logger, base);
  const lifecycle = { stopping: false };
  const { app, ws, publisher, snapshots, mqtt, supabase } = await buildServer(
    config,
    logger,
    base,
    pipeline,
    lifecycle,
  ).catch(async (err: unknown) => {
    await Promise.all([base.registrations.stop(), base.pool.end()]).catch(() => {});
    throw err;
  });
  const { source, router, recovery } = pipeline;
  // Started in order, stopped in reverse: clients first, then the source, the server, the readers.
  const components: Component[] = [
    // Its TCP listener is bound already; if a later part fails to start, it closes too (close runs once).
    { name: 'mqtt', stop: () => mqtt.close() },
    // Its write pool is open already; close runs once (again with the clients).
    { name: 'supabase', stop: () => supabase.close() },
    { name: 'publisher', stop: () => publisher.close() },
    { name: 'snapshots', stop: () => snapshots.close() },
    { name: 'registrations', stop: () => base.registrations.stop() },
    { name: 'http', start: () => listen(app, config), stop: () => app.close() },
    { name: 'source', start: () => source.start(), stop: () => source.stop() },
    {
      name: 'clients',
      stop: () => Promise.all([closeClients(ws), mqtt.close(), supabase.close()]).then(() => {}),
    },
  ];
  await startAll(components, logger).catch(async (err: unknown) => {
    await base.pool.end().catch(() => {});
    throw err;
  });
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      lifecycle.stopping = true;
      logger.info({ connections: ws.connections.size }, 'edge stopping');
      await stopAll(components, logger);
      await base.pool.end();
    })());
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  return {
    url: `http://${host}:${port}`,
    wsUrl: `ws://${host}:${port}/ws`,
    port,
    mqttWsUrl: `ws://${host}:${port}${MQTT_WS_PATH}`,
    mqttPort: mqtt.port,
    ready: source.ready,
    stop,
    internals: { source, router, recovery, ws, app, mqtt, supabase: supabase.door },
  };
}

/**
 * Until the source consumes, WebSocket and Supabase upgrades get 503 (the SDK tries its next URL, realtime-js
 * reconnects); then the WebSocket server and the Supabase door take them. MQTT's upgrades go to its door at once,
 * which refuses CONNECT meanwhile (relay/edge/mqtt.ts).
 */
function acceptWhenReady(
  app: FastifyInstance,
  ws: WsServer,
  gate: Gate,
  source: StreamSource,
  config: EdgeConfig,
  supabase: EdgeSupabase,
): void {
  const refuse = (req: { url?: string | undefined }, socket: { end(text: string): void }) => {
    if ((req.url ?? '').split('?')[0] === MQTT_WS_PATH) return;
    socket.end(
      `HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n${STARTING}\n`,
    );
  };
  app.server.on('upgrade', refuse);
  // Every socket is counted per address before a byte of it is parsed; past the total, Node closes new ones at once.
  app.server.prependListener('connection', (socket) => gate.track(socket));
  app.server.maxConnections = limit(config, 'maxConnections');
  void source.ready.then(() => {
    if (source.state === 'closed') return;
    app.server.off('upgrade', refuse);
    ws.attach(app.server);
    supabase.attach();
  });
}
