// What a standby relay serves while it waits for the slot: /healthz 200
// (the process is alive), /readyz 503 (do not send clients here), /metrics
// (walcast_standby 1), and no WebSocket: an upgrade on /ws is refused with
// HTTP 503, so clients keep trying (the active relay, or this one once it is
// promoted). It listens on the port the relay will use after the takeover.
import Fastify, { LogController, type FastifyBaseLogger } from 'fastify';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { Gauge, Registry } from 'prom-client';
import { WalcastError } from '../errors.ts';
import type { Logger } from '../log.ts';

export interface StandbyServer {
  url: string;
  wsUrl: string;
  port: number;
  close(): Promise<void>;
}

export async function startStandbyServer(opts: {
  host: string;
  port: number;
  slot: string;
  logger: Logger;
}): Promise<StandbyServer> {
  const app = Fastify({
    loggerInstance: opts.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
  });
  const since = new Date().toISOString();
  const reason = `standby: another relay holds slot ${opts.slot}; this one takes over when it stops`;
  const registry = new Registry();
  new Gauge({
    name: 'walcast_standby',
    help: '1 while this relay waits as a standby for the slot',
    registers: [registry],
  }).set(1);
  app.get('/healthz', async () => ({ status: 'ok', role: 'standby', slot: opts.slot, since }));
  app.get('/readyz', async (_req, reply) =>
    reply.code(503).send({ status: 'not_ready', role: 'standby', slot: opts.slot, since, reasons: [reason] }),
  );
  app.get('/metrics', async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()));
  app.server.on('upgrade', (_req: IncomingMessage, socket: Duplex) => {
    const body = JSON.stringify({ status: 'standby', reason });
    socket.end(
      `HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n${body}`,
    );
  });
  try {
    await app.listen({ host: opts.host, port: opts.port });
  } catch (err) {
    throw new WalcastError('listen_failed', { host: opts.host, port: opts.port, detail: (err as Error).message }, err);
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  return { url: `http://${host}:${port}`, wsUrl: `ws://${host}:${port}/ws`, port, close: () => app.close() };
}
