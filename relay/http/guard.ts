// Checks that run before any HTTP route: the socket's address is over
// WALCAST_MAX_CONNECTIONS_PER_IP (429, relay/auth/gate.ts counts every TCP
// connection as it is accepted), and open mode's defence against DNS
// rebinding: the request must be addressed to localhost or an IP address
// (relay/auth/settings.ts, hostAllowed). WebSocket upgrades get the same
// checks from the gate.
import type { FastifyInstance } from 'fastify';
import { ERROR_CODES } from '../../client/protocol.ts';
import type { Gate } from '../auth/gate.ts';
import { hostAllowed } from '../auth/settings.ts';

export function guardRequests(app: FastifyInstance, gate: Gate): void {
  app.addHook('onRequest', async (req, reply) => {
    const refused = gate.refusal(req.raw.socket);
    if (refused)
      return reply.code(429).header('connection', 'close').send({ code: 'too_many_connections', message: refused });
    if (hostAllowed(gate.settings, req.headers.host)) return;
    return reply.code(403).send({ code: 'host_not_allowed', message: ERROR_CODES.host_not_allowed });
  });
}
