// The hard bound on one connection's send queue, with room for one large
// event. WALCAST_SEND_QUEUE_BYTES limits what piles up for a client that
// does not read; it must not refuse a single event bigger than itself (a
// 2 MB row, a media frame), or that event and every one after it on the
// channel could never be delivered. So:
//
//   - a frame is admitted while the queue, with it, stays within the bound;
//   - a frame larger than the bound is admitted when no other large frame is
//     queued: it becomes the connection's "allowance", and the bound is
//     raised by its size until the queue has drained back under the bound;
//   - anything else is an overflow (the caller closes the client with 4008).
//
// The soft rule (congestion.ts) still applies: a queue over half the bound
// pauses the replication stream, and a client that does not drain it within
// WALCAST_SLOW_CONSUMER_MS is closed as slow. So a large frame costs a
// reading client nothing, and a paused client is closed as before.
//
// Memory per connection: at most the bound plus one event of at most
// WALCAST_MAX_EVENT_BYTES (larger events are replaced by a notice in the
// dispatcher), and that event's bytes are shared by every socket (coalesce.ts
// writes large payloads without copying them). Pure: no I/O.

export class SendBound {
  /** Size of the large frame admitted beyond the bound, 0 when none is queued. */
  private allowance = 0;

  constructor(private readonly bound: number) {}

  /** May a frame of `size` bytes join a queue of `queued` bytes? */
  admit(queued: number, size: number): boolean {
    if (this.allowance > 0 && queued <= this.bound) this.allowance = 0; // the large frame has drained
    if (queued + size <= this.bound + this.allowance) return true;
    if (size > this.bound && this.allowance === 0 && queued <= this.bound) {
      this.allowance = size;
      return true;
    }
    return false;
  }
}
