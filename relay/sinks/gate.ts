// The gate on the replication stream's delivered position when several sinks
// receive the same commits: a position passes once every member released it
// (the slowest member decides). Members come and go (a webhook enabled or
// disabled): one that joins has nothing pending, one that leaves no longer
// holds the slot. Pure.
import type { Lsn } from '../replication/lsn.ts';

interface Point {
  lsn: Lsn;
  timeMs: number;
}

export class CommitGate {
  private readonly released = new Map<string, Point>();
  /** The last commit the dispatcher handed over. */
  private latest: Point = { lsn: 0n, timeMs: 0 };
  private forwarded: Lsn = 0n;

  constructor(private readonly forward: (lsn: Lsn, timeMs: number) => void) {}

  get size(): number {
    return this.released.size;
  }

  /** The dispatcher handed over every event of the transaction ending at `lsn` (call before the members' commit). */
  committed(lsn: Lsn, timeMs: number): void {
    if (lsn > this.latest.lsn) this.latest = { lsn, timeMs };
    if (this.released.size === 0) this.pass(this.latest);
  }

  /** `name` has everything up to `lsn`. */
  release(name: string, lsn: Lsn, timeMs: number): void {
    const p = this.released.get(name);
    if (!p || lsn <= p.lsn) return;
    this.released.set(name, { lsn, timeMs });
    this.recompute();
  }

  join(name: string): void {
    if (!this.released.has(name)) this.released.set(name, this.latest);
  }

  leave(name: string): void {
    if (this.released.delete(name)) this.recompute();
  }

  private recompute(): void {
    let min: Point | undefined;
    for (const p of this.released.values()) if (!min || p.lsn < min.lsn) min = p;
    this.pass(min ?? this.latest);
  }

  private pass(p: Point): void {
    if (p.lsn <= this.forwarded) return;
    this.forwarded = p.lsn;
    this.forward(p.lsn, p.timeMs);
  }
}
