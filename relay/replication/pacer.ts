// Pacing the permanent slot's re-read while the temporary slot serves live
// rows (live-first.ts). Flat out, the re-read of a busy window takes the
// relay's thread and a core of PostgreSQL's: a socket with data waiting is
// read in large bursts per event-loop turn, and the temporary slot's rows
// queue behind them (bench/README.md §5: live rows delivered during the
// re-read waited 101 ms at the median and 345 ms at p99 flat out, 40 ms and
// 195 ms paced, in one run).
//
// So while pacing is on, the re-read's dispatch work is held to `share` of
// the wall time: once it has used more, the permanent stream stops reading
// (its socket is paused; PostgreSQL's WAL sender waits on the full socket
// too) until the ratio is back at `share`. The rest of the time goes to live
// rows, the clients and the other slot's WAL sender.
//
// Bounded: each pause lasts until the work done is `share` of the time, so
// the pauses add at most (1 − share) / share times the re-read's own
// dispatch time (as much again at the default), whatever the live load, and
// the hand-over follows. The work is measured in wall time around each
// message (cheap): time the process is preempted while dispatching counts
// as work, so on a loaded machine the re-read is paced harder than its share. Pure: the clock and the timer are passed in.

/** Pacing looks at the re-read's work over windows of about this long, ms. */
export const REBUILD_SLICE_MS = 20;
/** The share of wall time the paced re-read may spend dispatching. */
export const REBUILD_SHARE = 0.5;

export interface PacerOptions {
  /** Stop (true) or resume (false) reading the paced stream. */
  hold: (on: boolean) => void;
  sliceMs?: number;
  share?: number;
  now?: () => number;
  /** Run `fn` after `ms` (setTimeout); returns a canceller. */
  after?: (ms: number, fn: () => void) => () => void;
}

export class RebuildPacer {
  private on = false;
  private sliceStart = 0;
  private used = 0;
  /** `used` when the stream was held: what the chunk in hand adds after it counts in the next window. */
  private usedAtHold = 0;
  private cancel: (() => void) | undefined;
  private readonly sliceMs: number;
  private readonly share: number;
  private readonly now: () => number;
  private readonly after: (ms: number, fn: () => void) => () => void;

  constructor(private readonly opts: PacerOptions) {
    this.sliceMs = opts.sliceMs ?? REBUILD_SLICE_MS;
    this.share = opts.share ?? REBUILD_SHARE;
    this.now = opts.now ?? (() => performance.now());
    this.after =
      opts.after ??
      ((ms, fn) => {
        const t = setTimeout(fn, ms);
        return () => clearTimeout(t);
      });
  }

  /** Is the paced stream's work being measured (spent() matters)? */
  get active(): boolean {
    return this.on;
  }

  /** Is the paced stream held back right now? */
  get holding(): boolean {
    return this.cancel !== undefined;
  }

  /** Start pacing. */
  start(): void {
    if (this.on) return;
    this.on = true;
    this.sliceStart = this.now();
    this.used = 0;
  }

  /** Stop pacing: the stream reads flat out again, at once. */
  stop(): void {
    if (!this.on) return;
    this.on = false;
    this.release();
  }

  /** The paced stream just spent `ms` dispatching: hold it back once it is over its share. */
  spent(ms: number): void {
    if (!this.on) return;
    this.used += ms;
    const now = this.now();
    const elapsed = now - this.sliceStart;
    // Long enough under its share: start a new window (what was spent before it no longer counts).
    if (elapsed >= this.sliceMs && this.used <= this.share * elapsed) {
      this.sliceStart = now;
      this.used = 0;
      return;
    }
    if (this.cancel || elapsed <= 0 || this.used <= this.share * Math.max(elapsed, this.sliceMs)) return;
    // Over its share: wait until the window's ratio is back at it.
    const wait = this.used / this.share - elapsed;
    this.usedAtHold = this.used;
    this.opts.hold(true);
    this.cancel = this.after(Math.max(1, Math.ceil(wait)), () => {
      this.cancel = undefined;
      this.sliceStart = this.now();
      this.used -= this.usedAtHold;
      this.opts.hold(false);
    });
  }

  private release(): void {
    const cancel = this.cancel;
    if (!cancel) return;
    this.cancel = undefined;
    cancel();
    this.opts.hold(false);
  }
}
