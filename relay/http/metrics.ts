// GET /metrics: the relay's Prometheus registry (relay/metrics.ts).
import type { FastifyPluginAsync } from 'fastify';

export interface MetricsRenderer {
  render(): Promise<{ contentType: string; body: string }>;
}

export const metricsRoutes: FastifyPluginAsync<{ metrics: MetricsRenderer }> = async (app, { metrics }) => {
  app.get('/metrics', async (_req, reply) => {
    const { contentType, body } = await metrics.render();
    return reply.type(contentType).send(body);
  });
};
