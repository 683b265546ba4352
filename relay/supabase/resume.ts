// Resume, an extension of the protocol (docs/supabase.md): a client that
// joins with `config.walcast = {}` gets each postgres_changes frame with
// `walcast_position` beside `ids` and `data` (realtime-js ignores it); one
// that rejoins with `config.walcast = {since: <the last position it saw>}`
// gets the changes it missed from the recovery window, in commit order,
// right after the join's ok reply and before any live change (all in the
// same turn of the event loop, so none is lost or repeated between the
// two). Only bindings with an eq/in filter on the table's channel column
// can resume (the window is kept per channel); the others start live, and
// a `system` message says so, as it says when the window no longer holds
// everything since that position. Unmodified clients never send `walcast`.
import type { EventMessage } from '../../client/protocol.ts';
import type { BufferedEvent, RecoveryBuffer } from '../hub/recovery.ts';
import { passesFilters, type Binding } from './bindings.ts';
import type { Catalog } from './catalog.ts';
import { changeOf, filteredRow } from './changes.ts';
import type { Joined } from './channels.ts';
import type { Registration } from '../db/registry.ts';
import { shortName } from '../table-names.ts';
import { isKeyed } from './filters.ts';
import { system } from './frames.ts';
import { changeFrame } from './deliver.ts';

export interface ResumeRequest {
  since: string | null;
}

/** The `walcast` extension of a join's config, if the client sent it. */
export function resumeRequest(config: Record<string, unknown>): ResumeRequest | null {
  const w = config.walcast;
  if (typeof w !== 'object' || w === null) return null;
  const since = (w as { since?: unknown }).since;
  return { since: typeof since === 'string' ? since : null };
}

/** Send `j` what it missed since `since`; returns how many changes were replayed. */
export function replayMissed(
  j: Joined,
  since: string,
  recovery: RecoveryBuffer,
  catalog: Catalog,
  registrations: Registration[],
  maxBytes: number,
  /**
   * While a restarted relay hands over from its temporary slot (relay/live-first.ts):
   * this door's one router subscription follows the temporary slot, so a
   * resume from before this frontier cannot be continued without a gap: it is
   * refused (the client is told), never served with a hole.
   */
  frontier?: string,
): number {
  if (frontier !== undefined && since < frontier) {
    const why = `resume from ${since} failed: the relay is re-reading its recovery window after a restart (live rows flow meanwhile); read the current rows, or rejoin with this since once /readyz no longer shows rebuilding`;
    j.conn.send(system(j.conn.vsn, j.topic, 'error', why));
    return 0;
  }
  const channels = new Set<string>();
  let partial = false;
  for (const b of j.bindings) {
    const reg = registrations.find((r) => shortName(r) === b.table);
    const filter = b.filter;
    if (reg && isKeyed(filter) && filter.column === reg.channelColumn) for (const v of filter.values) channels.add(v);
    else partial = true;
  }
  const events: BufferedEvent[] = [];
  for (const channel of channels) {
    const r = recovery.replay(channel, since);
    if (!r.recovered) {
      j.conn.send(
        system(
          j.conn.vsn,
          j.topic,
          'error',
          `resume from ${since} failed for ${channel}: ${r.reason}; read the current rows`,
        ),
      );
      continue;
    }
    events.push(...r.events);
  }
  if (partial)
    j.conn.send(
      system(
        j.conn.vsn,
        j.topic,
        'error',
        "resume covers only bindings with an eq or in filter on the table's channel column; the others start live",
      ),
    );
  events.sort((a, b) => (a.position < b.position ? -1 : a.position > b.position ? 1 : 0));
  let n = 0;
  let last = '';
  for (const e of events) {
    if (e.position === last || e.truncate || e.message) continue;
    last = e.position;
    if (sendOne(j, e, catalog, maxBytes)) n++;
  }
  return n;
}

function sendOne(j: Joined, e: BufferedEvent, catalog: Catalog, maxBytes: number): boolean {
  const body = JSON.parse(e.frame) as EventMessage;
  if (body.type !== 'event') return false; // an event_too_large notice: its row is not kept
  const columns = catalog.cached(body.table);
  const change = changeOf(body, columns);
  if (!change) return false;
  const row = filteredRow(change);
  const ids = j.bindings.filter((b) => passes(b, body, change.type, row)).map((b) => b.id);
  if (ids.length === 0) return false;
  j.conn.send(changeFrame(j, [...new Set(ids)], change, maxBytes, body.position));
  return true;
}

function passes(b: Binding<Joined>, body: EventMessage, type: string, row: Record<string, unknown>): boolean {
  if (b.table !== '*' && b.table !== body.table) return false;
  if (b.event !== '*' && b.event !== type) return false;
  if (b.checkRows && !b.owner.grants.canSubscribe(body.channel)) return false;
  return passesFilters(b, row);
}
