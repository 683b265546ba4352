// Channel → subscribers. Pure: a sink is anything that takes a frame, so the
// router is tested without sockets. A frame is serialised once by the caller
// and the same string goes to every subscriber of the channel.
//
// A subscription may start "after" a position (it resumed from there and has
// seen everything up to it) and may be "held" while its snapshot is read:
// held events queue up, bounded, until release() hands them over.
import type { EventMessage } from '../../client/protocol.ts';
import type { Visibility } from '../db/snapshot.ts';
import type { Via } from '../replication/handover.ts';

/**
 * A serialised event: the dispatcher hands sockets UTF-8 bytes, encoded once
 * per event, so that no send re-encodes the same string per subscriber.
 */
export type Frame = string | Buffer;

export interface Sink {
  /** `event` is what was routed (the MQTT front door reads its table, position and xid). */
  send(frame: Frame, event?: RoutedEvent): void;
}

/** A subscription's table filter; null means every table. */
export type TableFilter = ReadonlySet<string> | null;

export interface RoutedEvent {
  table: string;
  position: string;
  /** The transaction's id, to tell which events a snapshot already covers. */
  xid: number;
  frame: Frame;
  /** An MQTT message (relay/mqtt/): only for subscriptions opened with `messages`. */
  message?: true;
  /** The row event `frame` serialises, for a front door that encodes its own frames (relay/supabase/). */
  body?: EventMessage;
  /**
   * During a restart's hand-over (replication/handover.ts): `early` from the
   * temporary slot, for live subscriptions only; `window` re-read by the
   * permanent slot and already sent to live ones, for window subscriptions only.
   */
  via?: Via;
}

export interface SubscribeOptions {
  tables: TableFilter;
  /** Skip events at or before this position. */
  after?: string;
  /** Queue events instead of sending them, until release(). */
  hold?: boolean;
  /** Also receive MQTT messages (relay/mqtt/), not only row events. */
  messages?: boolean;
}

interface Subscription {
  tables: TableFilter;
  /** Resumed from before the hand-over's frontier: follows the permanent slot only (handover.ts). */
  window: boolean;
  messages: boolean;
  after: string | undefined;
  held: RoutedEvent[] | undefined;
  heldBytes: number;
  /** The largest held frame: one event may go past the bound (a large row). */
  largestHeld: number;
  overflow: boolean;
  /**
   * After a snapshot: events of transactions the read already saw are not
   * sent, until one that started after the read arrives (the stream is in
   * commit order, so every transaction the read saw has come by then). The
   * read may see commits the relay routes only later: decoding lags a
   * commit, and an edge may be behind its stream.
   */
  seen: Visibility | undefined;
}

/**
 * Most bytes of frames held for one subscription while its snapshot is read,
 * besides the largest one (an event larger than the bound must not fail a
 * snapshot; its bytes are shared with every other subscriber).
 */
export const MAX_HELD_BYTES = 4 * 1024 * 1024;

export class Router {
  private readonly channels = new Map<string, Map<Sink, Subscription>>();
  /** MQTT wildcard subscriptions (`presence/+/#`): every channel's events (relay/mqtt/). */
  private readonly everyChannel = new Map<Sink, Subscription>();
  private subscriptions = 0;
  /**
   * While a restart's hand-over runs: its frontier (handover.ts). A
   * subscription that starts before it is a window subscription.
   */
  frontier: () => string | undefined = () => undefined;

  /** Returns false if the sink already holds this channel. */
  subscribe(channel: string, sink: Sink, opts: SubscribeOptions): boolean {
    let subs = this.channels.get(channel);
    if (!subs) {
      subs = new Map();
      this.channels.set(channel, subs);
    }
    if (subs.has(sink)) return false;
    subs.set(sink, this.subscription(opts));
    this.subscriptions++;
    return true;
  }

  /** Every channel's events (MQTT wildcard filters); false if the sink already has it. */
  subscribeAll(sink: Sink, opts: SubscribeOptions): boolean {
    if (this.everyChannel.has(sink)) return false;
    this.everyChannel.set(sink, this.subscription(opts));
    this.subscriptions++;
    return true;
  }

