// GET /healthz: 200 while the replication stream is up, 503 otherwise, with
// a JSON body saying why. GET /readyz: 200 when this relay should get
// clients: it is the active relay (not a standby, not stopping), streaming,
// its lag is under the warning thresholds and its slot is usable; otherwise
// 503 with every reason. (A standby answers both from standby.ts.)
import type { FastifyPluginAsync } from 'fastify';
import type { StreamState } from '../replication/stream.ts';
import type { SlotStatus } from '../replication/watchdog.ts';

export interface HealthSource {
  slot: string;
  /** The MQTT front door's counts (relay/mqtt/), once it started. */
  mqtt?(): object | undefined;
  state(): StreamState;
  lastError(): string | undefined;
  /** Set once a shutdown began. */
  stopping?(): boolean;
  /** The lag warning, when the lag is above a threshold. */
  lagging?(): string | undefined;
  slotStatus?(): SlotStatus | undefined;
}

export const healthRoutes: FastifyPluginAsync<{ source: HealthSource }> = async (app, { source }) => {
  app.get('/healthz', async (_req, reply) => {
    const state = source.state();
    if (state === 'streaming') return { status: 'ok', replication: state, slot: source.slot };
    const error = source.lastError();
    return reply.code(503).send({
      status: 'unavailable',
      replication: state,
      slot: source.slot,
      reason: error ? `replication stream is ${state}: ${error}` : `replication stream is ${state}`,
    });
  });

  app.get('/readyz', async (_req, reply) => {
    const state = source.state();
    const slot = source.slotStatus?.();
    const reasons: string[] = [];
    if (source.stopping?.()) reasons.push('the relay is shutting down');
    if (state !== 'streaming') {
      const error = source.lastError();
      reasons.push(error ? `replication stream is ${state}: ${error}` : `replication stream is ${state}`);
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
      reasons,
    };
    return reply.code(reasons.length ? 503 : 200).send(body);
  });
};
