// What a sink receives from the dispatcher, and the JetStream message made of
// it. Pure.
//
// Nats-Msg-Id is the event's position. A change sent to two channels (a row
// that moved) gives two messages of one position: the second and later ones
// get the id `<position>+<n>` so that JetStream's duplicate detection does
// not drop them as retries of the first.
import { parsePosition } from '../replication/position.ts';
import { orderKey, type QueuedMessage } from './queue.ts';
import { subjectFor } from './subject.ts';
import type { SinkEvent } from '../hub/sink.ts';

export type { SinkEvent, SinkEventBody } from '../hub/sink.ts';

export interface StreamMessage extends QueuedMessage {
  subject: string;
  msgId: string;
  payload: Uint8Array;
  headers: [string, string][];
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
    headers: [
      ['Walcast-Position', event.position],
      ['Walcast-Table', event.table],
      ['Walcast-Op', event.op],
      ['Walcast-Commit-Time', event.commit_time],
    ],
  };
}
