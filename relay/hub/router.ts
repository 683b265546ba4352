// Channel → subscribers. Pure: a sink is anything that takes a frame, so the
// router is tested without sockets. A frame is serialised once by the caller
// and the same string goes to every subscriber of the channel.

export interface Sink {
  send(frame: string): void;
}

/** A subscription's table filter; null means every table. */
export type TableFilter = ReadonlySet<string> | null;

export class Router {
  private readonly channels = new Map<string, Map<Sink, TableFilter>>();
  private subscriptions = 0;

  /** Returns false if the sink already holds this channel. */
  subscribe(channel: string, sink: Sink, tables: TableFilter): boolean {
    let subs = this.channels.get(channel);
    if (!subs) {
      subs = new Map();
      this.channels.set(channel, subs);
    }
    if (subs.has(sink)) return false;
    subs.set(sink, tables);
    this.subscriptions++;
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

  /** Hand `frame` to every subscriber of `channel` whose filter admits `table`; returns how many. */
  dispatch(channel: string, table: string, frame: string): number {
    const subs = this.channels.get(channel);
    if (!subs) return 0;
    let n = 0;
    for (const [sink, tables] of subs) {
      if (tables !== null && !tables.has(table)) continue;
      sink.send(frame);
      n++;
    }
    return n;
  }

  hasSubscribers(channel: string): boolean {
    return this.channels.has(channel);
  }

  get channelCount(): number {
    return this.channels.size;
  }

  get subscriptionCount(): number {
    return this.subscriptions;
  }
}
