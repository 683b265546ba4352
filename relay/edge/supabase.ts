// The Supabase Realtime door on an edge relay (docs/supabase.md, docs/scaling.md):
// the slot relay's door (relay/supabase/), on the edge's router, recovery
// window and gate, fed from the stream. What differs is where the database is:
//   - postgres_changes come from the stream: the door parses each row event's
//     frame (the slot relay hands it the event itself), for tables a binding
//     watches; table columns are read from DATABASE_URL;
//   - broadcasts and presence are written through WALCAST_PUBLISH_DATABASE_URL
//     (pg_logical_emit_message, walcast.supabase_presence) and come back on
//     the stream as logical messages, so every edge and the slot relay deliver
//     them; presence_state is read there too (the primary: current). Without
//     it, broadcast and track are refused (supabase_read_only) and
//     presence_state is read from DATABASE_URL; receiving still works;
//   - the resume extension's positions are the stream's: valid on any edge
//     and on the slot relay, answered from the edge's recovery window;
//   - upgrades get 503 until the edge consumes its stream (edge.ts);
//   - a new epoch (the slot recreated) closes the door's sockets with 4010.
import pg from 'pg';
import type { Registry } from 'prom-client';
import type { FastifyInstance } from 'fastify';
import type { EdgeConfig } from './edge.ts';
import type { Logger } from '../log.ts';
import type { Gate } from '../auth/gate.ts';
import type { Router } from '../hub/router.ts';
import type { RecoveryBuffer } from '../hub/recovery.ts';
import type { Registration } from '../db/registry.ts';
import type { StreamSource } from './source.ts';
import { CLOSE } from '../../client/protocol.ts';
import { SupabaseDoor } from '../supabase/door.ts';
import { DEFAULT_PRESENCE_LEASE_MS } from '../supabase/presence.ts';
import { broadcastRoutes } from '../supabase/rest.ts';
import { registerSupabaseMetrics } from '../supabase/metrics.ts';
import { wsLimits } from '../relay.ts';

export interface EdgeSupabaseParts {
  /** DATABASE_URL's pool (read-only role or replica): table columns, and presence_state without a publish URL. */
  pool: pg.Pool;
  app: FastifyInstance;
  registry: Registry;
  router: Router;
  recovery: RecoveryBuffer;
  gate: Gate;
  source: StreamSource;
  registrations: () => Registration[];
  onCongestion: (congested: boolean) => void;
}

/** Connections to WALCAST_PUBLISH_DATABASE_URL for broadcasts and presence (each write is one statement). */
const WRITE_POOL_SIZE = 4;

export const SUPABASE_READ_ONLY =
  'this is an edge relay without WALCAST_PUBLISH_DATABASE_URL, so it cannot write broadcasts or presence';

export interface EdgeSupabase {
  door: SupabaseDoor;
  /** Take upgrades (once the edge consumes its stream) and start presence's lease. */
  attach(): void;
  close(): Promise<void>;
}

export async function buildEdgeSupabase(
  config: EdgeConfig,
  logger: Logger,
  p: EdgeSupabaseParts,
): Promise<EdgeSupabase> {
  const writePool = config.publishDatabaseUrl
    ? new pg.Pool({ connectionString: config.publishDatabaseUrl, max: WRITE_POOL_SIZE })
    : null;
  writePool?.on('error', (err) => logger.warn({ err }, 'idle publish database connection failed'));
  const door = new SupabaseDoor({
    router: p.router,
    gate: p.gate,
    pool: p.pool,
    writePool,
    readOnly: SUPABASE_READ_ONLY,
    logger,
    registrations: p.registrations,
    recovery: p.recovery,
    ...wsLimits(config),
    presenceLeaseMs: config.presenceLeaseMs ?? DEFAULT_PRESENCE_LEASE_MS,
    onCongestion: p.onCongestion,
  });
  registerSupabaseMetrics(p.registry, () => door.counters);
  await p.app.register(broadcastRoutes, { gate: p.gate, pool: writePool, readOnly: door.readOnlyReason });
  p.source.on('epoch', () => void door.closeAll(CLOSE.streamReset, 'the replication slot was recreated: reconnect'));
  let attached = false;
  let closing: Promise<void> | undefined;
  return {
    door,
    attach: () => {
      if (attached) return;
      attached = true;
      door.attach(p.app.server);
    },
    close: () =>
      (closing ??= (async () => {
        await door.close(CLOSE.goingAway, 'edge shutting down');
        await writePool?.end().catch(() => {});
      })()),
  };
}
