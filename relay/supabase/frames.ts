// The messages this door sends, in the shapes realtime-js reads. Pure.
import { encode, encodeMessage, type PhxMessage, type Vsn } from './serializer.ts';

export const PHX = {
  join: 'phx_join',
  leave: 'phx_leave',
  reply: 'phx_reply',
  close: 'phx_close',
  error: 'phx_error',
  heartbeat: 'heartbeat',
  accessToken: 'access_token',
} as const;

/** The topic Phoenix sends heartbeats on. */
export const PHOENIX_TOPIC = 'phoenix';

export function reply(
  vsn: Vsn,
  to: Pick<PhxMessage, 'topic' | 'ref' | 'join_ref'>,
  status: 'ok' | 'error',
  response: object = {},
): string {
  return encodeMessage(vsn, { ...to, event: PHX.reply, payload: { status, response } });
}

/** An error reply: realtime-js joins the response's values into the CHANNEL_ERROR message. */
export function errorReply(vsn: Vsn, to: Pick<PhxMessage, 'topic' | 'ref' | 'join_ref'>, reason: string): string {
  return reply(vsn, to, 'error', { reason });
}

/** A message the server pushes on a topic (no ref). */
export function push(vsn: Vsn, topic: string, event: string, payload: object, joinRef: string | null = null): string {
  return encodeMessage(vsn, {
    topic,
    event,
    payload: payload as Record<string, unknown>,
    ref: null,
    join_ref: joinRef,
  });
}

/** The same with a payload serialised once for many sockets. */
export function pushJson(vsn: Vsn, topic: string, event: string, payloadJson: string): string {
  return encode(vsn, { topic, event, ref: null, join_ref: null }, payloadJson);
}

/** `system` messages: postgres_changes' status ("Subscribed to PostgreSQL", or what went wrong), or the channel's (extension `system`). */
export function system(
  vsn: Vsn,
  topic: string,
  status: 'ok' | 'error',
  message: string,
  extension: 'postgres_changes' | 'system' = 'postgres_changes',
): string {
  const channel = topic.replace(/^realtime:/, '');
  return push(vsn, topic, 'system', { channel, extension, message, status });
}
