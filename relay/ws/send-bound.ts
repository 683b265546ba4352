// The hard bound on one connection's send queue, with room for one large
// event. WALCAST_SEND_QUEUE_BYTES limits what piles up for a client that
// does not read; it must not refuse a single event bigger than itself (a
// 2 MB row, a media frame), or that event and every one after it on the
// channel could never be delivered. So:
//
//   - a frame is admitted while the queue, with it, stays within the bound;
//   - a frame larger than the bound is admitted when the queue before it is
//     within the bound (a reading client's queue is): the connection then
//     has "room for one large event", up to the bound plus `extra`
//     (WALCAST_MAX_EVENT_BYTES), until it has drained back under the bound.
//     That room also takes what follows the large frame in the same tick,
//     and a resume's replay of more than one large event;
//   - anything else is an overflow (the caller closes the client with 4008).
//
// The soft rule (congestion.ts) still applies: a queue over half the bound
// pauses the replication stream, and a client that does not drain it within
// WALCAST_SLOW_CONSUMER_MS is closed as slow. So a large frame costs a
// reading client nothing, and a paused client is closed as before.
//
// Memory per connection: at most the bound plus WALCAST_MAX_EVENT_BYTES
// (larger events are replaced by a notice in the dispatcher), and a large
// event's bytes are shared by every socket (coalesce.ts writes large
// payloads without copying them). Pure: no I/O.

export class SendBound {
  /** A frame larger than the bound was admitted and the queue has not drained under the bound since. */
  private large = false;

  constructor(
    private readonly bound: number,
    /** How far past the bound a queue holding a large frame may go (WALCAST_MAX_EVENT_BYTES). */
    private readonly extra: number,
  ) {}

  /** May a frame of `size` bytes join a queue of `queued` bytes? */
  admit(queued: number, size: number): boolean {
    if (queued <= this.bound) this.large = false; // whatever was large has drained
    if (queued + size <= this.bound + (this.large ? this.extra : 0)) return true;
    if (size > this.bound && queued <= this.bound && queued + size <= this.bound + this.extra) {
      this.large = true;
      return true;
    }
    return false;
  }
}
