// Resume on an edge from before its recovery window: the missed events of a
// channel read back from the change stream. The position names where to
// start (stream-index.ts finds its sequence); an ephemeral consumer filtered
// to the channel's subjects (and the table-wide truncates, token `%`) reads
// from there up to the mark the subscribe took, so live events, held from
// that moment, follow with no gap and no repeat (ws/subscribe.ts).
//
// recovered:false when the position is of another epoch (the slot was
// recreated), when the stream's limits removed events after it, or when
// more than HISTORY_MAX_BYTES were missed (subscribe with a snapshot then).
import { AckPolicy, DeliverPolicy, jetstream, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { BufferedEvent, Replay } from '../hub/recovery.ts';
import { forChannel } from '../hub/recovery.ts';
import { parsePosition } from '../replication/position.ts';
import { encodeToken, NO_CHANNEL_TOKEN, SUBJECT_PREFIX } from '../sinks/subject.ts';
import { isNotFound } from '../sinks/nats-stream.ts';
import { covers, firstAfter } from './stream-index.ts';
import { commitTimeMs } from './decode.ts';

/** Bytes of missed events one resume reads from the stream, at most (a bound on the edge's memory per resume). */
export const HISTORY_MAX_BYTES = 16 * 1024 * 1024;
/** A history read that has not finished by then fails (the client is told recovered:false). */
const READ_TIMEOUT_MS = 10_000;
/**
 * Reads running at once (so an edge holds at most READS × HISTORY_MAX_BYTES
 * of history, 64 MiB), and resumes waiting for one; past that a resume is
 * answered recovered:false. After another edge dies most of its clients'
 * resumes are served from this edge's own window and never wait here.
 */
export const HISTORY_READS = 4;
export const HISTORY_WAITING = 10_000;

export interface HistorySource {
  readonly stream: string;
  readonly epoch: string;
  readonly deliveredSeq: number;
  readonly jsm: JetStreamManager | undefined;
  readonly nc: NatsConnection | undefined;
}

export class StreamHistory {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly source: HistorySource) {}

  mark(): number {
    return this.source.deliveredSeq;
  }

  async read(channel: string, since: string, upTo: number): Promise<Replay> {
    if (this.running >= HISTORY_READS) {
      if (this.waiting.length >= HISTORY_WAITING)
        return { recovered: false, reason: 'too many resumes are reading the stream at once' };
      await new Promise<void>((r) => this.waiting.push(r));
    }
    this.running++;
    try {
      return await this.readNow(channel, since, upTo);
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }

  private async readNow(channel: string, since: string, upTo: number): Promise<Replay> {
    const parts = parsePosition(since);
    if (!parts) return { recovered: false, reason: 'not a position' };
    if (parts.snapshotRow !== undefined)
      return { recovered: false, reason: 'a snapshot row is not a resumable position' };
    if (parts.epoch !== this.source.epoch)
      return { recovered: false, reason: 'the position is from another epoch (the slot was recreated)' };
    const { jsm, nc, stream } = this.source;
    if (!jsm || !nc) return { recovered: false, reason: 'the edge is not connected to NATS' };
    const info = await jsm.streams.info(stream);
    const first = info.state.first_seq;
    const last = Math.min(upTo, info.state.last_seq);
    const at = (seq: number) => positionAt(jsm, stream, seq);
    const coverage = covers(since, first, info.state.messages > 0 ? await at(first) : undefined, this.source.epoch);
    if (!coverage.covered) return { recovered: false, reason: coverage.reason };
    const start = await firstAfter(since, first, last, at);
    if (start > last) return { recovered: true, events: [] };
    return this.readRange(channel, start, last);
  }

  /**
   * The channel's messages in [start, last], and the table-wide ones
   * (truncates), merged in stream order. Two consumers with one filter each:
   * nats-server before 2.10 takes a single filter subject.
   */
  private async readRange(channel: string, start: number, last: number): Promise<Replay> {
    const budget = { bytes: HISTORY_MAX_BYTES };
    const own = await this.readSubject(`${SUBJECT_PREFIX}.*.${encodeToken(channel)}`, start, last, budget);
    if (!own) return tooMuch();
    const wide = await this.readSubject(`${SUBJECT_PREFIX}.*.${NO_CHANNEL_TOKEN}`, start, last, budget);
    if (!wide) return tooMuch();
    const events: BufferedEvent[] = [];
    let i = 0;
    let j = 0;
    while (i < own.length || j < wide.length) {
      if (j >= wide.length || (i < own.length && own[i]!.seq < wide[j]!.seq)) events.push(own[i++]!.event);
      else events.push(forChannel(wide[j++]!.event, channel));
    }
    return { recovered: true, events };
  }

  /** The messages on `subject` in [start, last], through an ephemeral consumer that counts them first; undefined past the budget. */
  private async readSubject(
    subject: string,
    start: number,
    last: number,
    budget: { bytes: number },
  ): Promise<{ seq: number; event: BufferedEvent }[] | undefined> {
    const { jsm, nc, stream } = this.source;
    const ci = await jsm!.consumers.add(stream, {
      filter_subject: subject,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: start,
      ack_policy: AckPolicy.None,
      mem_storage: true,
      inactive_threshold: 30_000_000_000,
    });
    const out: { seq: number; event: BufferedEvent }[] = [];
    try {
      if (ci.num_pending === 0) return out;
      const consumer = await jetstream(nc!).consumers.get(stream, ci.name);
      const messages = await consumer.consume({ max_messages: Math.min(ci.num_pending, 1024) });
      const timer = setTimeout(() => void messages.close(), READ_TIMEOUT_MS);
      let seen = 0;
      try {
        for await (const m of messages) {
          seen++;
          if (m.seq > last) return out;
          const frame = m.string();
          budget.bytes -= frame.length;
          if (budget.bytes < 0) return undefined;
          const h = m.headers;
          const event = {
            channel: '',
            table: h?.get('Walcast-Table') ?? '',
            position: h?.get('Walcast-Position') ?? '',
            timeMs: commitTimeMs(h?.get('Walcast-Commit-Time')),
            frame,
          };
          out.push({ seq: m.seq, event });
          if (m.seq >= last || seen >= ci.num_pending) return out;
        }
      } finally {
        clearTimeout(timer);
        await messages.close().catch(() => {});
      }
      throw new Error('reading the stream timed out');
    } finally {
      await jsm!.consumers.delete(stream, ci.name).catch(() => {});
    }
  }
}

function tooMuch(): Replay {
  return { recovered: false, reason: `more than ${HISTORY_MAX_BYTES} bytes were missed: subscribe with a snapshot` };
}

/** The position of the message at `seq`; undefined when the stream no longer has it. */
async function positionAt(jsm: JetStreamManager, stream: string, seq: number): Promise<string | undefined> {
  try {
    const m = await jsm.streams.getMessage(stream, { seq });
    return m?.header?.get('Walcast-Position') || undefined;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}
