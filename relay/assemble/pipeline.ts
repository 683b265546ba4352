// Phase 2 of the relay (relay.ts): slot → stream → dispatcher → router and
// recovery window, the sinks that gate the slot's confirmed position, the
// watchdog beside the stream, and the temporary slot of a restart.
import type pg from 'pg';
import { drizzle } from 'drizzle-orm/node-postgres';
import type { Logger } from '../log.ts';
import type { Gate } from '../auth/gate.ts';
import type { RelayConfig } from '../relay.ts';
import { loadRegistrations } from '../db/registry.ts';
import { recreateSlot, type SlotInfo } from '../replication/slot.ts';
import { ReplicationStream } from '../replication/stream.ts';
import { parseLsn, type Lsn } from '../replication/lsn.ts';
import { SlotWatchdog } from '../replication/watchdog.ts';
import { liveMark, rebuildFrom } from '../replication/start-point.ts';
import { streamPoint } from '../replication/position.ts';
import { Dispatcher } from '../hub/dispatcher.ts';
import { Router } from '../hub/router.ts';
import { RecoveryBuffer } from '../hub/recovery.ts';
import { Sinks } from '../sinks/sinks.ts';
import { mqttMessageRoute } from '../mqtt/messages.ts';
import { supabaseMessageRoute } from '../supabase/messages.ts';
import { LiveFirst } from '../live-first.ts';

/** What every phase may use. */
export interface Base {
  config: RelayConfig;
  logger: Logger;
  pool: pg.Pool;
  gate: Gate;
}

export interface Pipeline {
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
export async function buildPipeline({ config, logger, pool }: Base, slot: SlotInfo): Promise<Pipeline> {
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

async function currentWalLsn(pool: pg.Pool): Promise<Lsn> {
  const { rows } = await pool.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  return parseLsn(rows[0]!.lsn);
}
