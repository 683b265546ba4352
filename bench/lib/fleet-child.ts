// A fleet of lean WebSocket clients, run as its own process so the load it
// puts on the CPU is measured apart from the relay's. Each client subscribes
// once and then only counts frames and reads one timestamp from each: the
// row's created_at, found with indexOf on the raw bytes (no JSON.parse).
// Latency = receipt time − created_at, in microseconds, into an HdrHistogram.
//
// Configuration: FLEET_CONFIG (JSON, see FleetConfig). Control over IPC:
// 'reset' clears the histogram and counters, 'report' answers with them.
import { build } from 'hdr-histogram-js';
import { WebSocket } from 'ws';

export interface FleetConfig {
  url: string;
  count: number;
  /** Client i subscribes to `${prefix}${i % channels}`. */
  channels: number;
  prefix: string;
  /** Connections opened at once while ramping up. */
  concurrency: number;
}

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

const config = JSON.parse(process.env.FLEET_CONFIG ?? '{}') as FleetConfig;
const MARKER = Buffer.from('"created_at":"');
const histogram = build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: 3 });
let received = 0;
let closed = 0;
let open = 0;

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

function onFrame(data: Buffer): void {
  received++;
  const at = data.indexOf(MARKER);
  if (at < 0) return;
  const sent = parseUtcMicros(data, at + MARKER.length);
  const now = Math.round((performance.timeOrigin + performance.now()) * 1000);
  histogram.recordValue(Math.max(1, now - sent));
}

function connect(i: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(config.url, { perMessageDeflate: false });
    let subscribed = false;
    ws.on('open', () => {
      ws.send(JSON.stringify({ type: 'subscribe', id: 's', channel: `${config.prefix}${i % config.channels}` }));
    });
    ws.on('message', (data: Buffer) => {
      if (subscribed) return onFrame(data);
      if (data.includes('"subscribed"')) {
        subscribed = true;
        open++;
        resolve();
      }
    });
    ws.on('error', (err) => {
      if (!subscribed) reject(err);
    });
    ws.on('close', () => {
      if (subscribed) {
        open--;
        closed++;
      }
    });
  });
}

async function main(): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < config.count) await connect(next++);
  };
  await Promise.all(Array.from({ length: Math.min(config.concurrency, config.count) }, worker));
  process.send!({ type: 'ready', open });
  process.on('message', (msg: { cmd: string }) => {
    if (msg.cmd === 'reset') {
      histogram.reset();
      received = 0;
      process.send!({ type: 'reset' });
    } else if (msg.cmd === 'report') {
      const cpu = process.cpuUsage();
      const report: FleetReport = {
        received,
        closed,
        open,
        p50: histogram.getValueAtPercentile(50),
        p99: histogram.getValueAtPercentile(99),
        p999: histogram.getValueAtPercentile(99.9),
        max: histogram.maxValue,
        samples: histogram.totalCount,
        cpuSeconds: (cpu.user + cpu.system) / 1e6,
      };
      process.send!({ type: 'report', report });
    } else if (msg.cmd === 'count') {
      process.send!({ type: 'count', received });
    }
  });
  process.on('disconnect', () => process.exit(0));
}

main().catch((err) => {
  process.stderr.write(`fleet: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
