// Phases 4–7 of the relay (relay.ts): /metrics, and the front doors and
// ingest that plug into the same router, recovery window and gate.
import { RelayMetrics } from '../metrics.ts';
import { metricsRoutes } from '../http/metrics.ts';
import { CLOSE } from '../../client/protocol.ts';
import { mqttSettings, startMqtt, type MqttFrontDoor } from '../mqtt/start.ts';
import { Ingest } from '../ingest/ingest.ts';
import { registerIngestMetrics } from '../ingest/metrics.ts';
import { SupabaseDoor } from '../supabase/door.ts';
import { DEFAULT_PRESENCE_LEASE_MS } from '../supabase/presence.ts';
import { broadcastRoutes } from '../supabase/rest.ts';
import { registerSupabaseMetrics } from '../supabase/metrics.ts';
import type { Base, Pipeline } from './pipeline.ts';
import type { Server } from './server.ts';
import { wsLimits } from './parts.ts';

/** Phase 4: /metrics reads every part; the counters that are events are wired here. */
export async function buildMetrics({ gate }: Base, pipeline: Pipeline, server: Server): Promise<RelayMetrics> {
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
export async function buildMqtt(
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
export function buildIngest({ config, logger }: Base, server: Server, metrics: RelayMetrics): Ingest {
  const ingest = new Ingest({ databaseUrl: config.databaseUrl, logger });
  registerIngestMetrics(metrics.registry, ingest);
  server.readiness.ingest = () => ingest.summary();
  return ingest;
}

/** Phase 6: the Supabase Realtime door on the HTTP server: its socket endpoint and REST broadcast. */
export async function buildSupabase(
  { config, logger, gate, pool }: Base,
  pipeline: Pipeline,
  server: Server,
  metrics: RelayMetrics,
): Promise<SupabaseDoor> {
  const door = new SupabaseDoor({
    router: pipeline.router,
    gate,
    pool,
    writePool: pool,
    logger,
    registrations: () => pipeline.dispatcher.registrationList(),
    recovery: pipeline.recovery,
    ...wsLimits(config),
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
