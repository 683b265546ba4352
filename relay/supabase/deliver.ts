// From the router's events to this door's frames. A row event is turned
// into its postgres_changes data once, matched against the binding index
// (eq filters looked up, the rest checked), and sent to each joined channel
// with the ids of its bindings that match. Channels with the same topic, ids
// and serializer get the same Buffer: in fan-out, one frame per event.
import type { RoutedEvent } from '../hub/router.ts';
import type { EventMessage } from '../../client/protocol.ts';
import type { Binding } from './bindings.ts';
import type { Catalog } from './catalog.ts';
import { changeOf, dataJson, filteredRow, type ChangeData } from './changes.ts';
import type { Channels, Joined } from './channels.ts';
import { pushJson, push } from './frames.ts';
import type { Broadcast } from './broadcast.ts';
import type { PresenceMessage } from './presence.ts';
import { encodeUserBroadcast } from './serializer.ts';

/**
 * Send a row event to the channels whose bindings match it; returns how many channels got it.
 * On an edge the event has no body (it came from the stream as its frame): the frame is parsed,
 * once per event, and only for a table some binding watches.
 */
export function deliverChange(
  channels: Channels,
  catalog: Catalog,
  event: RoutedEvent,
  frame: Buffer | string,
  maxBytes: number,
): number {
  if (!channels.index.watches(event.table)) return 0;
  const body = event.body ?? bodyOf(frame);
  if (!body) return 0;
  const columns = catalog.cached(body.table);
  const change = changeOf(body, columns);
  if (!change) return 0;
  const matched = channels.index.match(body.table, change.type, filteredRow(change));
  if (matched.length === 0) return 0;
  const groups = byChannel(matched, body.channel);
  let data: string | undefined;
  // Consecutive channels usually share a frame (fan-out: one topic, one binding id, one serializer), so the
  // last key is compared before the map is asked; the map holds the others (a row for several topics).
  let lastKey = '';
  let last: Buffer | undefined;
  let frames: Map<string, Buffer> | undefined;
  for (const { owner: j, soloKey } of groups) {
    const key = j.multi ? j.frameKey + j.ids.join(',') : soloKey;
    if (key !== lastKey || !last) {
      let frame = frames?.get(key);
      if (!frame) {
        data ??= dataJson(change, maxBytes);
        frame = Buffer.from(framed(j, j.multi ? j.ids : [j.firstId], data, event.position));
        (frames ??= new Map()).set(key, frame);
      }
      lastKey = key;
      last = frame;
    }
    j.conn.send(last);
  }
  return groups.length;
}

/** The event in a frame from the stream; undefined for an event_too_large notice (its row is not there). */
function bodyOf(frame: Buffer | string): EventMessage | undefined {
  const body = JSON.parse(typeof frame === 'string' ? frame : frame.toString('utf8')) as EventMessage;
  return body.type === 'event' ? body : undefined;
}

/** One postgres_changes frame for `j` (a replayed change, resume.ts). */
export function changeFrame(j: Joined, ids: number[], change: ChangeData, maxBytes: number, position: string): Buffer {
  return Buffer.from(framed(j, ids, dataJson(change, maxBytes), position));
}

function framed(j: Joined, ids: number[], data: string, position: string): string {
  const extra = j.positions ? `,"walcast_position":${JSON.stringify(position)}` : '';
  return pushJson(j.conn.vsn, j.topic, 'postgres_changes', `{"ids":[${ids.join(',')}],"data":${data}${extra}}`);
}

/** Marks which event a channel's bindings were collected for (no Map per event in fan-out). */
let round = 0;

/**
 * Matched bindings by channel, each channel once (its first binding stands
 * for it); bindings whose rows are checked need the channel granted. A
 * channel matched by one binding id (the usual case) keeps it in `firstId`;
 * only one matched by several gets `multi` and the list in `ids`, so that
 * fan-out allocates and resets nothing per subscriber.
 */
function byChannel(matched: Binding<Joined>[], channel: string): Binding<Joined>[] {
  const firsts: Binding<Joined>[] = [];
  round++;
  for (const b of matched) {
    if (b.checkRows && !b.owner.grants.canSubscribe(channel)) continue;
    const j = b.owner;
    if (j.round !== round) {
      j.round = round;
      j.firstId = b.id;
      j.multi = false;
      firsts.push(b);
    } else if (!j.multi) {
      // Equal bindings share an id: a second one with the first's id changes nothing.
      if (b.id === j.firstId) continue;
      j.multi = true;
      j.ids = [j.firstId, b.id];
    } else if (!j.ids.includes(b.id)) j.ids.push(b.id);
  }
  return firsts;
}

/** Send a broadcast read from the stream to its topic's channels here (the sender only with `self`). */
export function deliverBroadcast(channels: Channels, b: Broadcast): number {
  const topic = `realtime:${b.topic}`;
  const frames = new Map<string, Buffer>();
  let n = 0;
  for (const j of channels.topics.get(topic) ?? []) {
    if (!j.topicAllowed || (b.sender === j.conn.id && !j.self)) continue;
    // vsn 2.0.0 clients get upstream's binary user broadcast (kind 4) when its 255-byte fields allow; others JSON.
    const binary = j.conn.vsn === '2.0.0' && Buffer.byteLength(topic) <= 255 && Buffer.byteLength(b.event) <= 255;
    const vsn = binary ? 'binary' : j.conn.vsn;
    let frame = frames.get(vsn);
    if (!frame) {
      frame = binary
        ? encodeUserBroadcast(topic, b.event, b.payload)
        : Buffer.from(push(j.conn.vsn, topic, 'broadcast', { type: 'broadcast', event: b.event, payload: b.payload }));
      frames.set(vsn, frame);
    }
    if (binary) j.conn.sendBinary(frame);
    else j.conn.send(frame);
    n++;
  }
  return n;
}

/** Send a presence diff read from the stream to its topic's channels here that may see the topic's presence. */
export function deliverPresence(channels: Channels, m: PresenceMessage): void {
  const topic = `realtime:${m.topic}`;
  for (const j of channels.topics.get(topic) ?? [])
    if (j.topicAllowed) j.conn.send(push(j.conn.vsn, topic, 'presence_diff', m.presence, j.joinRef));
}
