// Baseline: a plain ws server pushing pre-serialised frames at a fixed rate,
// no database. BASELINE_MODE=naive sends each frame with its own write;
// BASELINE_MODE=coalesce writes all frames due to one socket in one tick
// together. The frames are shaped like walcast events and carry created_at
// (their creation time), as the rows do. NOT part of the product.
import { PushServer, announce, eventFrame } from '../lib/push-server.ts';

const rate = Number(process.env.BASELINE_RATE ?? 0);
const channels = Number(process.env.BASELINE_CHANNELS ?? 1);
const prefix = process.env.BASELINE_PREFIX ?? 'bench-';
const server = new PushServer(process.env.BASELINE_MODE === 'coalesce');
const body = 'x'.repeat(64);
let id = 0;

function nowIso(): string {
  const micros = Math.round((performance.timeOrigin + performance.now()) * 1000);
  return `${new Date(Math.floor(micros / 1000)).toISOString().slice(0, 23)}${String(micros % 1000).padStart(3, '0')}Z`;
}

const url = await server.listen();
announce(url);
process.on('message', (msg: { cmd: string; rate?: number }) => {
  if (msg.cmd === 'rate') start(msg.rate ?? rate);
});

let timer: NodeJS.Timeout | undefined;
function start(rowsPerSecond: number): void {
  clearInterval(timer);
  if (rowsPerSecond <= 0) return;
  const t0 = performance.now();
  let sent = 0;
  // Rows due since the start, sent every 10 ms, as the load generator inserts them.
  timer = setInterval(() => {
    const due = Math.floor(((performance.now() - t0) / 1000) * rowsPerSecond) - sent;
    const createdAt = nowIso();
    for (let i = 0; i < due; i++, sent++) {
      const channel = `${prefix}${sent % channels}`;
      id++;
      server.publish(
        channel,
        eventFrame(channel, { id: String(id), channel_id: channel, sender: 'bench', body, created_at: createdAt }),
      );
    }
  }, 10);
}
