// A fleet of supabase-js-shaped subscribers for the supabase scenario, in
// its own process like fleet-child.ts: each opens realtime-js's socket
// (/realtime/v1/websocket?apikey=…&vsn=…) and joins `realtime:<channel>`
// with one postgres_changes binding (INSERT on chat_messages, filter
// channel_id=eq.<channel>), as `supabase.channel(…).on('postgres_changes',
// …).subscribe()` does, in raw Phoenix frames (the client library's own
// cost is the client's, not the relay's). Frames are counted and timed from
// the row's created_at like the other fleets (fleet-stats.ts).
import { WebSocket } from 'ws';
import { FleetStats } from './fleet-stats.ts';

export interface SupabaseFleetConfig {
  /** http://host:port of the relay. */
  url: string;
  count: number;
  channels: number;
  prefix: string;
  concurrency: number;
  vsn: '1.0.0' | '2.0.0';
}

const config = JSON.parse(process.env.FLEET_CONFIG ?? '{}') as SupabaseFleetConfig;
const stats = new FleetStats();

function joinFrame(channel: string): string {
  const topic = `realtime:${channel}`;
  const payload = {
    config: {
      broadcast: { ack: false, self: false },
      presence: { key: '', enabled: false },
      postgres_changes: [
        { event: 'INSERT', schema: 'public', table: 'chat_messages', filter: `channel_id=eq.${channel}` },
      ],
      private: false,
    },
  };
  return config.vsn === '2.0.0'
    ? JSON.stringify(['1', '1', topic, 'phx_join', payload])
    : JSON.stringify({ topic, event: 'phx_join', payload, ref: '1', join_ref: '1' });
}

function connect(i: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const base = config.url.replace(/^http/, 'ws');
    const ws = new WebSocket(`${base}/realtime/v1/websocket?apikey=bench&vsn=${config.vsn}`, {
      perMessageDeflate: false,
    });
    let joined = false;
    ws.on('open', () => ws.send(joinFrame(`${config.prefix}${i % config.channels}`)));
    ws.on('message', (data: Buffer) => {
      if (joined) return stats.record(data);
      if (data.includes('"phx_reply"') && data.includes('"ok"')) {
        joined = true;
        stats.open++;
        resolve();
      }
    });
    ws.on('error', (err) => {
      if (!joined) reject(err);
    });
    ws.on('close', () => {
      if (joined) {
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
  process.stderr.write(`supabase fleet: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
