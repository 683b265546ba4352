// POST /realtime/v1/api/broadcast: broadcasts from server code, as
// realtime-js's REST fallback and Supabase's API send them:
//   {"messages": [{"topic": "room1", "event": "e", "payload": {...}}]}
// and POST /realtime/v1/api/broadcast/:topic/events/:event with the payload
// as the body (realtime-js httpSend). Authorised with the same keys as the
// socket: the `apikey` header or `Authorization: Bearer`; each topic must be
// one the token may publish on. Answered 202 once every message is
// committed to the stream.
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type pg from 'pg';
import type { Gate } from '../auth/gate.ts';
import { bearerToken } from '../auth/gate.ts';
import type { Grants } from '../auth/grants.ts';
import { openGrants } from '../auth/grants.ts';
import { WalcastError } from '../errors.ts';
import { broadcastTooLarge, emitBroadcast, type Broadcast } from './broadcast.ts';

export const BROADCAST_PATH = '/realtime/v1/api/broadcast';
/** Most messages in one request. */
export const MAX_REST_MESSAGES = 100;

export interface BroadcastRoutesOptions {
  gate: Gate;
  /** Where broadcasts are written; null (an edge without a publish URL): 503 with `readOnly`. */
  pool: pg.Pool | null;
  readOnly?: string;
}

interface Problem {
  status: number;
  error: string;
}

export const broadcastRoutes: FastifyPluginAsync<BroadcastRoutesOptions> = async (app, { gate, pool, readOnly }) => {
  const send = async (req: FastifyRequest, messages: unknown): Promise<Problem | null> => {
    if (!pool) return { status: 503, error: readOnly ?? 'this relay cannot write broadcasts' };
    const grants = await grantsOf(gate, req);
    if ('status' in grants) return grants;
    const list = checked(messages, grants, gate.authRequired);
    if ('status' in list) return list;
    for (const b of list) await emitBroadcast(pool, b);
    return null;
  };
  const answer = (problem: Problem | null, reply: { code(n: number): { send(b?: unknown): unknown } }) =>
    problem ? reply.code(problem.status).send({ error: problem.error }) : reply.code(202).send();
  app.post(BROADCAST_PATH, async (req, reply) =>
    answer(await send(req, (req.body as { messages?: unknown } | null)?.messages), reply),
  );
  app.post<{ Params: { topic: string; event: string } }>(`${BROADCAST_PATH}/:topic/events/:event`, async (req, reply) =>
    answer(await send(req, [{ topic: req.params.topic, event: req.params.event, payload: req.body ?? {} }]), reply),
  );
};

async function grantsOf(gate: Gate, req: FastifyRequest): Promise<Grants | Problem> {
  if (!gate.authRequired) return openGrants(gate.settings.publish === 'open');
  const header = req.headers.apikey;
  const token = bearerToken(req.headers.authorization) ?? (typeof header === 'string' ? header : undefined);
  if (!token) return { status: 401, error: 'send the key as the apikey header or Authorization: Bearer <token>' };
  try {
    return await gate.grantsFor(token);
  } catch (err) {
    const e = new WalcastError('supabase_invalid_token', { detail: (err as Error).message });
    return { status: 401, error: `${e.code}: ${e.message}` };
  }
}

function checked(messages: unknown, grants: Grants, authRequired: boolean): Broadcast[] | Problem {
  if (!Array.isArray(messages) || messages.length === 0 || messages.length > MAX_REST_MESSAGES)
    return { status: 400, error: `messages must be a list of 1 to ${MAX_REST_MESSAGES} {topic, event, payload}` };
  const out: Broadcast[] = [];
  for (const m of messages as Record<string, unknown>[]) {
    if (typeof m?.topic !== 'string' || typeof m.event !== 'string')
      return { status: 400, error: 'each message needs a string topic and event' };
    const topic = m.topic.replace(/^realtime:/, '');
    const tooLarge = broadcastTooLarge(m.payload);
    if (tooLarge) return { status: 413, error: tooLarge };
    if (authRequired && !grants.canPublishOn(topic)) {
      const e = new WalcastError('supabase_forbidden', { what: `broadcasts on ${topic}` });
      return { status: 403, error: `${e.code}: ${e.message}` };
    }
    out.push({ topic, event: m.event, payload: m.payload ?? {}, sender: null });
  }
  return out;
}
