// Broadcast replay (realtime-js `config.broadcast.replay = {since, limit}`):
// a private channel's join gets the last `limit` broadcasts of its topic
// committed at or after `since`, each with meta {replayed: true, id}, right
// after the ok reply and before any live broadcast — in the same turn of the
// event loop as the join's index entry, so none is repeated or skipped
// between the two. Upstream replays only broadcasts sent from the database
// (realtime.messages); here every broadcast the recovery window still holds
// (a client's, the REST endpoint's) can be replayed: the window's age and
// per-channel bounds (WALCAST_RECOVERY_SECONDS, WALCAST_RECOVERY_EVENTS) are
// how far back it reaches. Limits as upstream: default 10, at most 25.
import { WalcastError } from '../errors.ts';
import type { BufferedEvent, RecoveryBuffer } from '../hub/recovery.ts';
import { BROADCAST_TABLE, decodeBroadcast, type Broadcast } from './broadcast.ts';
import type { Joined } from './channels.ts';
import { push } from './frames.ts';

export interface ReplayRequest {
  /** Milliseconds since 1970: the oldest commit time replayed. */
  since: number;
  /** How many broadcasts at most (the newest ones), 1 to MAX_REPLAY. */
  limit: number;
}

export const MAX_REPLAY = 25;
const DEFAULT_REPLAY = 10;

/** The replay a join's config asks for, or null; throws supabase_replay_invalid for what cannot be served. */
export function replayRequest(config: Record<string, unknown>): ReplayRequest | null {
  const broadcast = config.broadcast as Record<string, unknown> | undefined;
  const replay = broadcast?.replay;
  if (replay === undefined || replay === null) return null;
  const invalid = (detail: string) => new WalcastError('supabase_replay_invalid', { detail });
  if (config.private !== true) throw invalid('replay is not allowed on public channels');
  if (typeof replay !== 'object') throw invalid('config.broadcast.replay must be an object');
  const { since = 0, limit = DEFAULT_REPLAY } = replay as { since?: unknown; limit?: unknown };
  if (!Number.isSafeInteger(since) || (since as number) < 0)
    throw invalid(`since must be milliseconds since 1970 (got ${JSON.stringify(since)})`);
  if (!Number.isSafeInteger(limit)) throw invalid(`limit must be a whole number (got ${JSON.stringify(limit)})`);
  // Upstream clamps rather than refuses.
  return { since: since as number, limit: Math.max(1, Math.min(limit as number, MAX_REPLAY)) };
}

/** Send `j` the broadcasts `r` asks for from the window; returns how many. */
export function replayBroadcasts(j: Joined, r: ReplayRequest, recovery: RecoveryBuffer): number {
  // Presence diffs are kept under the same table: only broadcasts count towards the limit.
  const decoded = new Map<BufferedEvent, Broadcast>();
  const isBroadcast = (e: BufferedEvent) => {
    const b = e.table === BROADCAST_TABLE ? decodeBroadcast(Buffer.from(e.frame)) : null;
    if (b) decoded.set(e, b);
    return b !== null;
  };
  const events = recovery.recentMessages(j.subTopic, r.since, r.limit, isBroadcast);
  for (const e of events) {
    const b = decoded.get(e)!;
    const meta = { replayed: true, id: e.position };
    j.conn.send(
      push(
        j.conn.vsn,
        j.topic,
        'broadcast',
        { type: 'broadcast', event: b.event, payload: b.payload, meta },
        j.joinRef,
      ),
    );
  }
  return events.length;
}
