// What one socket write per delivery costs a Node process on this machine,
// measured in the same run as the systems it explains (scenarios/mqtt.ts):
// a bare server (write-floor-child.ts) writes `rate` small buffers a second
// round robin over `sockets` loopback connections; its CPU seconds per
// million writes is the floor for any Node server that writes each delivery
// on its own (walcast's doors do when a subscriber gets one message per
// event-loop tick). Readers are plain sockets in this process that discard
// what they read.
import { fork } from 'node:child_process';
import net from 'node:net';
import { cpuSeconds } from './proc.ts';

const CHILD = new URL('./write-floor-child.ts', import.meta.url).pathname;

export async function writeFloor(sockets: number, rate: number, measureMs: number): Promise<number> {
  const child = fork(CHILD, [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, FLOOR_SOCKETS: String(sockets) },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const next = () => new Promise<Record<string, number | boolean>>((r) => child.once('message', r as never));
  const readers: net.Socket[] = [];
  try {
    const { port } = (await next()) as { port: number };
    const ready = next();
    for (let i = 0; i < sockets; i++) {
      const s = net.connect(port as number, '127.0.0.1');
      s.on('data', () => {});
      s.on('error', () => {});
      readers.push(s);
    }
    await ready;
    child.send({ rate });
    await new Promise((r) => setTimeout(r, 500));
    const cpu0 = cpuSeconds(child.pid!);
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, measureMs));
    const writes = (rate * (performance.now() - t0)) / 1000;
    return ((cpuSeconds(child.pid!) - cpu0) / writes) * 1e6;
  } finally {
    for (const s of readers) s.destroy();
    child.kill();
  }
}
