// Part of scenario "edges": how an edge should subscribe to the change
// stream (issue 15). A publisher writes events as the slot relay's sink does
// (the same headers, a frame with created_at) at a steady rate over many
// channels; an edge-side reader process (lib/stream-reader-child.ts) reads
// them one of three ways while its clients want 1 %, 10 % or 100 % of the
// channels. Per cell: the reader's CPU per wanted message (an edge's cost per
// message it delivers, before fan-out), nats-server's CPU (what storing the
// messages costs with no reader is measured first), p50/p99 from the
// event's created_at to receipt, and the time to take one more channel
// (replace the consumers from the next sequence, as an edge would have to
// whenever a client subscribes to a channel it does not read).
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { StreamHeaders, renderHeaderLines } from '../../relay/sinks/stream-headers.ts';
import { subjectFor } from '../../relay/sinks/subject.ts';
import { formatPosition } from '../../relay/replication/position.ts';
import { startNatsServer, type NatsServer } from '../../test/helpers/nats.ts';
import type { FleetReport } from '../lib/fleet-stats.ts';
import type { ReaderConfig, ReaderMode } from '../lib/stream-reader-child.ts';
import { cpuSeconds } from '../lib/proc.ts';
import { markdownTable, progress, type Row } from '../lib/report.ts';

export interface FilterPlan {
  channels: number;
  rate: number;
  /** Shares of the channels the edge's clients want. */
  shares: number[];
  warmupMs: number;
  measureMs: number;
}
export const FILTERS_FULL: FilterPlan = {
  channels: 1_000,
  rate: 2_000,
  shares: [0.01, 0.1, 1],
  warmupMs: 1_000,
  measureMs: 5_000,
};
export const FILTERS_QUICK: FilterPlan = {
  ...FILTERS_FULL,
  channels: 200,
  rate: 1_000,
  warmupMs: 500,
  measureMs: 2_000,
};

const CHILD = new URL('../lib/stream-reader-child.ts', import.meta.url).pathname;
const TABLE = 'public.chat_messages';
/** Per-channel consumers past this many channels are not measured (each is a pull loop on the server). */
const PER_CHANNEL_MAX = 100;

/** nats-server's version (NATS_SERVER_PATH, or Debian's), e.g. [2, 9, 10]. */
function serverVersion(): number[] {
  const out = execFileSync(process.env.NATS_SERVER_PATH ?? 'nats-server', ['--version']).toString();
  return (/v(\d+)\.(\d+)\.(\d+)/.exec(out) ?? []).slice(1).map(Number);
}

export async function measureFilters(plan: FilterPlan): Promise<string> {
  const version = serverVersion();
  const multi = version[0]! > 2 || (version[0] === 2 && version[1]! >= 10);
  const rows: Row[] = [];
  const nats = await startNatsServer();
  const nc = await connect({ servers: nats.url });
  try {
    await (await jetstreamManager(nc)).streams.add({ name: 'walcast', subjects: ['walcast.>'] });
    const publisher = startPublisher(nc, plan);
    try {
      await sleep(plan.warmupMs);
      const storing = await serverCpu(nats, plan.measureMs);
      rows.push({ mode: 'no reader (storing only)', 'channels wanted': 0, 'nats-server CPU %': storing });
      for (const share of plan.shares) {
        const wanted = Math.max(1, Math.round(plan.channels * share));
        const modes: ReaderMode[] = ['all'];
        if (multi) modes.push('filter_subjects');
        if (wanted <= PER_CHANNEL_MAX) modes.push('per-channel');
        for (const mode of modes) {
          progress(`edges: subscribing ${mode}, ${wanted} of ${plan.channels} channels wanted`);
          rows.push(await measureReader(nats, plan, mode, wanted, publisher.seq()));
        }
      }
    } finally {
      await publisher.stop();
    }
  } finally {
    await nc.close();
    await nats.stop();
  }
  const note = multi
    ? ''
    : `\nnats-server ${version.join('.')} has no filter_subjects (2.10+): set NATS_SERVER_PATH to a 2.10 server to measure it.\n`;
  return `How an edge subscribes: ${plan.rate.toLocaleString('en-US')} events/s over ${plan.channels.toLocaleString('en-US')} channels, nats-server ${version.join('.')} (its CPU with no reader is what storing them costs); the reader's CPU and per wanted message, created_at → receipt:\n\n${markdownTable(rows)}${note}`;
}

