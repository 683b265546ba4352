// GET /v1/channels/:channel/events?since=<position>&limit=<n>: the same
// replay a subscribe with `since` gets, over HTTP, as JSON. Events are the
// frames clients receive, embedded as they are.
import type { FastifyPluginAsync } from 'fastify';
import type { RecoveryBuffer } from '../hub/recovery.ts';
import { MAX_CHANNEL_LENGTH } from '../../client/protocol.ts';

export const MAX_REPLAY_LIMIT = 10_000;

export interface ReplaySource {
  recovery: RecoveryBuffer;
  position: () => string;
  /** With a key configured: may the bearer of this Authorization header read `channel`? (relay/auth/gate.ts) */
  authorize?: (authorization: string | undefined, channel: string) => Promise<{ status: number; code: string; message: string } | null>;
}

interface Query {
  since?: string;
  limit?: string;
}

export const replayRoutes: FastifyPluginAsync<{ source: ReplaySource }> = async (app, { source }) => {
  app.get<{ Params: { channel: string }; Querystring: Query }>('/v1/channels/:channel/events', async (req, reply) => {
    const { channel } = req.params;
    const { since } = req.query;
    const limit = req.query.limit === undefined ? 1000 : Number(req.query.limit);
    if (channel.length === 0 || channel.length > MAX_CHANNEL_LENGTH) {
      return reply.code(400).send({ code: 'invalid_channel', message: `channels are strings of 1 to ${MAX_CHANNEL_LENGTH} characters` });
    }
    const denied = await source.authorize?.(req.headers.authorization, channel);
    if (denied) return reply.code(denied.status).send({ code: denied.code, message: denied.message });
    if (!since) return reply.code(400).send({ code: 'bad_request', message: 'the query needs since=<position>, from an event or a subscribed reply' });
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_REPLAY_LIMIT) {
      return reply.code(400).send({ code: 'bad_request', message: `limit must be an integer from 1 to ${MAX_REPLAY_LIMIT}` });
    }
    const replay = source.recovery.replay(channel, since);
    if (!replay.recovered) {
      return reply.type('application/json').send(JSON.stringify({ channel, recovered: false, reason: replay.reason, events: [] }));
    }
    const events = replay.events.slice(0, limit);
    const more = replay.events.length > limit;
    const next = more ? events[events.length - 1]!.position : source.position();
    const body = `{"channel":${JSON.stringify(channel)},"recovered":true,"position":${JSON.stringify(next)},"more":${more},"events":[${events.map((e) => e.frame).join(',')}]}`;
    return reply.type('application/json').send(body);
  });
};
