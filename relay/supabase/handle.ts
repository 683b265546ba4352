// One message from a realtime-js socket, by event: join and leave, token
// refresh, broadcast, presence. Heartbeats are answered by the connection.
import { WalcastError } from '../errors.ts';
import type { SupabaseDoor } from './door.ts';
import type { SupabaseConnection } from './connection.ts';
import { reasonOf, type Joined } from './channels.ts';
import { errorReply, PHX, reply } from './frames.ts';
import type { PhxMessage } from './serializer.ts';
import { broadcastTooLarge, emitBroadcast, MAX_BROADCASTS_IN_FLIGHT } from './broadcast.ts';

export async function handleMessage(door: SupabaseDoor, conn: SupabaseConnection, msg: PhxMessage): Promise<void> {
  if (msg.event === PHX.join) {
    const max = door.opts.maxSubscriptions;
    if (!conn.joined.has(msg.topic) && conn.joined.size >= max)
      return void conn.send(
        errorReply(conn.vsn, msg, bad(`a socket joins at most ${max} channels (WALCAST_MAX_SUBSCRIPTIONS)`)),
      );
    return door.channels.join(conn, msg);
  }
  const j = conn.joined.get(msg.topic);
  if (!j) return void conn.send(errorReply(conn.vsn, msg, bad(`join ${msg.topic} before sending ${msg.event} on it`)));
  switch (msg.event) {
    case PHX.leave:
      conn.send(reply(conn.vsn, msg, 'ok'));
      return door.channels.leave(j);
    case PHX.accessToken:
      return door.channels.refresh(j, msg);
    case 'broadcast':
      return broadcast(door, j, msg);
    case 'presence':
      return presence(door, j, msg);
    default:
      conn.send(errorReply(conn.vsn, msg, bad(`event ${msg.event} is not one this door handles`)));
  }
}

function broadcast(door: SupabaseDoor, j: Joined, msg: PhxMessage): void {
  const { conn } = j;
  const event = msg.payload.event;
  if (typeof event !== 'string')
    return void conn.send(errorReply(conn.vsn, msg, bad('a broadcast needs an event name')));
  const tooLarge = broadcastTooLarge(msg.payload.payload);
  if (tooLarge) return void conn.send(errorReply(conn.vsn, msg, bad(tooLarge)));
  if (door.opts.gate.authRequired && !j.grants.canPublishOn(j.subTopic))
    return void conn.send(
      errorReply(
        conn.vsn,
        msg,
        reasonOf(new WalcastError('supabase_forbidden', { what: `broadcasts on ${j.subTopic}` })),
      ),
    );
  const pool = door.opts.writePool;
  if (!pool) return void conn.send(errorReply(conn.vsn, msg, door.readOnlyReason));
  if (conn.broadcastsInFlight >= MAX_BROADCASTS_IN_FLIGHT)
    return void conn.send(
      errorReply(
        conn.vsn,
        msg,
        bad(`${MAX_BROADCASTS_IN_FLIGHT} broadcasts are being written already; wait for their acks`),
      ),
    );
  const b = { topic: j.subTopic, event, payload: msg.payload.payload ?? {}, sender: conn.id };
  conn.broadcastsInFlight++;
  // In order per socket; the ack goes out once the broadcast is committed to the stream.
  conn.broadcasts = conn.broadcasts.then(() =>
    emitBroadcast(pool, b).then(
      () => {
        conn.broadcastsInFlight--;
        if (j.ack) conn.send(reply(conn.vsn, msg, 'ok'));
      },
      (err: unknown) => {
        conn.broadcastsInFlight--;
        const reason = new WalcastError('supabase_broadcast_failed', { detail: (err as Error).message });
        door.opts.logger.warn({ err, topic: j.subTopic }, reason.message);
        conn.send(errorReply(conn.vsn, msg, reasonOf(reason)));
      },
    ),
  );
}

function presence(door: SupabaseDoor, j: Joined, msg: PhxMessage): Promise<void> | undefined {
  const event = msg.payload.event;
  if (event === 'track') {
    const payload = msg.payload.payload;
    const meta = typeof payload === 'object' && payload !== null && !Array.isArray(payload) ? payload : {};
    return door.channels.track(j, msg, meta as Record<string, unknown>);
  }
  if (event === 'untrack') return door.channels.untrack(j, msg);
  j.conn.send(errorReply(j.conn.vsn, msg, bad('presence events are track and untrack')));
  return undefined;
}

function bad(detail: string): string {
  return reasonOf(new WalcastError('supabase_bad_message', { detail }));
}