async function serverCpu(nats: NatsServer, ms: number): Promise<number> {
  const c0 = cpuSeconds(nats.pid);
  await sleep(ms);
  return Math.round(((cpuSeconds(nats.pid) - c0) / (ms / 1000)) * 100);
}

async function measureReader(
  nats: NatsServer,
  plan: FilterPlan,
  mode: ReaderMode,
  wanted: number,
  from: number,
): Promise<Row> {
  const subjects = Array.from({ length: wanted }, (_, i) => subjectFor(TABLE, `c${i}`));
  const config: ReaderConfig = {
    url: nats.url,
    stream: 'walcast',
    mode,
    subjects,
    extra: subjectFor(TABLE, `c${wanted}`),
    from,
  };
  const child = fork(CHILD, [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, READER_CONFIG: JSON.stringify(config) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  try {
    await answer(child, 'ready');
    await sleep(plan.warmupMs);
    child.send({ cmd: 'reset' });
    await answer(child, 'reset');
    const c0 = cpuSeconds(child.pid!);
    const s0 = cpuSeconds(nats.pid);
    const t0 = performance.now();
    await sleep(plan.measureMs);
    child.send({ cmd: 'report' });
    const r = (await answer(child, 'report')).report as FleetReport;
    const seconds = (performance.now() - t0) / 1000;
    const cpu = cpuSeconds(child.pid!) - c0;
    const server = cpuSeconds(nats.pid) - s0;
    let resubscribe: number | null = null;
    if (mode !== 'all') {
      child.send({ cmd: 'resubscribe' });
      resubscribe = Number(((await answer(child, 'resubscribed')).ms as number).toFixed(1));
    }
    return {
      mode,
      'channels wanted': wanted,
      'wanted msgs/s': Math.round(r.received / seconds),
      'reader CPU %': Math.round((cpu / seconds) * 100),
      'reader CPU µs per wanted msg': r.received ? Number(((cpu / r.received) * 1e6).toFixed(1)) : null,
      'nats-server CPU %': Math.round((server / seconds) * 100),
      'p50 ms': Number((r.p50 / 1000).toFixed(2)),
      'p99 ms': Number((r.p99 / 1000).toFixed(2)),
      'one more channel ms': resubscribe,
    };
  } finally {
    child.kill('SIGKILL');
  }
}

function answer(child: ChildProcess, type: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: Record<string, unknown>) => {
      if (m.type !== type) return;
      child.off('message', onMessage);
      resolve(m);
    };
    child.on('message', onMessage);
    child.once('exit', (code) => reject(new Error(`the stream reader exited (${code}) before '${type}'`)));
  });
}

/** The `n`th event on `channel` as the sink writes it (epoch ab12, commit time `now`). */
export function sinkMessage(
  n: number,
  channel: string,
  now: string,
  xid: number,
): { subject: string; payload: Buffer; headers: StreamHeaders } {
  const position = formatPosition(0x1000n + BigInt(n), 1, 'ab12');
  const frame = `{"type":"event","channel":"${channel}","table":"${TABLE}","op":"insert","position":"${position}","row":{"id":${n},"channel_id":"${channel}","body":"${'x'.repeat(64)}","created_at":"${now}"}}`;
  const lines = renderHeaderLines([
    ['Nats-Msg-Id', position],
    ['Walcast-Position', position],
    ['Walcast-Table', TABLE],
    ['Walcast-Op', 'insert'],
    ['Walcast-Commit-Time', now],
    ['Walcast-Xid', String(xid)],
  ]);
  return { subject: subjectFor(TABLE, channel), payload: Buffer.from(frame), headers: new StreamHeaders(lines) };
}

/** Events as the sink writes them, `rate` per second in 10 ms batches, channels in round robin; seq(): the next stream sequence. */
function startPublisher(nc: NatsConnection, plan: FilterPlan): { seq(): number; stop(): Promise<void> } {
  const js = jetstream(nc);
  const t0 = performance.now();
  let sent = 0;
  let stored = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const due = Math.floor(((performance.now() - t0) / 1000) * plan.rate) - sent;
      const acks: Promise<unknown>[] = [];
      const now = new Date().toISOString();
      for (let i = 0; i < due; i++, sent++) {
        const { subject, payload, headers } = sinkMessage(sent, `c${sent % plan.channels}`, now, sent);
        acks.push(js.publish(subject, payload, { headers }));
      }
      await Promise.all(acks);
      stored += acks.length;
      await sleep(10);
    }
  })();
  return {
    seq: () => stored + 1,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}
