// GET /healthz and /readyz of an edge relay. An edge has no slot: it is
// healthy while its consumer on the change stream runs, and ready when it
// also keeps up (its lag under WALCAST_LAG_WARN_SECONDS) and is not stopping.
// /readyz shows the consumer's state, the stream sequences and the lag, and
// the MQTT door's port and counts.
import type { FastifyPluginAsync } from 'fastify';
import type { StreamSource } from './source.ts';

export interface EdgeHealthSource {
  source: StreamSource;
  stopping(): boolean;
  lagWarnSeconds: number;
  /** The MQTT door's counts, as on the slot relay's /readyz. */
  mqtt?(): object | undefined;
}

export const edgeHealthRoutes: FastifyPluginAsync<EdgeHealthSource> = async (app, opts) => {
  const { source } = opts;
  app.get('/healthz', async (_req, reply) => {
    if (source.state === 'consuming') return { status: 'ok', role: 'edge', consumer: source.state };
    return reply
      .code(503)
      .send({ status: 'unavailable', role: 'edge', consumer: source.state, reason: source.reason ?? source.state });
  });

  app.get('/readyz', async (_req, reply) => {
    const reasons: string[] = [];
    if (opts.stopping()) reasons.push('the edge is shutting down');
    if (source.state !== 'consuming') reasons.push(source.reason ?? `the stream consumer is ${source.state}`);
    const lag = source.lag;
    if (lag.seconds > opts.lagWarnSeconds)
      reasons.push(`the edge is ${lag.seconds.toFixed(1)} s (${lag.messages} messages) behind the stream`);
    return reply.code(reasons.length ? 503 : 200).send({
      status: reasons.length ? 'not_ready' : 'ready',
      role: opts.stopping() ? 'stopping' : 'edge',
      stream: source.stream,
      consumer: {
        state: source.state,
        paused: source.isPaused,
        delivered_seq: source.deliveredSeq,
        stream_seq: source.lastSeq,
        lag,
        position: source.position,
      },
      mqtt: opts.mqtt?.(),
      reasons,
    });
  });
};
