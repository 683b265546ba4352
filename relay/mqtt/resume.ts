// A persistent session coming back (sessions.ts): its filters are restored
// and what it missed is sent before live events, in the same tick as the
// router subscriptions, so nothing falls between the two:
//   - a filter with a literal channel whose events after the stored position
//     are all in the recovery window gets them, in commit order;
//   - [edge] one whose events are not all in the window gets them from the
//     change stream (relay/edge/history.ts, as a WebSocket resume does): its
//     channel's live events are held by the router during the read, then
//     follow the last event read;
//   - any other filter (a wildcard channel or table, a topic that is not a
//     row, events gone from the window, or nothing delivered yet) gets its
//     current rows and retained messages, as a new subscription does, then live.
// MQTT messages (retain=0 publishes, wills) are in the recovery window too,
// flagged: a filter with a literal channel replays them with the rows, in
// position order.
//
// The stored position trails acknowledgements by up to FLUSH_MS (sessions.ts),
// and a relay killed meanwhile never writes the last ones: QoS 1 at least
// once. An MQTT 5 client that keeps the `position` of the last message it
// processed and sends it back as the CONNECT user property `since` resumes
// right after it instead: exactly once, on any relay or edge of the slot.
import type { BufferedEvent, Replay } from '../hub/recovery.ts';
import type { EventMessage } from '../../client/protocol.ts';
import { fromRouted, fromRow } from './outgoing.ts';
import { readCurrentRows } from './subscribe.ts';
import { planFilter } from './topics.ts';
import { parsePosition } from '../replication/position.ts';
import type { StoredSession } from './sessions.ts';
import type { Session } from './session.ts';

/**
 * The position to resume after: the client's `since` (CONNECT user property)
 * when it is a stream position of the current epoch, after the stored one
 * and not past the relay's position; else the stored one.
 */
export function resumePoint(stored: string | null, since: unknown, current: string): string | null {
  const text = Array.isArray(since) ? since.at(-1) : since;
  if (typeof text !== 'string') return stored;
  const parts = parsePosition(text);
  const now = parsePosition(current);
  if (!parts || !now || parts.snapshotRow !== undefined || parts.epoch !== now.epoch) return stored;
  if (text > current || (stored !== null && text <= stored)) return stored;
  return text;
}

export async function resume(s: Session, stored: StoredSession): Promise<void> {
  const { recovery, history } = s.server.opts;
  // A retained row's position (`…~n`) is not resumable: such a session gets current rows again.
  const since = stored.resumeAfter?.includes('~') ? null : stored.resumeAfter;
  s.resumeFrom(since);
  const allowed = Object.entries(stored.filters).filter(([filter]) => {
    const { channel } = planFilter(filter);
    return channel === null || s.grants!.canSubscribe(channel); // the new token may no longer allow it
  });
  // Per channel of a row filter: its events after `since` from the window, or (an edge) from the stream.
  const replays = new Map<string, BufferedEvent[] | 'stream' | null>();
  for (const [filter] of allowed) {
    const channel = rowChannel(filter);
    if (channel === null || since === null || replays.has(channel)) continue;
    const r = recovery.replay(channel, since, true);
    replays.set(channel, r.recovered ? r.events : history ? 'stream' : null);
  }
  const fromRows: string[] = [];
  const streamed = new Map<string, string[]>();
  for (const [filter, qos] of allowed) {
    const { channel } = planFilter(filter);
    const way = channel === null ? null : (replays.get(channel) ?? null);
    const row = rowChannel(filter) !== null;
    // A recovered channel follows the stream from `since`, as a WebSocket resume does; one read
    // from the stream has its live events held by the router meanwhile.
    s.subs.add(filter, qos, way !== null ? since! : undefined, way === 'stream');
    if (way !== null && row) s.subs.activate(filter);
    else fromRows.push(filter);
    if (way === 'stream' && row) streamed.set(channel!, [...(streamed.get(channel!) ?? []), filter]);
  }
  const replayed = [...replays.values()].flatMap((r) => (Array.isArray(r) ? r : []));
  replayed.sort((a, b) => (a.position < b.position ? -1 : a.position > b.position ? 1 : 0));
  for (const e of replayed) routeBuffered(s, e);
  const mark = history?.mark() ?? 0;
  for (const [channel, filters] of streamed)
    if (!(await fromStream(s, channel, filters, since!, mark))) fromRows.push(...filters);
  s.server.opts.logger.info(
    { clientId: s.clientId, replayed: replayed.length, streamed: streamed.size, currentRows: fromRows.length },
    'MQTT persistent session resumed',
  );
  if (s.closed) return;
  const current = await readCurrentRows(s, fromRows, () => {});
  if (!s.closed)
    await s.subs.settle(
      fromRows.filter((f) => s.subs.filters.has(f)),
      current.retained,
      current.visible,
    );
}

/** The channel of a filter on a table's rows with a literal channel; null for any other filter. */
function rowChannel(filter: string): string | null {
  const plan = planFilter(filter);
  return plan.table !== null ? plan.channel : null;
}

function routeBuffered(s: Session, e: BufferedEvent): void {
  const keys = (t: string) => s.server.keys.get(t);
  const content = Buffer.from(e.frame);
  const m = e.message
    ? fromRouted(content, { table: e.table, position: e.position, xid: 0, frame: content, message: true }, keys)
    : fromRow(JSON.parse(e.frame) as EventMessage, 0, keys);
  if (m) s.subs.route(m);
}

/**
 * [edge] The channel's events after `since`, up to `mark`, read back from the
 * change stream (relay/edge/history.ts), then the live ones the router held
 * meanwhile after the last one sent. false: the stream no longer has them
 * (the held events are routed to the then pending filters, which get current rows).
 */
async function fromStream(
  s: Session,
  channel: string,
  filters: string[],
  since: string,
  mark: number,
): Promise<boolean> {
  let replay: Replay;
  try {
    replay = await s.server.opts.history!.read(channel, since, mark);
  } catch (err) {
    s.server.opts.logger.warn({ err, channel }, 'MQTT: reading missed events from the stream failed');
    replay = { recovered: false, reason: 'reading the stream failed' };
  }
  const held = s.subs.release(channel);
  if (held === 'overflow') {
    s.overflow();
    return true;
  }
  let last = since;
  if (replay.recovered)
    for (const e of replay.events) {
      routeBuffered(s, e);
      last = e.position;
    }
  // Not recovered: pending again, so the held events wait for the current rows (subscriptions.ts).
  else for (const f of filters) s.subs.activate(f, false);
  for (const e of held ?? []) if (e.position > last) s.send(e.frame, e);
  return replay.recovered;
}
