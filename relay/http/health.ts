// GET /healthz: 200 while the replication stream is up, 503 otherwise, with
// a JSON body saying why.
import type { FastifyPluginAsync } from 'fastify';
import type { StreamState } from '../replication/stream.ts';

export interface HealthSource {
  slot: string;
  state(): StreamState;
  lastError(): string | undefined;
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
};
