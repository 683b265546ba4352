// This door's logical messages in the stream (prefix walcast.supabase):
// broadcasts (broadcast.ts) and presence diffs (presence.ts), told apart by
// their keys. Both are routed on their topic, so they are ordered with the
// topic's other messages and row changes, and reach every relay on the slot.
import { BROADCAST_TABLE, decodeBroadcast, SUPABASE_MESSAGE_PREFIX, type Broadcast } from './broadcast.ts';
import { decodePresence, type PresenceMessage } from './presence.ts';

export type SupabaseMessage =
  | { kind: 'broadcast'; broadcast: Broadcast }
  | { kind: 'presence'; presence: PresenceMessage };

export function decodeSupabaseMessage(content: Buffer): SupabaseMessage | null {
  const broadcast = decodeBroadcast(content);
  if (broadcast) return { kind: 'broadcast', broadcast };
  const presence = decodePresence(content);
  return presence ? { kind: 'presence', presence } : null;
}

/** Where the dispatcher routes this door's messages: the topic as the channel, under BROADCAST_TABLE. */
export function supabaseMessageRoute(prefix: string, content: Buffer): { channel: string; table: string } | undefined {
  if (prefix !== SUPABASE_MESSAGE_PREFIX) return undefined;
  const m = decodeSupabaseMessage(content);
  if (!m) return undefined;
  return { channel: m.kind === 'broadcast' ? m.broadcast.topic : m.presence.topic, table: BROADCAST_TABLE };
}
