// What a fleet process (fleet-child.ts, mqtt-fleet-child.ts) counts and how
// it answers its parent: frames received, connections open and closed, and
// latency from the row's created_at (read with indexOf on the raw bytes, no
// JSON.parse) to receipt, in microseconds, in an HdrHistogram. IPC: 'reset'
// clears the histogram and counters, 'report' and 'count' answer with them.
import { build } from 'hdr-histogram-js';

export interface FleetReport {
  received: number;
  closed: number;
  open: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
  samples: number;
  cpuSeconds: number;
}

const MARKER = Buffer.from('"created_at":"');

/** "2026-11-23T11:37:06.1203Z" or "2026-11-23 11:37:06.1203+00:00" (UTC) → µs since 1970. */
function parseUtcMicros(buf: Buffer, at: number): number {
  const base = Date.parse(`${buf.toString('latin1', at, at + 10)}T${buf.toString('latin1', at + 11, at + 19)}Z`) * 1000;
  let frac = 0;
  let digits = 0;
  let i = at + 19;
  if (buf[i] === 0x2e) {
    for (i++; digits < 6 && buf[i]! >= 0x30 && buf[i]! <= 0x39; i++, digits++) frac = frac * 10 + (buf[i]! - 0x30);
  }
  while (digits++ < 6) frac *= 10;
  return base + frac;
}

export class FleetStats {
  received = 0;
  closed = 0;
  open = 0;
  private readonly histogram = build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 600_000_000,
    numberOfSignificantValueDigits: 3,
  });

  /** One frame or message: counted, and its created_at (if any) timed. */
  record(data: Buffer): void {
    this.received++;
    const at = data.indexOf(MARKER);
    if (at < 0) return;
    const sent = parseUtcMicros(data, at + MARKER.length);
    const now = Math.round((performance.timeOrigin + performance.now()) * 1000);
    this.histogram.recordValue(Math.max(1, now - sent));
  }

  /** Open `count` connections, `concurrency` at a time, then answer the parent over IPC. */
  async serve(connect: (i: number) => Promise<void>, count: number, concurrency: number): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < count) await connect(next++);
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
    process.send!({ type: 'ready', open: this.open });
    process.on('message', (msg: { cmd: string }) => {
      if (msg.cmd === 'reset') {
        this.histogram.reset();
        this.received = 0;
        process.send!({ type: 'reset' });
      } else if (msg.cmd === 'report') {
        process.send!({ type: 'report', report: this.report() });
      } else if (msg.cmd === 'count') {
        process.send!({ type: 'count', received: this.received });
      }
    });
    process.on('disconnect', () => process.exit(0));
  }

  private report(): FleetReport {
    const cpu = process.cpuUsage();
    const h = this.histogram;
    return {
      received: this.received,
      closed: this.closed,
      open: this.open,
      p50: h.getValueAtPercentile(50),
      p99: h.getValueAtPercentile(99),
      p999: h.getValueAtPercentile(99.9),
      max: h.maxValue,
      samples: h.totalCount,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
    };
  }
}
