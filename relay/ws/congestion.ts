// Flow control between the sockets and the replication stream. A burst (a
// transaction of a million rows) decodes far faster than any client reads,
// so without it every subscriber of the channel would pass its send-queue
// bound and be closed as a slow consumer. Instead:
//
//   - a connection whose queue passes half its bound is "congested", and
//     while any connection is congested the relay stops reading the
//     replication stream (PostgreSQL holds the rest; nothing is lost);
//   - a connection that stays congested longer than the grace period is a
//     slow consumer: it is closed (4008) and reading resumes, so one stalled
//     client delays the others by at most the grace period;
//   - the hard bound still applies: a queue over it is closed at once.
//
// Pure bookkeeping and one timer; the owner says what "pause" means.

export interface QueueSource {
  /** Bytes written but not yet taken by the kernel, plus this tick's pending frames. */
  queuedBytes(): number;
}

export interface CongestionOptions<C> {
  /** A queue above this many bytes is congested (half the send-queue bound). */
  softBytes: number;
  /** How long a connection may stay congested before it is a slow consumer, ms. */
  graceMs: number;
  /** Called with true when the first connection becomes congested, false when none is. */
  onChange: (congested: boolean) => void;
  /** A connection was congested for longer than the grace period. */
  onStuck: (conn: C) => void;
  /** How often congested queues are looked at, ms. */
  checkMs?: number;
}

export class Congestion<C extends QueueSource> {
  private readonly since = new Map<C, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: CongestionOptions<C>) {}

  get congested(): boolean {
    return this.since.size > 0;
  }

  /** Called after queuing for `conn`, with its queue's size. */
  note(conn: C, queued: number): void {
    if (queued <= this.opts.softBytes || this.since.has(conn)) return;
    this.since.set(conn, Date.now());
    if (this.since.size === 1) {
      this.timer = setInterval(this.check, this.opts.checkMs ?? 20);
      this.timer.unref();
      this.opts.onChange(true);
    }
  }

  /** The connection is gone (closed, dropped): it no longer holds anything back. */
  forget(conn: C): void {
    if (!this.since.delete(conn) || this.since.size > 0) return;
    clearInterval(this.timer);
    this.timer = undefined;
    this.opts.onChange(false);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.since.clear();
  }

  private readonly check = (): void => {
    const now = Date.now();
    for (const [conn, since] of [...this.since]) {
      if (conn.queuedBytes() <= this.opts.softBytes) this.forget(conn);
      else if (now - since > this.opts.graceMs) {
        this.forget(conn);
        this.opts.onStuck(conn);
      }
    }
  };
}
