// Replication lag in bytes and in seconds, from periodic samples of the
// server's WAL position. Pure: (time, current WAL, delivered) in, lag out.
//
// Seconds: each observation records (time, WAL position) when the position
// moved; the lag is the age of the oldest sample the delivered position has
// not reached. Reached samples are dropped, so the list holds about one
// sample per observation interval of current lag, and never more than
// `maxSamples` (the oldest go first; the lag then reads as at least that many
// intervals, which is still far above any sensible threshold).
import type { Lsn } from './lsn.ts';

export const DEFAULT_MAX_SAMPLES = 10_000;

export interface Lag {
  bytes: number;
  seconds: number;
}

export class LagTracker {
  private samples: { timeMs: number; lsn: Lsn }[] = [];

  constructor(private readonly maxSamples = DEFAULT_MAX_SAMPLES) {}

  observe(nowMs: number, current: Lsn, delivered: Lsn): Lag {
    const last = this.samples[this.samples.length - 1];
    if (!last || current > last.lsn) this.samples.push({ timeMs: nowMs, lsn: current });
    let reached = 0;
    while (reached < this.samples.length && this.samples[reached]!.lsn <= delivered) reached++;
    if (this.samples.length - reached > this.maxSamples) reached = this.samples.length - this.maxSamples;
    if (reached > 0) this.samples.splice(0, reached);
    const oldest = this.samples[0];
    return {
      bytes: current > delivered ? Number(current - delivered) : 0,
      seconds: oldest ? Math.max(0, (nowMs - oldest.timeMs) / 1000) : 0,
    };
  }

  get sampleCount(): number {
    return this.samples.length;
  }
}
