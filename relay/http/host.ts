// Open mode's defence against DNS rebinding: every HTTP request (the replay
// endpoint, the demo's writes, health and metrics alike) must be addressed
// to localhost or an IP address (relay/auth/settings.ts, hostAllowed).
// WebSocket upgrades are checked by the gate.
import type { FastifyInstance } from 'fastify';
import { ERROR_CODES } from '../../client/protocol.ts';
import { hostAllowed, type SecuritySettings } from '../auth/settings.ts';

export function guardHost(app: FastifyInstance, settings: SecuritySettings): void {
  app.addHook('onRequest', async (req, reply) => {
    if (hostAllowed(settings, req.headers.host)) return;
    return reply.code(403).send({ code: 'host_not_allowed', message: ERROR_CODES.host_not_allowed });
  });
}
