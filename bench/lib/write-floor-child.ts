// The write floor (bench/lib/write-floor.ts): a bare Node TCP server that
// writes one small ready-made buffer per socket write, round robin over its
// connections, and nothing else: no database, no routing, no encoding. Its
// CPU per write is what any Node server pays for a delivery that is a
// socket write of its own. IPC: sends {port}, then {ready} once `count`
// clients connected; on {rate} writes that many buffers a second (every
// 10 ms, as the bench's load generator inserts rows); on {stop} exits.
import net from 'node:net';

const count = Number(process.env.FLOOR_SOCKETS ?? '100');
const bytes = Number(process.env.FLOOR_BYTES ?? '250');
const sockets: net.Socket[] = [];
const packet = Buffer.alloc(bytes, 0x78);
let timer: NodeJS.Timeout | undefined;

const server = net.createServer((s) => {
  s.setNoDelay(true); // as relay/mqtt/listener.ts
  s.on('error', () => {});
  sockets.push(s);
  if (sockets.length === count) process.send!({ ready: true });
});
server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as net.AddressInfo).port }));

process.on('message', (m: { rate?: number; stop?: boolean }) => {
  if (m.stop) process.exit(0);
  if (m.rate === undefined) return;
  const t0 = performance.now();
  let sent = 0;
  timer = setInterval(() => {
    const due = Math.floor(((performance.now() - t0) / 1000) * m.rate!) - sent;
    for (let i = 0; i < due; i++) sockets[(sent + i) % count]!.write(packet);
    sent += due;
  }, 10);
});
process.on('disconnect', () => {
  clearInterval(timer);
  process.exit(0);
});
