import { startNatsServer } from '/work/wt-15/test/helpers/nats.ts';
import { connect, headers } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, DeliverPolicy } from '@nats-io/jetstream';
import { decodeMessage } from '/work/wt-15/relay/edge/decode.ts';
import { routeStreamEvent } from '/work/wt-15/relay/edge/route.ts';
import { Router } from '/work/wt-15/relay/hub/router.ts';
import { RecoveryBuffer } from '/work/wt-15/relay/hub/recovery.ts';
import { toStreamMessage } from '/work/wt-15/relay/sinks/message.ts';
import { formatPosition } from '/work/wt-15/relay/replication/position.ts';
const nats = await startNatsServer();
const nc = await connect({ servers: nats.url });
const jsm = await jetstreamManager(nc);
await jsm.streams.add({ name: 'walcast', subjects: ['walcast.>'] });
const js = jetstream(nc);
const N = 50000;
const pend = [];
for (let i = 0; i < N; i++) {
  const ev = {
    type: 'event',
    channel: `bench-${i % 100}`,
    table: 'chat_messages',
    op: 'insert',
    position: formatPosition(BigInt(1000 + i), 1, 'ab'),
    commit_time: '2026-11-30T12:00:00.000001Z',
  };
  const frame = JSON.stringify({
    ...ev,
    row: {
      id: i,
      channel_id: ev.channel,
      sender: 'bench',
      body: 'x'.repeat(64),
      created_at: '2026-11-30T12:00:00.000001Z',
    },
  });
  const m = toStreamMessage({
    commitLsn: BigInt(1000 + i),
    index: 1,
    part: 0,
    commitTimeMs: 0,
    xid: 700 + i,
    event: ev,
    frame,
  });
  const h = headers();
  for (const [k, v] of m.headers) h.set(k, v);
  pend.push(js.publish(m.subject, m.payload, { headers: h }));
  if (pend.length > 1000) await Promise.all(pend.splice(0));
}
await Promise.all(pend);
for (const mode of ['bare', 'decode', 'raw', 'bare', 'decode', 'raw']) {
  const hub = {
    router: new Router(),
    recovery: new RecoveryBuffer({ maxAgeMs: 300000, maxPerChannel: 10000, maxBytes: 64 << 20 }),
    counters: { rows: 0, events: 0, deliveries: 0, unrouted: 0, transactions: 0, tooLarge: 0 },
  };
  hub.recovery.reset('', 'ab');
  const c = await js.consumers.get('walcast', { deliver_policy: DeliverPolicy.All });
  let n = 0;
  let done;
  const fin = new Promise((r) => (done = r));
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const msgs = await c.consume({
    max_messages: 1024,
    callback: (m) => {
      if (mode === 'raw') {
        const core = (m as any).msg;
        const hdr = core._msg.hdr;
        const text = core._rdata.latin1Slice(0, hdr);
        const map = new Map();
        let i = text.indexOf('\r\n') + 2;
        while (i < text.length - 2) {
          const j = text.indexOf('\r\n', i);
          const c = text.indexOf(':', i);
          if (c < 0 || c > j) break;
          map.set(text.slice(i, c), text.slice(c + 1, j).trim());
          i = j + 2;
        }
        const e = decodeMessage({ seq: m.seq, subject: m.subject, data: m.data, header: (k) => map.get(k) });
        if (!e) throw new Error('x');
      } else if (mode !== 'bare') {
        const e = decodeMessage({
          seq: m.seq,
          subject: m.subject,
          data: m.data,
          header: (k) => m.headers?.get(k) || undefined,
        });
        if (mode === 'route' && e) routeStreamEvent(hub, e);
      }
      if (++n >= N) done();
    },
  });
  await fin;
  const cpu = process.cpuUsage(cpu0);
  console.log(
    mode,
    ((cpu.user + cpu.system) / N).toFixed(2),
    'µs CPU/msg',
    (((performance.now() - t0) * 1000) / N).toFixed(2),
    'µs wall/msg',
  );
  await msgs.close();
}
await nc.close();
await nats.stop();