  unsubscribeAll(sink: Sink): boolean {
    if (!this.everyChannel.delete(sink)) return false;
    this.subscriptions--;
    return true;
  }

  /** Returns false if the sink did not hold this channel. */
  unsubscribe(channel: string, sink: Sink): boolean {
    const subs = this.channels.get(channel);
    if (!subs?.delete(sink)) return false;
    this.subscriptions--;
    if (subs.size === 0) this.channels.delete(channel);
    return true;
  }

  /**
   * Stop holding: returns the held events (or 'overflow' if they passed
   * MAX_HELD_BYTES). With `seen` (the snapshot read's visibility), later
   * events the read already covered are skipped (Subscription.seen).
   */
  release(channel: string, sink: Sink, seen?: Visibility): RoutedEvent[] | 'overflow' | undefined {
    const sub = this.channels.get(channel)?.get(sink);
    if (!sub?.held) return undefined;
    sub.seen = seen;
    const held = sub.overflow ? 'overflow' : sub.held;
    sub.held = undefined;
    sub.heldBytes = 0;
    sub.largestHeld = 0;
    return held;
  }

  /** Hand `event` to every subscriber of `channel` whose filter admits it; returns how many. */
  dispatch(channel: string, event: RoutedEvent): number {
    const subs = this.channels.get(channel);
    let n = subs ? this.deliver(subs, event) : 0;
    if (this.everyChannel.size > 0) n += this.deliver(this.everyChannel, event);
    return n;
  }

  private deliver(subs: Map<Sink, Subscription>, event: RoutedEvent): number {
    let n = 0;
    for (const [sink, sub] of subs) {
      if (sub.tables !== null && !sub.tables.has(event.table)) continue;
      if (event.message && !sub.messages) continue;
      if (event.via !== undefined && (event.via === 'window') !== sub.window) continue;
      if (sub.after !== undefined) {
        if (event.position <= sub.after) continue;
        sub.after = undefined;
      }
      if (sub.seen !== undefined) {
        if (sub.seen(event.xid)) continue;
        if (sub.seen.startedAfter(event.xid)) sub.seen = undefined;
      }
      if (sub.held) {
        if (!sub.overflow) {
          sub.held.push(event);
          sub.heldBytes += event.frame.length;
          sub.largestHeld = Math.max(sub.largestHeld, event.frame.length);
          sub.overflow = sub.heldBytes - sub.largestHeld > MAX_HELD_BYTES;
        }
        continue;
      }
      sink.send(event.frame, event);
      n++;
    }
    return n;
  }

  /**
   * Hand an event that belongs to no channel (a truncate of `table`) to
   * every subscription whose filter admits the table, built per channel by
   * `make`; returns how many received it.
   */
  dispatchTable(table: string, make: (channel: string) => RoutedEvent): number {
    let n = 0;
    for (const [channel, subs] of this.channels) {
      for (const sub of subs.values()) {
        if (sub.tables !== null && !sub.tables.has(table)) continue;
        // This channel's own subscriptions only: subscriptions to every channel (MQTT wildcards) do not take truncates.
        n += this.deliver(subs, make(channel));
        break;
      }
    }
    return n;
  }

  private subscription(opts: SubscribeOptions): Subscription {
    const frontier = this.frontier();
    return {
      tables: opts.tables,
      window: opts.after !== undefined && frontier !== undefined && opts.after < frontier,
      messages: opts.messages ?? false,
      after: opts.after,
      held: opts.hold ? [] : undefined,
      heldBytes: 0,
      largestHeld: 0,
      overflow: false,
      seen: undefined,
    };
  }

  hasSubscribers(channel: string): boolean {
    return this.channels.has(channel) || this.everyChannel.size > 0;
  }

  get channelCount(): number {
    return this.channels.size;
  }

  get subscriptionCount(): number {
    return this.subscriptions;
  }
}
