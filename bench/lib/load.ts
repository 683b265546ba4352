// The load generator: inserts chat_messages rows at a fixed rate, every
// 10 ms the rows due since the start as one multi-row INSERT, channels in
// round robin. created_at (now(), the transaction's start) is the time the
// clients measure latency from.
import pg from 'pg';

export interface Load {
  stop(): Promise<{ rows: number; cpuSeconds: number }>;
}

export async function startLoad(url: string, rowsPerSecond: number, channels: number, prefix: string): Promise<Load> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const body = 'x'.repeat(64);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let sent = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const due = Math.floor(((performance.now() - t0) / 1000) * rowsPerSecond) - sent;
      if (due > 0) {
        const chans = Array.from({ length: due }, (_, i) => `${prefix}${(sent + i) % channels}`);
        await client.query(
          `INSERT INTO chat_messages (channel_id, sender, body) SELECT c, 'bench', $2 FROM unnest($1::text[]) AS c`,
          [chans, body],
        );
        sent += due;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      await client.end();
      const cpu = process.cpuUsage(cpu0);
      return { rows: sent, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
    },
  };
}
