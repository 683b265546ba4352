// One MQTT session's topic filters and how they ride on the router. A filter
// with a literal channel level holds a router subscription to that channel;
// one with a wildcard channel (`presence/+/#`, `#`) holds the router's
// every-channel subscription. The router hands the session every event of
// those channels; here each event is matched against the filters (MQTT
// 4.7) and delivered once, with the highest QoS of the matching filters
// (3.3.5), only on channels the grants allow.
//
// A new filter starts "pending": its live events are held while its current
// rows are read (retained.ts), then the rows go out as retained messages,
// then the held events the read did not include, then it is live: no gap
// and no duplicate between the rows and the live stream (events the read
// included that arrive later still are dropped: Filter.seen). Held events are
// bounded by MAX_HELD_BYTES; past it the session is closed as a slow consumer.
import type { Visibility } from '../db/snapshot.ts';
import type { RoutedEvent, Router, Sink } from '../hub/router.ts';
import type { Grants } from '../auth/grants.ts';
import { channelOfTopic, matches, planFilter, type FilterPlan } from './topics.ts';
import type { OutMessage } from './outgoing.ts';

export const MAX_HELD_BYTES = 4 * 1024 * 1024;

export interface Filter {
  plan: FilterPlan;
  qos: 0 | 1;
  live: boolean;
  /**
   * The snapshot of the filter's retained read: rows of transactions it saw
   * are not sent again (a read may see commits the relay has not routed yet:
   * an edge behind its stream), until one that started after the read
   * arrives: the stream is in commit order, so by then every transaction it
   * saw has come. (Not at the first one it did not see: commit order and
   * visibility order can differ for transactions committing together.)
   */
  seen?: Visibility | undefined;
}

export interface Delivery {
  deliver(m: OutMessage, qos: 0 | 1, retain: boolean): void;
  overflow(): void;
  /** Resolves once the client's queue is short enough to take more retained rows (or it closed). */
  drained(): Promise<void>;
}

export class Subscriptions {
  readonly filters = new Map<string, Filter>();
  private readonly channels = new Map<string, number>();
  private wildcards = 0;
  private held: OutMessage[] = [];
  private heldBytes = 0;

  constructor(
    private readonly router: Router,
    private readonly sink: Sink,
    private readonly delivery: Delivery,
    private readonly grants: () => Grants | null,
    private readonly position: () => string,
  ) {}

  get size(): number {
    return this.filters.size;
  }

  /**
   * Add (or replace) a filter; returns whether it existed. A new one is
   * pending until settle(). `after`: a resumed session's position, so events
   * the stream still replays after it (a promoted standby rebuilding its
   * window) reach the filter too, as a WebSocket resume does. `hold`: the
   * router holds the channel's events until release() (an edge reading what
   * the session missed from the stream, resume.ts).
   */
  add(filter: string, qos: 0 | 1, after?: string, hold = false): boolean {
    const existing = this.filters.get(filter);
    if (existing) {
      existing.qos = qos;
      return true;
    }
    const plan = planFilter(filter);
    this.filters.set(filter, { plan, qos, live: false });
    if (plan.channel === null) {
      if (this.wildcards++ === 0)
        this.router.subscribeAll(this.sink, { tables: null, after: this.position(), messages: true });
    } else {
      const n = this.channels.get(plan.channel) ?? 0;
      this.channels.set(plan.channel, n + 1);
      if (n === 0)
        this.router.subscribe(plan.channel, this.sink, {
          tables: null,
          after: after ?? this.position(),
          messages: true,
          ...(hold ? { hold } : {}),
        });
    }
    return false;
  }

  /** Make a filter live without reading its rows (a resumed session replays it instead); `live: false` undoes it. */
  activate(filter: string, live = true): void {
    const f = this.filters.get(filter);
    if (f) f.live = live;
  }

  /** The events the router held for `channel` since add(…, hold) (or 'overflow'), and it stops holding. */
  release(channel: string): RoutedEvent[] | 'overflow' | undefined {
    return this.router.release(channel, this.sink);
  }

  remove(filter: string): boolean {
    const f = this.filters.get(filter);
    if (!f) return false;
    this.filters.delete(filter);
    if (f.plan.channel === null) {
      if (--this.wildcards === 0) this.router.unsubscribeAll(this.sink);
    } else {
      const n = (this.channels.get(f.plan.channel) ?? 1) - 1;
      if (n > 0) this.channels.set(f.plan.channel, n);
      else {
        this.channels.delete(f.plan.channel);
        this.router.unsubscribe(f.plan.channel, this.sink);
      }
    }
    return true;
  }

  /** Every router subscription of the session is dropped (it closed). */
  clear(): void {
    for (const filter of [...this.filters.keys()]) this.remove(filter);
    this.held = [];
    this.heldBytes = 0;
  }

  /** A routed message: delivered to the live filters it matches, or held for a pending one. */
  route(m: OutMessage): void {
    let qos = -1;
    let pending = false;
    let channel: string | undefined;
    const grants = this.grants();
    for (const f of this.filters.values()) {
      if (!matches(f.plan.filter, m.topic)) continue;
      if (f.plan.channel === null && grants && !grants.canSubscribe((channel ??= channelOfTopic(m.topic)))) continue;
      if (!f.live) pending = true;
      else if (!this.seenBefore(f, m)) qos = Math.max(qos, f.qos);
    }
    if (qos >= 0) return this.delivery.deliver(m, Math.min(qos, m.qos) as 0 | 1, false);
    if (!pending) return;
    this.held.push(m);
    this.heldBytes += m.payload.length + m.topic.length;
    if (this.heldBytes > MAX_HELD_BYTES) this.delivery.overflow();
  }

  /** Was `m` (a row, or a stored message) in the filter's retained read? Past the read's horizon, never again. */
  private seenBefore(f: Filter, m: OutMessage): boolean {
    if (!f.seen || !(m.row || m.stored)) return false;
    if (f.seen(m.xid)) return true;
    if (f.seen.startedAfter(m.xid)) f.seen = undefined;
    return false;
  }

  /**
   * The retained rows were read: send each filter's rows (retain flag set),
   * make the `pending` filters live, then route the held events the read did
   * not include (`visible`: the read's snapshot; null when nothing was read).
   */
  async settle(pending: string[], retained: Map<string, OutMessage[]>, visible: Visibility | null): Promise<void> {
    // Many rows are paced by the client's queue (backpressure), not queued at once; live
    // events of the pending filters stay held meanwhile.
    for (const [filter, messages] of retained) {
      for (const m of messages) {
        const f = this.filters.get(filter);
        if (!f) break;
        this.delivery.deliver(m, f.qos, true);
        await this.delivery.drained();
      }
    }
    for (const filter of pending) {
      const f = this.filters.get(filter);
      if (!f) continue;
      f.live = true;
      f.seen = visible ?? undefined;
    }
    const held = this.held;
    this.held = [];
    this.heldBytes = 0;
    for (const m of held) this.route(m);
  }

  plans(filters: string[]): FilterPlan[] {
    return filters.map((f) => this.filters.get(f)!.plan);
  }
}
