// The MQTT front door on an edge relay (docs/mqtt.md, docs/scaling.md): the
// slot relay's door (relay/mqtt/), on the edge's router, recovery window and
// gate, fed from the stream. What differs is where the database is:
//   - table keys and retained rows are read from DATABASE_URL (a read-only
//     role or a replica), after the replica has replayed the edge's position
//     (snapshots.ts), so the rows and the live events meet with no gap and
//     no repeat, as on the slot relay;
//   - writes (retained publishes as rows, MQTT messages, stored retained
//     messages, persistent sessions) go to WALCAST_PUBLISH_DATABASE_URL;
//     without it publishes are refused (publishing_disabled, reason 0x87)
//     and sessions are clean;
//   - a persistent session whose position is before the edge's recovery
//     window reads what it missed from the stream (history.ts), as a
//     WebSocket resume does;
//   - CONNECT is refused with Server unavailable (0x88; 3.1.1: 3) until the
//     edge first consumes its stream, as WebSocket upgrades get 503 meanwhile;
//   - MQTT messages (retain=0 publishes, wills) are written to the WAL through
//     the publish URL and come back on the change stream as logical messages
//     (docs/streams.md#logical-messages), so subscribers on every edge and on
//     the slot relay get them, in commit order with the rows.
import type { Server as HttpServer } from 'node:http';
import type { Registry } from 'prom-client';
import type { EdgeConfig } from './edge.ts';
import type { Logger } from '../log.ts';
import type { Gate } from '../auth/gate.ts';
import type { Router } from '../hub/router.ts';
import type { RecoveryBuffer } from '../hub/recovery.ts';
import type { Publisher } from '../publish/publisher.ts';
import type { Registration } from '../db/registry.ts';
import type { StreamSource } from './source.ts';
import type { StreamHistory } from './history.ts';
import { mqttSettings, startMqtt, type MqttFrontDoor } from '../mqtt/start.ts';

export interface EdgeMqttParts {
  databaseUrl: string;
  http: HttpServer;
  registry: Registry;
  router: Router;
  recovery: RecoveryBuffer;
  gate: Gate;
  publisher: Publisher;
  source: StreamSource;
  registrations: () => Registration[];
  caughtUp: () => Promise<void>;
  history: StreamHistory;
  onCongestion: (congested: boolean) => void;
  publishRefusal: string;
  starting: string;
}

const RESET = 'the replication slot was recreated: reconnect (sessions resume from current rows)';

export async function startEdgeMqtt(config: EdgeConfig, logger: Logger, p: EdgeMqttParts): Promise<MqttFrontDoor> {
  const { source } = p;
  let ready = false;
  void source.ready.then(() => (ready = source.state !== 'closed'));
  const door = await startMqtt({
    databaseUrl: p.databaseUrl,
    writeDatabaseUrl: config.publishDatabaseUrl ?? null,
    publishRefusal: p.publishRefusal,
    beforeRead: p.caughtUp,
    history: p.history,
    unavailable: () => (ready ? null : p.starting),
    router: p.router,
    gate: p.gate,
    publisher: p.publisher,
    logger,
    ...mqttSettings(config),
    http: p.http,
    registry: p.registry,
    registrations: p.registrations,
    position: () => source.position,
    recovery: p.recovery,
    onCongestion: p.onCongestion,
  });
  source.on('epoch', () => door.server.disconnectAll(0x80, RESET));
  let closing: Promise<void> | undefined;
  return { ...door, close: () => (closing ??= door.close()) };
}

/** Pause the stream while any door is backed up; resume when none is. */
export function congestionOf(
  source: Pick<StreamSource, 'pause' | 'resume'>,
): (door: 'ws' | 'mqtt' | 'supabase', on: boolean) => void {
  const congested = new Set<string>();
  return (door, on) => {
    const was = congested.size > 0;
    if (on) congested.add(door);
    else congested.delete(door);
    const now = congested.size > 0;
    if (now === was) return;
    if (now) source.pause();
    else source.resume();
  };
}
