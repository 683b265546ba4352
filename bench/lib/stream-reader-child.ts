// The edge's side of the subscription-design measurement
// (scenarios/edge-filters.ts), as its own process so that its CPU is measured
// apart: reads the change stream the way relay/edge/source.ts does (ordered
// consumers, every message decoded by relay/edge/decode.ts from its header
// bytes) and times the messages of the channels it wants from their
// created_at to receipt (fleet-stats.ts). How it subscribes (READER_CONFIG):
//   all              one consumer on every subject, unwanted channels dropped here (what edges do)
//   filter_subjects  one consumer whose filter_subjects are the wanted channels' subjects (nats-server 2.10+)
//   per-channel      one consumer per wanted channel (the only filter nats-server 2.9 has)
// IPC as fleet-stats.ts, plus 'resubscribe': the time to replace the
// consumers with ones that also take one more channel, from the next
// sequence, as an edge must whenever a client wants a channel it does not read.
import { connect } from '@nats-io/transport-node';
import { DeliverPolicy, jetstream, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import { FleetStats } from './fleet-stats.ts';
import { decodeMessage } from '../../relay/edge/decode.ts';
import { headerReader } from '../../relay/edge/header-block.ts';

export type ReaderMode = 'all' | 'filter_subjects' | 'per-channel';
export interface ReaderConfig {
  url: string;
  stream: string;
  mode: ReaderMode;
  /** The subjects of the channels the edge's clients want. */
  subjects: string[];
  /** One more channel's subject, for 'resubscribe'. */
  extra: string;
  /** Consume from this stream sequence. */
  from: number;
}

const config = JSON.parse(process.env.READER_CONFIG ?? '{}') as ReaderConfig;
const stats = new FleetStats();
const nc = await connect({ servers: config.url });
const js = jetstream(nc);
let wanted = new Set(config.subjects);
let lastSeq = config.from - 1;
let running: ConsumerMessages[] = [];

function handle(m: JsMsg): void {
  const e = decodeMessage({ seq: m.seq, subject: m.subject, data: m.data, header: headerReader(m) });
  if (m.seq > lastSeq) lastSeq = m.seq;
  if (e && wanted.has(m.subject)) stats.record(e.bytes);
}

async function subscribe(subjects: string[], from: number): Promise<void> {
  const filters = config.mode === 'all' ? [undefined] : config.mode === 'filter_subjects' ? [subjects] : subjects;
  running = [];
  for (const filter of filters) {
    const consumer = await js.consumers.get(config.stream, {
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: from,
      ...(filter === undefined ? {} : { filter_subjects: filter }),
    });
    running.push(await consumer.consume({ max_messages: 1024, expires: 2000, callback: handle }));
  }
}

await subscribe(config.subjects, config.from);
process.on('message', (msg: { cmd: string }) => {
  if (msg.cmd !== 'resubscribe') return;
  void (async () => {
    const t0 = performance.now();
    await Promise.all(running.map((r) => r.close()));
    wanted = new Set([...wanted, config.extra]);
    await subscribe([...wanted], lastSeq + 1);
    process.send!({ type: 'resubscribed', ms: performance.now() - t0 });
  })();
});
await stats.serve(async () => {}, 0, 1);
