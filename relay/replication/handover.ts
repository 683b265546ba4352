// Live rows first after a restart: while the permanent slot re-reads the
// recovery window (history: seconds to minutes of WAL after a busy period),
// a temporary slot created at start streams what commits from now on, and
// its events go to the clients connected now. When the permanent stream has
// caught up with what the temporary one delivered, the temporary one stops
// and the permanent stream delivers live again. Pure: which stream's event
// goes to whom, and when to hand over.
//
//   serving ──permanent passes the frontier──▶ done
//      │ temporary stream failed                ▲
//      ▼                                        │
//   stalled ──permanent passes the frontier─────┘
//
// Both slots decode the same WAL, so the same event has the same position
// (position.ts: commit LSN and index), and positions dedupe across the two.
// The frontier is the last position the temporary stream routed (at first,
// the stream point of the temporary slot's start). Subscriptions come in two
// kinds (the router keeps which, hub/router.ts `via`):
//   - live: started at or after the frontier (a new subscription starts
//     there): events from the temporary stream, then the permanent stream's
//     events after the frontier;
//   - window: resumed from a position before the frontier (`since`): the
//     permanent stream only, in order, as before this existed; they get live
//     rows once it catches up.
// Only the permanent stream writes the recovery window and the sinks, and
// confirms; the temporary one confirms nothing on the permanent slot.
import { maxPosition, streamPoint } from './position.ts';
import type { Lsn } from './lsn.ts';

export type HandoverState = 'serving' | 'stalled' | 'done';

/** Who gets an event: `early` the live subscriptions only, `window` the window ones only, undefined everyone. */
export type Via = 'early' | 'window' | undefined;

export class Handover {
  state: HandoverState = 'serving';
  private last: string;

  /**
   * `startLsn`: where the temporary slot starts (its consistent point);
   * `onDone` runs once, synchronously, when the permanent stream takes over
   * (stop the temporary stream there).
   */
  constructor(
    startLsn: Lsn,
    private readonly epoch: string,
    private readonly onDone: (frontier: string) => void,
  ) {
    this.last = streamPoint(startLsn, epoch);
  }

  /** The last position live subscriptions have had (from the temporary stream); undefined once done. */
  get frontier(): string | undefined {
    return this.state === 'done' ? undefined : this.last;
  }

  /** Do live rows flow from the temporary stream? */
  get serving(): boolean {
    return this.state === 'serving';
  }

  /** The temporary stream read the event at `position`: route it to live subscriptions, or drop it ('skip'). */
  temporary(position: string): 'early' | 'skip' {
    if (this.state !== 'serving') return 'skip';
    this.last = maxPosition(this.last, position);
    return 'early';
  }

  /** The permanent stream read the event at `position`: who gets it (handing over first when it is past the frontier). */
  permanent(position: string): Via {
    if (this.state === 'done') return undefined;
    if (position <= this.last) return 'window';
    this.finish();
    return undefined;
  }

  /**
   * Every event of the permanent stream up to `lsn` is delivered (a commit,
   * or a keepalive with nothing pending): past the frontier, the temporary
   * stream has nothing the permanent one has not, so hand over (an idle
   * database gives no event to do it with).
   */
  permanentReached(lsn: Lsn): void {
    if (this.state !== 'done' && streamPoint(lsn, this.epoch) > this.last) this.finish();
  }

  /** The temporary stream failed: live rows wait for the permanent stream again (as without a hand-over). */
  stall(): void {
    if (this.state === 'serving') this.state = 'stalled';
  }

  /** The permanent slot was recreated (a new epoch): nothing to hand over any more. */
  abandon(): void {
    if (this.state !== 'done') this.finish();
  }

  private finish(): void {
    this.state = 'done';
    this.onDone(this.last);
  }
}
