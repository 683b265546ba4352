// The recovery window: recent events per channel, kept so that a client that
// comes back with `since` gets exactly the events it missed, or is told
// plainly that they are gone (never a partial replay).
//
// Bounds (each configurable, all enforced on every add):
//   - age: events whose commit is older than maxAgeMs are dropped;
//   - count: at most maxPerChannel events per channel;
//   - memory: at most maxBytes for all frames together (oldest dropped first).
// Dropping an event raises a floor: the global floor (age and memory, which
// drop in position order across channels) or the channel's own floor
// (count). A `since` at or above the channel's floor is recoverable: every
// later event of that channel is still here. Pure: no I/O, no timers.
//
// A TRUNCATE belongs to no channel: it is kept once, in a list of its own,
// under the same age and memory bounds, and merged into every channel's
// replay in position order with the channel filled in.

import { parsePosition } from '../replication/position.ts';

export interface BufferedEvent {
  channel: string;
  table: string;
  position: string;
  /** Commit time, ms since 1970. */
  timeMs: number;
  frame: string;
  evicted?: boolean;
  /** A truncate: `channel` is empty and `frame` starts with TRUNCATE_PREFIX. */
  truncate?: boolean;
  /** An MQTT message (not a row): `frame` is its logical message; replayed only when asked for. */
  message?: boolean;
}

/** How a stored truncate frame starts; replay() puts the channel in. */
export const TRUNCATE_PREFIX = '{"type":"event","channel":""';

export interface RecoveryLimits {
  maxAgeMs: number;
  maxPerChannel: number;
  maxBytes: number;
}

/** Per-event bookkeeping on top of the frame (object, array slots). */
const ENTRY_OVERHEAD = 120;

/**
 * What a frame's characters cost in memory, at most: V8 keeps a string in
 * one byte per character when every character fits, else in two. A frame
 * whose UTF-8 length equals its length is ASCII (one byte each); any other
 * is counted at two bytes per character.
 */
function frameBytes(frame: string): number {
  return Buffer.byteLength(frame) === frame.length ? frame.length : 2 * frame.length;
}

interface ChannelLog {
  events: BufferedEvent[];
  head: number;
  floor: string;
}

export type Replay = { recovered: true; events: BufferedEvent[] } | { recovered: false; reason: string };

export class RecoveryBuffer {
  private readonly channels = new Map<string, ChannelLog>();
  private fifo: BufferedEvent[] = [];
  private fifoHead = 0;
  private truncates: BufferedEvent[] = [];
  private floor = '';
  private epoch = '';
  bytes = 0;
  count = 0;

  constructor(readonly limits: RecoveryLimits) {}

  /** Start over at `floor` (a stream point of `epoch`): everything after it will be added. */
  reset(floor: string, epoch: string): void {
    this.channels.clear();
    this.fifo = [];
    this.fifoHead = 0;
    this.truncates = [];
    this.floor = floor;
    this.epoch = epoch;
    this.bytes = 0;
    this.count = 0;
  }

  add(event: BufferedEvent, nowMs: number): void {
    if (this.limits.maxPerChannel === 0) {
      this.floor = event.position;
      return;
    }
    let log = this.channels.get(event.channel);
    if (!log) {
      log = { events: [], head: 0, floor: '' };
      this.channels.set(event.channel, log);
    }
    log.events.push(event);
    this.fifo.push(event);
    this.bytes += frameBytes(event.frame) + ENTRY_OVERHEAD;
    this.count++;
    if (log.events.length - log.head > this.limits.maxPerChannel) {
      const old = this.shiftChannel(log);
      old.evicted = true;
      log.floor = old.position;
    }
    this.evict(nowMs);
  }

  /** Keep a truncate (channel '', frame starting with TRUNCATE_PREFIX) for every channel's replay. */
  addTruncate(event: BufferedEvent, nowMs: number): void {
    if (this.limits.maxPerChannel === 0) {
      this.floor = event.position;
      return;
    }
    event.truncate = true;
    this.truncates.push(event);
    this.fifo.push(event);
    this.bytes += frameBytes(event.frame) + ENTRY_OVERHEAD;
    this.count++;
    this.evict(nowMs);
  }

