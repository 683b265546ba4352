// What a sink receives from the dispatcher, and the JetStream message made of
// it. Pure.
//
// Nats-Msg-Id is the event's position. A change sent to two channels (a row
// that moved) gives two messages of one position: the second and later ones
// get the id `<position>+<n>` so that JetStream's duplicate detection does
// not drop them as retries of the first.
import { parsePosition } from '../replication/position.ts';
import { orderKey, type QueuedMessage } from './queue.ts';
import { messageSubject, subjectFor } from './subject.ts';
import { renderHeaderLines } from './stream-headers.ts';
import type { SinkEvent, SinkEventBody, SinkMessage } from '../hub/sink.ts';
import { tooLargeNotice } from '../hub/too-large.ts';
import type { EventMessage } from '../../client/protocol.ts';

export type { SinkEvent, SinkEventBody, SinkMessage } from '../hub/sink.ts';

export interface StreamMessage extends QueuedMessage {
  subject: string;
  msgId: string;
  payload: Uint8Array;
  /** Nats-Msg-Id and the Walcast-* headers, rendered once (stream-headers.ts); the sink adds the expected sequence. */
  headerLines: string;
  /** The event, for the notice that replaces it when it is over the server's max_payload (fitPayload). */
  event: SinkEventBody;
}

/** Room kept below max_payload for the headers (ids, position, table, op, time). */
const HEADER_ROOM = 1024;

/**
 * A message over the NATS server's max_payload (1 MiB by default) could
 * never be stored: retrying it would stop the stream, and the slot with it.
 * It is replaced, at its position and with its id, by the `event_too_large`
 * notice WebSocket clients get for events over WALCAST_MAX_EVENT_BYTES, so a
 * consumer knows a row was skipped and can read it from the table.
 */
export function fitPayload(msg: StreamMessage, maxPayload: number | undefined): boolean {
  if (!maxPayload || msg.payload.length + HEADER_ROOM <= maxPayload) return false;
  const notice = tooLargeNotice(msg.event as EventMessage, msg.payload.length, maxPayload - HEADER_ROOM);
  notice.message =
    `the ${msg.event.op} of ${msg.event.table} at position ${msg.event.position} is ${msg.payload.length} bytes, ` +
    `over the NATS server's max_payload (${maxPayload}): it was not stored. ` +
    (msg.event.op === MESSAGE_OP
      ? "The slot relay's clients got it, edges' clients do not; raise max_payload"
      : 'Read the row from the table, or raise max_payload');
  msg.payload = Buffer.from(JSON.stringify(notice));
  return true;
}

export function msgIdOf(position: string, part: number): string {
  return part === 0 ? position : `${position}+${part}`;
}

/** The order key a stored message's Nats-Msg-Id stands for; undefined when it is not walcast's. */
export function parseMsgId(id: string): string | undefined {
  const [base, partText] = id.split('+');
  const pos = parsePosition(base!);
  const part = partText === undefined ? 0 : Number(partText);
  if (!pos || pos.snapshotRow !== undefined || !Number.isInteger(part) || part < 0) return undefined;
  return orderKey(pos.commitLsn, pos.index, part);
}

export function toStreamMessage(e: SinkEvent): StreamMessage {
  const payload = Buffer.from(e.frame);
  const { event } = e;
  const msgId = msgIdOf(event.position, e.part);
  return {
    key: orderKey(e.commitLsn, e.index, e.part),
    bytes: payload.length,
    commitTimeMs: e.commitTimeMs,
    subject: subjectFor(event.table, event.channel),
    msgId,
    payload,
    event,
    headerLines: renderHeaderLines([
      ['Nats-Msg-Id', msgId],
      ['Walcast-Position', event.position],
      ['Walcast-Table', event.table],
      ['Walcast-Op', event.op],
      ['Walcast-Commit-Time', event.commit_time],
      // Which transaction: edge relays (relay/edge/) tell from it which events a snapshot read includes.
      ...(e.xid === undefined ? [] : [['Walcast-Xid', String(e.xid)] as const]),
    ]),
  };
}

/** Walcast-Op of a logical message (docs/streams.md#logical-messages). */
export const MESSAGE_OP = 'message';

/**
 * A logical message → its stream message: the content as the door wrote it
 * (edges hand it to the doors unchanged), on walcast.%.%%<channel>
 * (subject.ts), with the headers of an event plus Walcast-Prefix.
 */
export function toStreamLogicalMessage(m: SinkMessage): StreamMessage {
  const event: SinkEventBody = {
    type: MESSAGE_OP,
    table: m.table,
    op: MESSAGE_OP,
    position: m.position,
    commit_time: m.commit_time,
    channel: m.channel,
  };
  return {
    key: orderKey(m.commitLsn, m.index, 0),
    bytes: m.content.length,
    commitTimeMs: m.commitTimeMs,
    subject: messageSubject(m.channel),
    msgId: m.position,
    payload: m.content,
    event,
    headerLines: renderHeaderLines([
      ['Nats-Msg-Id', m.position],
      ['Walcast-Position', m.position],
      ['Walcast-Table', m.table],
      ['Walcast-Op', MESSAGE_OP],
      ['Walcast-Commit-Time', m.commit_time],
      ['Walcast-Xid', String(m.xid)],
      ['Walcast-Prefix', m.prefix],
    ]),
  };
}
