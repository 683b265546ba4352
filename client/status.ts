// Status changes as an async iterator: `for await (const s of rt.statuses())`.
// Unread changes wait in a queue of at most MAX_QUEUED (the oldest are
// dropped: a reader wants the recent past, not an unbounded backlog).
import type { StatusEvent } from './events.ts';

export const MAX_QUEUED = 64;

export class StatusQueue implements AsyncIterableIterator<StatusEvent> {
  private readonly queued: StatusEvent[] = [];
  private waiting: ((r: IteratorResult<StatusEvent>) => void) | undefined;
  private ended = false;

  constructor(private readonly onReturn: () => void) {}

  push(event: StatusEvent): void {
    if (this.ended) return;
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = undefined;
      resolve({ value: event, done: false });
      return;
    }
    this.queued.push(event);
    if (this.queued.length > MAX_QUEUED) this.queued.shift();
  }

  /** No more changes: the reader gets what is queued, then done. */
  end(): void {
    this.ended = true;
    if (this.waiting && this.queued.length === 0) {
      const resolve = this.waiting;
      this.waiting = undefined;
      resolve({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<StatusEvent>> {
    const value = this.queued.shift();
    if (value) return Promise.resolve({ value, done: false });
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => (this.waiting = resolve));
  }

  return(): Promise<IteratorResult<StatusEvent>> {
    this.queued.length = 0;
    this.end();
    this.onReturn();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
