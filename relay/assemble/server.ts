// Phase 3 of the relay (relay.ts): HTTP routes, the publisher, the snapshot
// reader and the WebSocket endpoint, and the congestion that pauses reading.
import type { FastifyInstance } from 'fastify';
import { limit } from '../config.ts';
import type { SnapshotReader } from '../db/snapshot.ts';
import { WsServer } from '../ws/server.ts';
import { healthRoutes } from '../http/health.ts';
import { replayRoutes } from '../http/replay.ts';
import { clientBundleRoutes } from '../http/client-bundle.ts';
import { demoRoutes } from '../http/demo.ts';
import { guardRequests } from '../http/guard.ts';
import { CLOSE } from '../../client/protocol.ts';
import type { Publisher } from '../publish/publisher.ts';
import { MQTT_WS_PATH } from '../mqtt/listener.ts';
import { SUPABASE_WS_PATH } from '../supabase/door.ts';
import type { Base, Pipeline } from './pipeline.ts';
import { createHttpApp, createReaders, wsLimits } from './parts.ts';

export interface Server {
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
export async function buildServer(base: Base, pipeline: Pipeline, lifecycle: { stopping: boolean }): Promise<Server> {
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
