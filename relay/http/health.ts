// GET /healthz: 200 while the replication stream is up, 503 otherwise, with
// a JSON body saying why. GET /readyz: 200 when this relay should get
// clients: it is the active relay (not a standby, not stopping), streaming,
// its lag is under the warning thresholds, its slot is usable, and live
// rows are not held back while it re-reads its recovery window (they are
// not while a temporary slot serves them: `rebuilding` says so); otherwise
// 503 with every reason. (A standby answers both from standby.ts.)
// The reasons are public: they say what state the relay is in, never the
// error behind it (a database address, a server message); that is in the
// log, where the stream wrote it when it happened.
import type { FastifyPluginAsync } from 'fastify';
import type { StreamState } from '../replication/stream.ts';
import type { SlotStatus } from '../replication/watchdog.ts';
import type { SinkStatus } from '../sinks/sinks.ts';

export interface HealthSource {
  slot: string;
  /** The MQTT front door's counts (relay/mqtt/), once it started. */
  mqtt?(): object | undefined;
  state(): StreamState;
  /** Set once a shutdown began. */
  stopping?(): boolean;
  /** The lag warning, when the lag is above a threshold. */
  lagging?(): string | undefined;
  slotStatus?(): SlotStatus | undefined;
  /**
   * Bytes of WAL still to re-read before live rows flow: a restarted relay
   * rebuilds its recovery window from the slot first. 0 when live.
   */
  rebuilding?(): number;
  /** While rebuilding: do live rows flow meanwhile, from a temporary slot (live-first.ts)? */
  liveSlot?(): { serving: boolean; slot: string | undefined };
  /**
   * MQTT ingest (relay/ingest/): each broker's state and the flows that do not run, with why.
   * Shown, not judged: a broker that is down must not take WebSocket clients away from this relay.
   */
  ingest?(): object | undefined;
  /** [sinks] Shown, not judged: a sink that is down does not take WebSocket clients away. */
  sinks?(): SinkStatus[];
}

function streamReason(state: StreamState): string {
  return `replication stream is ${state}; the relay's log has the cause`;
}

export const healthRoutes: FastifyPluginAsync<{ source: HealthSource }> = async (app, { source }) => {
  app.get('/healthz', async (_req, reply) => {
    const state = source.state();
    if (state === 'streaming') return { status: 'ok', replication: state, slot: source.slot };
    return reply
      .code(503)
      .send({ status: 'unavailable', replication: state, slot: source.slot, reason: streamReason(state) });
  });

  app.get('/readyz', async (_req, reply) => {
    const state = source.state();
    const slot = source.slotStatus?.();
    const reasons: string[] = [];
    if (source.stopping?.()) reasons.push('the relay is shutting down');
    if (state !== 'streaming') reasons.push(streamReason(state));
    const rebuilding = source.rebuilding?.() ?? 0;
    const live = rebuilding > 0 ? source.liveSlot?.() : undefined;
    if (rebuilding > 0 && !live?.serving) {
      reasons.push(
        `rebuilding the recovery window from the slot: live rows are held back until ${rebuilding} more bytes of WAL are read`,
      );
    }
    const lag = source.lagging?.();
    if (lag) reasons.push(lag);
    if (slot && (slot.walStatus === 'unreserved' || slot.walStatus === 'lost' || slot.walStatus === 'missing')) {
      reasons.push(`slot ${source.slot} wal_status is ${slot.walStatus}`);
    }
    const body = {
      status: reasons.length ? 'not_ready' : 'ready',
      role: source.stopping?.() ? 'stopping' : 'active',
      replication: state,
      slot: source.slot,
      lag: slot ? { bytes: slot.lagBytes, seconds: slot.lagSeconds } : undefined,
      wal_status: slot?.walStatus,
      mqtt: source.mqtt?.(),
      ingest: source.ingest?.(),
      reasons,
      // Shown, not judged, while live rows flow from the temporary slot.
      rebuilding:
        rebuilding > 0 ? { bytes: rebuilding, live_rows: live?.serving ? 'temporary slot' : 'held back' } : undefined,
      // The sink's error text stays in the log (it can name hosts).
      sinks: source.sinks?.().map((s) => ({ name: s.name, state: s.state, lag: s.lag })),
    };
    return reply.code(reasons.length ? 503 : 200).send(body);
  });
};
