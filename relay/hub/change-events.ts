// The events of one row change (pure): which channel each goes to, with the
// row, the old row or key, and the unchanged TOASTed columns as the protocol
// (docs/protocol.md) describes them. The dispatcher (dispatcher.ts) fills in
// the rest of the event before it calls sends().
import type { PgoutputMessage, Tuple } from '../replication/decoder.ts';
import type { EventMessage } from '../../client/protocol.ts';
import { MAX_CHANNEL_LENGTH } from '../../client/protocol.ts';

/**
 * The events of one change, by channel. An update that moves a row to
 * another channel is two events, each with only what belongs to its
 * channel: the old channel gets `op: "delete", moved: "out"` with the old
 * row (or key) as `row`, the new channel `op: "insert", moved: "in"` with
 * the new row and no `old`. Neither learns the other channel's name.
 */
export function sends(
  msg: Extract<PgoutputMessage, { tag: 'insert' | 'update' | 'delete' }>,
  event: EventMessage,
  column: string,
): [string | undefined, EventMessage][] {
  if (msg.tag === 'insert') {
    event.row = msg.new.values;
    if (msg.new.unchanged) event.unchanged = msg.new.unchanged;
    return [[channelOf(msg.new.values, column), event]];
  }
  const prior = msg.old ?? msg.key;
  if (msg.tag === 'delete') {
    event.row = prior?.values ?? {};
    return [[prior ? channelOf(prior.values, column) : undefined, event]];
  }
  fillUnchanged(event, msg.new, msg.old);
  const to = channelOf(msg.new.values, column);
  const from = prior ? channelOf(prior.values, column) : undefined;
  if (from === undefined || from === to) {
    if (prior) event.old = prior.values;
    return [[to, event]];
  }
  const movedOut: EventMessage = { ...event, op: 'delete', moved: 'out', row: prior!.values };
  delete movedOut.unchanged;
  const movedIn: EventMessage = { ...event, op: 'insert', moved: 'in' };
  return [
    [to, movedIn],
    [from, movedOut],
  ];
}

function channelOf(values: Record<string, unknown>, column: string): string | undefined {
  const v = values[column];
  if (typeof v === 'string') return v.length > 0 && v.length <= MAX_CHANNEL_LENGTH ? v : undefined;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return undefined;
}

/** Unchanged TOASTed columns are taken from the old row when REPLICA IDENTITY FULL sent it; the rest are listed. */
function fillUnchanged(event: EventMessage, next: Tuple, old: Tuple | undefined): void {
  event.row = next.values;
  if (!next.unchanged) return;
  const missing: string[] = [];
  for (const name of next.unchanged) {
    if (old && name in old.values) next.values[name] = old.values[name];
    else missing.push(name);
  }
  if (missing.length) event.unchanged = missing;
}
