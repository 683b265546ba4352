// Broadcast between clients of this door, carried on walcast's ordered
// stream like the MQTT door's ephemeral messages: a client's (or the REST
// endpoint's) broadcast is written with pg_logical_emit_message(true,
// 'walcast.supabase', …), read back from the slot by every relay, and routed
// by the dispatcher's messageRoute to the door, which sends it to the
// topic's subscribers. So broadcasts are ordered with row changes and reach
// the clients of every relay on the slot.
import type pg from 'pg';

export const SUPABASE_MESSAGE_PREFIX = 'walcast.supabase';
/** The table name this door's messages (broadcasts, presence diffs) are routed under: no registered table has it, so no row subscription takes them. */
export const BROADCAST_TABLE = '$supabase.broadcast';
/** Largest broadcast payload (JSON bytes); upstream's default limit is 256 KB too. */
export const MAX_BROADCAST_BYTES = 256 * 1024;
/** Broadcasts of one socket being written to the stream at once; more are refused until some are committed. */
export const MAX_BROADCASTS_IN_FLIGHT = 100;

export interface Broadcast {
  /** The topic without its `realtime:` prefix. */
  topic: string;
  event: string;
  payload: unknown;
  /** The sending connection (so that `self: false` leaves it out); null from the REST endpoint. */
  sender: string | null;
}

/** Keys unlike the MQTT door's (`t`, `p`): its decoder, which MQTT wildcard subscribers run on every message, rejects these. */
interface Wire {
  topic: string;
  event: string;
  payload: unknown;
  sender: string | null;
}

export function encodeBroadcast(b: Broadcast): string {
  const w: Wire = { topic: b.topic, event: b.event, payload: b.payload, sender: b.sender };
  return JSON.stringify(w);
}

export function decodeBroadcast(content: Buffer): Broadcast | null {
  try {
    const w = JSON.parse(content.toString('utf8')) as Wire;
    if (typeof w?.topic !== 'string' || typeof w.event !== 'string') return null;
    return {
      topic: w.topic,
      event: w.event,
      payload: w.payload ?? {},
      sender: typeof w.sender === 'string' ? w.sender : null,
    };
  } catch {
    return null;
  }
}

/** Write a broadcast into the stream; resolves once it is committed. */
export async function emitBroadcast(pool: pg.Pool, b: Broadcast): Promise<void> {
  await pool.query('SELECT pg_logical_emit_message(true, $1, $2)', [SUPABASE_MESSAGE_PREFIX, encodeBroadcast(b)]);
}

/** Does a broadcast payload fit? Returns the error text, or null. */
export function broadcastTooLarge(payload: unknown): string | null {
  const n = Buffer.byteLength(JSON.stringify(payload ?? {}));
  return n > MAX_BROADCAST_BYTES
    ? `a broadcast payload is at most ${MAX_BROADCAST_BYTES} bytes of JSON (got ${n})`
    : null;
}
