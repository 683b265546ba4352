// The one way an event reaches subscribers, whoever read it: the slot
// relay's dispatcher (from pgoutput) and an edge relay's stream source
// (relay/edge/, from JetStream) both hand it here, so the recovery window,
// the router and the counters behave the same on both.
import type { Router } from './router.ts';
import type { EventMessage } from '../../client/protocol.ts';
import { forChannel, type RecoveryBuffer } from './recovery.ts';
import type { Via } from '../replication/handover.ts';

export interface DeliveryCounters {
  events: number;
  deliveries: number;
}

export interface Hub {
  router: Router;
  recovery: RecoveryBuffer;
  counters: DeliveryCounters;
}

export interface ChannelEvent {
  channel: string;
  table: string;
  position: string;
  /** The transaction's id, for snapshots (which transactions a read includes). */
  xid: number;
  /** Commit time, ms since 1970 (the recovery window's age bound). */
  timeMs: number;
  /** The event serialised, as the protocol sends it. */
  frame: string;
  /** `frame` as UTF-8, when the caller has it already (an edge reads bytes from NATS). */
  bytes?: Buffer | undefined;
  /** The event itself, for doors that encode their own frame (the Supabase door); absent on an edge. */
  body?: EventMessage | undefined;
  /** During a restart's hand-over: which subscriptions it is for (router.ts RoutedEvent.via). */
  via?: Via;
}

/** Is the recovery window on (it keeps events)? */
export function keeps(hub: Hub): boolean {
  return hub.recovery.limits.maxPerChannel > 0;
}

/** Keep `e` in the window and hand it to the channel's subscribers. */
export function deliver(hub: Hub, e: ChannelEvent): void {
  hub.counters.events++;
  // The window keeps a copy of what a replay needs, not `e`: `e.body` (the
  // event object, its row and the row's strings) and `e.bytes` are as big as
  // the frame again, uncounted by the window's byte bound, and every kept
  // object is copied by each young-generation GC until promoted (at 5,000
  // rows/s that copying was 8–12 ms pauses every 0.4 s, most of the p99).
  if (keeps(hub)) {
    const { channel, table, position, timeMs, frame } = e;
    hub.recovery.add({ channel, table, position, timeMs, frame }, Date.now());
  }
  if (!hub.router.hasSubscribers(e.channel)) return;
  // Encoded to UTF-8 once here: a string would be encoded again by every
  // socket it is written to (ws and net each measure or convert it).
  hub.counters.deliveries += hub.router.dispatch(e.channel, {
    table: e.table,
    position: e.position,
    xid: e.xid,
    frame: e.bytes ?? Buffer.from(e.frame),
    body: e.body,
    via: e.via,
  });
}

/**
 * A logical message routed on `channel` (an MQTT message, a Supabase
 * broadcast or presence diff): `frame` is its content. Kept in the window
 * flagged (only a resuming MQTT session replays it) and handed to the
 * subscriptions that take messages. The slot relay's dispatcher and an edge
 * (from the stream) both deliver it here.
 */
export function deliverMessage(
  hub: Hub,
  e: Omit<ChannelEvent, 'frame' | 'bytes' | 'body'> & { content: Buffer },
): void {
  if (keeps(hub)) {
    const { channel, table, position, timeMs } = e;
    hub.recovery.add(
      { channel, table, position, timeMs, frame: e.content.toString('utf8'), message: true },
      Date.now(),
    );
  }
  hub.counters.deliveries += hub.router.dispatch(e.channel, {
    table: e.table,
    position: e.position,
    xid: e.xid,
    frame: e.content,
    message: true,
    via: e.via,
  });
}

/**
 * A truncate of `table` (frame with `"channel":""`, recovery.ts
 * TRUNCATE_PREFIX): kept once, and sent to every subscription whose filter
 * admits the table, with its channel filled in.
 */
export function deliverTruncate(hub: Hub, e: Omit<ChannelEvent, 'channel' | 'bytes'>): void {
  hub.counters.events++;
  hub.recovery.addTruncate(
    { channel: '', table: e.table, position: e.position, timeMs: e.timeMs, frame: e.frame },
    Date.now(),
  );
  hub.counters.deliveries += hub.router.dispatchTable(e.table, (channel) => ({
    table: e.table,
    position: e.position,
    xid: e.xid,
    frame: Buffer.from(forChannel({ ...e, channel: '' }, channel).frame),
    via: e.via,
  }));
}
