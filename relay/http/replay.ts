// GET /v1/channels/:channel/events?since=<position>&limit=<n>: the same
// replay a subscribe with `since` gets, over HTTP, as JSON. Events are the
// frames clients receive, embedded as they are.
//
// Bounded per request and per client: a response carries at most `limit`
// events and at most maxBytes of them (at least one event, so a reader
// always advances); past either it ends with `"more":true` and the
// `position` of its last event, to continue from. The body is streamed
// event by event from the frames the recovery window already holds, so a
// reader that does not read costs a socket buffer, not a copy of the
// answer; and one address may have maxPerAddress responses in flight.
import { Readable } from 'node:stream';
import type { FastifyPluginAsync } from 'fastify';
import type { BufferedEvent, RecoveryBuffer } from '../hub/recovery.ts';
import { Shared } from '../auth/limits.ts';
import { MAX_CHANNEL_LENGTH } from '../../client/protocol.ts';

export const MAX_REPLAY_LIMIT = 10_000;

export interface ReplaySource {
  recovery: RecoveryBuffer;
  position: () => string;
  /** With a key configured: may the bearer of this Authorization header read `channel`? (relay/auth/gate.ts) */
  authorize?: (
    authorization: string | undefined,
    channel: string,
  ) => Promise<{ status: number; code: string; message: string } | null>;
  /** Bytes of events in one response (WALCAST_REPLAY_MAX_BYTES). */
  maxBytes: number;
  /** Responses one client address may have in flight (WALCAST_REPLAYS_PER_IP). */
  maxPerAddress: number;
}

interface Query {
  since?: string;
  limit?: string;
}

export const replayRoutes: FastifyPluginAsync<{ source: ReplaySource }> = async (app, { source }) => {
  const inFlight = new Shared(() => null);
  app.get<{ Params: { channel: string }; Querystring: Query }>('/v1/channels/:channel/events', async (req, reply) => {
    const { channel } = req.params;
    const { since } = req.query;
    const limit = req.query.limit === undefined ? 1000 : Number(req.query.limit);
    if (channel.length === 0 || channel.length > MAX_CHANNEL_LENGTH) {
      return reply
        .code(400)
        .send({ code: 'invalid_channel', message: `channels are strings of 1 to ${MAX_CHANNEL_LENGTH} characters` });
    }
    const denied = await source.authorize?.(req.headers.authorization, channel);
    if (denied) return reply.code(denied.status).send({ code: denied.code, message: denied.message });
    if (!since)
      return reply.code(400).send({
        code: 'bad_request',
        message: 'the query needs since=<position>, from an event or a subscribed reply',
      });
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_REPLAY_LIMIT) {
      return reply
        .code(400)
        .send({ code: 'bad_request', message: `limit must be an integer from 1 to ${MAX_REPLAY_LIMIT}` });
    }
    const address = req.socket.remoteAddress ?? 'unknown';
    if (inFlight.holders(address) >= source.maxPerAddress) {
      return reply.code(429).send({
        code: 'too_many_replays',
        message: `this address has ${source.maxPerAddress} replays in flight (WALCAST_REPLAYS_PER_IP); read them first`,
      });
    }
    const replay = source.recovery.replay(channel, since);
    if (!replay.recovered) {
      return reply
        .type('application/json')
        .send(JSON.stringify({ channel, recovered: false, reason: replay.reason, events: [] }));
    }
    const events = page(replay.events, limit, source.maxBytes);
    const more = replay.events.length > events.length;
    const next = more ? events[events.length - 1]!.position : source.position();
    // Held until the response is written or the client goes away.
    inFlight.acquire(address);
    reply.raw.once('close', () => inFlight.release(address));
    const head = `{"channel":${JSON.stringify(channel)},"recovered":true,"position":${JSON.stringify(next)},"more":${more},"events":[`;
    return reply.type('application/json').send(Readable.from(body(head, events), { objectMode: false }));
  });
};

/** The first events, at most `limit` of them and `maxBytes` of frames, but at least one. */
function page(events: BufferedEvent[], limit: number, maxBytes: number): BufferedEvent[] {
  let bytes = 0;
  let n = 0;
  while (n < events.length && n < limit) {
    bytes += Buffer.byteLength(events[n]!.frame);
    if (n > 0 && bytes > maxBytes) break;
    n++;
  }
  return events.slice(0, n);
}

function* body(head: string, events: BufferedEvent[]): Generator<string> {
  yield head;
  for (let i = 0; i < events.length; i++) yield i === 0 ? events[i]!.frame : `,${events[i]!.frame}`;
  yield ']}';
}
