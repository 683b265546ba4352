// A persistent session coming back (sessions.ts): its filters are restored
// and what it missed is sent before live events, in the same tick as the
// router subscriptions, so nothing falls between the two:
//   - a filter with a literal channel whose events after the stored position
//     are all in the recovery window gets them, in commit order;
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
import type { BufferedEvent } from '../hub/recovery.ts';
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
  const { recovery } = s.server.opts;
  // A retained row's position (`…~n`) is not resumable: such a session gets current rows again.
  const since = stored.resumeAfter?.includes('~') ? null : stored.resumeAfter;
  s.resumeFrom(since);
  const replayed: BufferedEvent[] = [];
  const fromRows: string[] = [];
  const replays = new Map<string, BufferedEvent[] | null>();
  for (const [filter, qos] of Object.entries(stored.filters)) {
    const plan = planFilter(filter);
    // Rows and MQTT messages of a literal channel are in the recovery window; a wildcard channel gets current rows.
    const channel = plan.table !== null ? plan.channel : null;
    if (plan.channel !== null && !s.grants!.canSubscribe(plan.channel)) continue; // the new token no longer allows it
    if (channel !== null && since !== null && !replays.has(channel)) {
      const r = recovery.replay(channel, since, true);
      replays.set(channel, r.recovered ? r.events : null);
      if (r.recovered) replayed.push(...r.events);
    }
    const recovered = channel !== null && replays.get(channel);
    // A recovered channel follows the stream from `since`, as a WebSocket resume does.
    s.subs.add(filter, qos, recovered ? since! : undefined);
    if (recovered) s.subs.activate(filter);
    else fromRows.push(filter);
  }
  replayed.sort((a, b) => (a.position < b.position ? -1 : a.position > b.position ? 1 : 0));
  const keys = (t: string) => s.server.keys.get(t);
  for (const e of replayed) {
    const content = Buffer.from(e.frame);
    const m = e.message
      ? fromRouted(content, { table: e.table, position: e.position, xid: 0, frame: content, message: true }, keys)
      : fromRow(JSON.parse(e.frame) as EventMessage, 0, keys);
    if (m) s.subs.route(m);
  }
  s.server.opts.logger.info(
    { clientId: s.clientId, replayed: replayed.length, currentRows: fromRows.length },
    'MQTT persistent session resumed',
  );
  const current = await readCurrentRows(s, fromRows, () => {});
  if (!s.closed)
    await s.subs.settle(
      fromRows.filter((f) => s.subs.filters.has(f)),
      current.retained,
      current.visible,
    );
}