  /** Drop events past the age and memory bounds. */
  evict(nowMs: number): void {
    const oldest = nowMs - this.limits.maxAgeMs;
    while (this.fifoHead < this.fifo.length) {
      const e = this.fifo[this.fifoHead]!;
      if (!e.evicted && e.timeMs >= oldest && this.bytes <= this.limits.maxBytes) break;
      this.fifoHead++;
      if (e.evicted) continue;
      if (e.truncate) {
        this.truncates.shift(); // truncates are few: the list stays short
        this.bytes -= frameBytes(e.frame) + ENTRY_OVERHEAD;
        this.count--;
        this.floor = e.position;
        continue;
      }
      const log = this.channels.get(e.channel)!;
      this.shiftChannel(log);
      this.floor = e.position;
      if (log.head === log.events.length) this.channels.delete(e.channel);
    }
    if (this.fifoHead > 4096 && this.fifoHead * 2 > this.fifo.length) {
      this.fifo = this.fifo.slice(this.fifoHead);
      this.fifoHead = 0;
    }
  }

  /**
   * The events of `channel` after `since`, if none of them was dropped.
   * MQTT messages are included only with `messages` (an MQTT session
   * resuming); a WebSocket or HTTP replay carries row changes only.
   */
  replay(channel: string, since: string, messages = false): Replay {
    const parts = parsePosition(since);
    if (!parts) return { recovered: false, reason: 'not a position' };
    if (parts.epoch !== this.epoch)
      return { recovered: false, reason: 'the position is from another epoch (the slot was recreated)' };
    if (parts.snapshotRow !== undefined)
      return { recovered: false, reason: 'a snapshot row is not a resumable position' };
    const log = this.channels.get(channel);
    const floor = log && log.floor > this.floor ? log.floor : this.floor;
    if (since < floor) return { recovered: false, reason: 'events after this position have left the recovery window' };
    let events = log ? log.events.slice(this.firstAfter(log, since)) : [];
    if (!messages) events = events.filter((e) => !e.message);
    const truncates = this.truncates.filter((t) => t.position > since).map((t) => forChannel(t, channel));
    return { recovered: true, events: truncates.length ? mergeByPosition(events, truncates) : events };
  }

  /**
   * The last `limit` logical messages of `channel` committed at or after
   * `sinceMs` that `keep` accepts, oldest first (a Supabase broadcast replay:
   * relay/supabase/replay.ts). Scans back from the newest, at most the
   * channel's window (WALCAST_RECOVERY_EVENTS events).
   */
  recentMessages(
    channel: string,
    sinceMs: number,
    limit: number,
    keep: (e: BufferedEvent) => boolean,
  ): BufferedEvent[] {
    const log = this.channels.get(channel);
    const out: BufferedEvent[] = [];
    if (!log) return out;
    for (let i = log.events.length - 1; i >= log.head && out.length < limit; i--) {
      const e = log.events[i]!;
      // Commit times follow positions only roughly: look at every event of the window rather than stop at the first older one.
      if (e.message && e.timeMs >= sinceMs && keep(e)) out.push(e);
    }
    return out.reverse();
  }

  /** Where the window starts: positions below it cannot be resumed. */
  get globalFloor(): string {
    return this.floor;
  }

  get channelCount(): number {
    return this.channels.size;
  }

  private firstAfter(log: ChannelLog, since: string): number {
    let lo = log.head;
    let hi = log.events.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (log.events[mid]!.position <= since) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private shiftChannel(log: ChannelLog): BufferedEvent {
    const e = log.events[log.head]!;
    log.events[log.head] = undefined as unknown as BufferedEvent; // let the frame be collected
    log.head++;
    this.bytes -= frameBytes(e.frame) + ENTRY_OVERHEAD;
    this.count--;
    if (log.head > 1024 && log.head * 2 > log.events.length) {
      log.events = log.events.slice(log.head);
      log.head = 0;
    }
    return e;
  }
}

/** A stored truncate as `channel` receives it. */
export function forChannel(t: BufferedEvent, channel: string): BufferedEvent {
  const frame = `{"type":"event","channel":${JSON.stringify(channel)}${t.frame.slice(TRUNCATE_PREFIX.length)}`;
  return { channel, table: t.table, position: t.position, timeMs: t.timeMs, frame };
}

/** Two lists each in position order, as one. */
function mergeByPosition(a: BufferedEvent[], b: BufferedEvent[]): BufferedEvent[] {
  const out: BufferedEvent[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i]!.position < b[j]!.position)) out.push(a[i++]!);
    else out.push(b[j++]!);
  }
  return out;
}
