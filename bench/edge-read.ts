// `npx tsx bench/edge-read.ts [messages] [rounds]`: an edge's own CPU per
// stream message, without sockets. Stores `messages` events as the sink
// writes them (400 channels), then, per round, reads them all through the
// edge's StreamSource and hub (recovery window on, 5 subscribers per channel
// whose send does nothing: the routing an edge does for the two-edge,
// 4,000-client cell of scenario "edges") in this process, and prints its CPU
// µs per message. What it leaves out is the sockets, the same code and cost
// as the slot relay's; what it measures is what every edge pays per message,
// read in bulk (live, messages come a few at a time and cost more each).
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { sinkMessage } from './scenarios/edge-filters.ts';
import { formatPosition } from '../relay/replication/position.ts';
import { startNatsServer } from '../test/helpers/nats.ts';
import { StreamSource } from '../relay/edge/source.ts';
import { routeStreamEvent } from '../relay/edge/route.ts';
import { Router } from '../relay/hub/router.ts';
import { RecoveryBuffer } from '../relay/hub/recovery.ts';
import type { DispatcherCounters } from '../relay/hub/dispatcher.ts';
import { silentLogger } from '../relay/log.ts';

const CHANNELS = 400;
/** sinkMessage's epoch. */
const EPOCH = 'ab12';
const messages = Number(process.argv[2] ?? 50_000);
const rounds = Number(process.argv[3] ?? 5);

const nats = await startNatsServer();
const nc = await connect({ servers: nats.url });
try {
  await (await jetstreamManager(nc)).streams.add({ name: 'walcast', subjects: ['walcast.>'] });
  await store(messages);
  await new Promise((r) => setTimeout(r, 1500)); // a quiet gap: a profile tells storing from reading
  for (let r = 0; r < rounds; r++) {
    console.log(`round ${r + 1}: ${(await readAll()).toFixed(2)} µs per message`);
  }
} finally {
  await nc.close();
  await nats.stop();
}

async function store(n: number): Promise<void> {
  const js = jetstream(nc);
  const now = new Date().toISOString();
  for (let at = 0; at < n; at += 1000) {
    const acks: Promise<unknown>[] = [];
    for (let i = at; i < Math.min(n, at + 1000); i++) {
      const { subject, payload, headers } = sinkMessage(i, `c${i % CHANNELS}`, now, Math.floor(i / 10));
      acks.push(js.publish(subject, payload, { headers }));
    }
    await Promise.all(acks);
  }
}

/** Read every stored message through a source and hub; CPU µs per message. */
async function readAll(): Promise<number> {
  const router = new Router();
  const sink = { send: () => {} };
  for (let c = 0; c < CHANNELS; c++)
    for (let s = 0; s < 5; s++) router.subscribe(`c${c}`, { send: sink.send }, { tables: null });
  const recovery = new RecoveryBuffer({ maxAgeMs: 300_000, maxPerChannel: 10_000, maxBytes: 64 * 1024 * 1024 });
  const counters: DispatcherCounters = { rows: 0, events: 0, deliveries: 0, unrouted: 0, transactions: 0, tooLarge: 0 };
  const hub = { router, recovery, counters };
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const source = new StreamSource({
    url: nats.url,
    stream: 'walcast',
    maxAgeSeconds: 3600,
    logger: silentLogger,
    epoch: async () => EPOCH,
    onStart: (position, epoch) => recovery.reset(position, epoch),
    onEvent: (e) => {
      routeStreamEvent(hub, e);
      if (counters.rows === messages) done();
    },
  });
  // Read from the first message (an edge starts after the tail: here the stored messages are the backlog).
  const s = source as unknown as {
    conn: unknown;
    epoch: string;
    position: string;
    consume(from: number): Promise<void>;
  };
  s.conn = nc;
  (s as unknown as { jsmgr: unknown }).jsmgr = await jetstreamManager(nc);
  s.epoch = EPOCH;
  s.position = formatPosition(0n, 0, EPOCH);
  recovery.reset(s.position, EPOCH);
  const cpu0 = process.cpuUsage();
  await s.consume(1);
  await finished;
  const cpu = process.cpuUsage(cpu0);
  (source as unknown as { conn: unknown }).conn = undefined;
  await source.stop();
  return (cpu.user + cpu.system) / messages;
}
