// The limits on what clients send: token buckets per connection and per
// token subject, and a count of connections per client address. All state
// is bounded by the number of open connections: a subject's bucket and an
// address's count are dropped with their last connection.

/** A token bucket: `rate` tokens a second, holding at most `burst`. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now: number = Date.now(),
  ) {
    this.tokens = burst;
    this.last = now;
  }

  /** Take one token; false when the bucket is empty (the message is to be dropped). */
  take(now: number = Date.now()): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/** Reference-counted values by key, dropped when their last holder lets go. */
export class Shared<T> {
  private readonly entries = new Map<string, { value: T; holders: number }>();

  constructor(private readonly make: () => T) {}

  acquire(key: string): T {
    let e = this.entries.get(key);
    if (!e) {
      e = { value: this.make(), holders: 0 };
      this.entries.set(key, e);
    }
    e.holders++;
    return e.value;
  }

  release(key: string): void {
    const e = this.entries.get(key);
    if (e && --e.holders <= 0) this.entries.delete(key);
  }

  holders(key: string): number {
    return this.entries.get(key)?.holders ?? 0;
  }

  get size(): number {
    return this.entries.size;
  }
}
