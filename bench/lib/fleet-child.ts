// A fleet of lean WebSocket clients, run as its own process so the load it
// puts on the CPU is measured apart from the relay's. Each client subscribes
// once and then only counts frames and reads one timestamp from each: the
// row's created_at, found with indexOf on the raw bytes (no JSON.parse).
// Latency = receipt time − created_at, in microseconds, into an HdrHistogram.
//
// Configuration: FLEET_CONFIG (JSON, see FleetConfig). Control over IPC:
// 'reset' clears the histogram and counters, 'report' answers with them.
import { WebSocket } from 'ws';
import { FleetStats } from './fleet-stats.ts';

export interface FleetConfig {
  url: string;
  count: number;
  /** Client i subscribes to `${prefix}${i % channels}`. */
  channels: number;
  prefix: string;
  /** Connections opened at once while ramping up. */
  concurrency: number;
}

export type { FleetReport } from './fleet-stats.ts';

const config = JSON.parse(process.env.FLEET_CONFIG ?? '{}') as FleetConfig;
const stats = new FleetStats();

function connect(i: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(config.url, { perMessageDeflate: false });
    let subscribed = false;
    ws.on('open', () => {
      ws.send(JSON.stringify({ type: 'subscribe', id: 's', channel: `${config.prefix}${i % config.channels}` }));
    });
    ws.on('message', (data: Buffer) => {
      if (subscribed) return stats.record(data);
      if (data.includes('"subscribed"')) {
        subscribed = true;
        stats.open++;
        resolve();
      }
    });
    ws.on('error', (err) => {
      if (!subscribed) reject(err);
    });
    ws.on('close', () => {
      if (subscribed) {
        stats.open--;
        stats.closed++;
      }
    });
  });
}

async function main(): Promise<void> {
  await stats.serve(connect, config.count, config.concurrency);
}

main().catch((err) => {
  process.stderr.write(`fleet: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
