// The change stream's pure parts: subject tokens, message ids, and the
// publish queue that gates the slot's position on what the sink acknowledged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  decodeToken,
  encodeToken,
  messageChannelOf,
  messageSubject,
  parseSubject,
  subjectFor,
} from '../../relay/sinks/subject.ts';
import { msgIdOf, parseMsgId } from '../../relay/sinks/message.ts';
import { orderKey, PublishQueue, type QueuedMessage } from '../../relay/sinks/queue.ts';
import { formatPosition } from '../../relay/replication/position.ts';
import { coversWalcast } from '../../relay/sinks/nats-stream.ts';
import { secretKey, signWebhook } from '../../relay/sinks/signing.ts';
import { outcome, retryAfterMs, retryDelay } from '../../relay/sinks/retry.ts';
import { CommitGate } from '../../relay/sinks/gate.ts';
import { renderHeaderLines, StreamHeaders } from '../../relay/sinks/stream-headers.ts';
import { headers as natsHeaders } from '@nats-io/transport-node';

test('subject tokens: plain names stay as they are, everything else is %XX of its UTF-8 bytes', () => {
  assert.equal(subjectFor('chat_messages', 'room-1'), 'walcast.chat_messages.room-1');
  assert.equal(subjectFor('app.orders', 'a.b'), 'walcast.app%2Eorders.a%2Eb');
  assert.equal(encodeToken('x *>%\t'), 'x%20%2A%3E%25%09');
  assert.equal(encodeToken('café'), 'caf%C3%A9');
  assert.equal(subjectFor('chat_messages', undefined), 'walcast.chat_messages.%');
  assert.deepEqual(parseSubject('walcast.app%2Eorders.room%201'), { table: 'app.orders', channel: 'room 1' });
  assert.deepEqual(parseSubject('walcast.t.%'), { table: 't', channel: undefined });
  assert.equal(parseSubject('other.t.c'), undefined);
});

test('subject tokens are reversible, one NATS token each, and never the table-wide %', () => {
  fc.assert(
    fc.property(fc.string({ minLength: 1, maxLength: 40, unit: 'binary' }), (text) => {
      const token = encodeToken(text);
      assert.equal(decodeToken(token), text);
      assert.match(token, /^[A-Za-z0-9_%-]+$/); // no . * > or whitespace
      assert.notEqual(token, '%');
    }),
  );
});

/** Does a NATS subject filter match a subject (tokens; `*` one token, `>` the rest)? */
function natsMatch(filter: string, subject: string): boolean {
  const f = filter.split('.');
  const s = subject.split('.');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '>') return s.length > i;
    if (i >= s.length || (f[i] !== '*' && f[i] !== s[i])) return false;
  }
  return f.length === s.length;
}

test('logical messages are on walcast.%.%%<channel>: in walcast.> and walcast.*.*, never matched by a table, a channel or the truncates', () => {
  assert.equal(messageSubject('room-1'), 'walcast.%.%%room-1');
  assert.equal(messageSubject('a.b c'), 'walcast.%.%%a%2Eb%20c');
  assert.equal(messageChannelOf('walcast.%.%%a%2Eb%20c'), 'a.b c');
  assert.equal(messageChannelOf('walcast.chat_messages.room-1'), undefined);
  assert.equal(parseSubject(messageSubject('room-1')), undefined, 'not a table event');
  fc.assert(
    fc.property(
      fc.string({ maxLength: 30, unit: 'binary' }),
      fc.string({ minLength: 1, maxLength: 30, unit: 'binary' }),
      fc.string({ minLength: 1, maxLength: 30, unit: 'binary' }),
      (channel, table, other) => {
        const subject = messageSubject(channel);
        assert.equal(messageChannelOf(subject), channel);
        for (const f of ['walcast.>', 'walcast.*.*', 'walcast.*.>', 'walcast.%.>', '>'])
          assert.ok(natsMatch(f, subject), `${f} holds ${subject}`);
        for (const f of [
          `walcast.${encodeToken(table)}.>`,
          `walcast.*.${encodeToken(other)}`,
          `walcast.*.%`,
          subjectFor(table, other),
        ])
          assert.ok(!natsMatch(f, subject), `${f} does not match ${subject}`);
      },
    ),
  );
});

test('message ids: the position, then +n for further messages of one change; they parse back to order keys', () => {
  const pos = formatPosition(0x1801f28n, 3, 'abc');
  assert.equal(msgIdOf(pos, 0), pos);
  assert.equal(msgIdOf(pos, 1), `${pos}+1`);
  assert.equal(parseMsgId(pos), orderKey(0x1801f28n, 3, 0));
  assert.equal(parseMsgId(`${pos}+1`), orderKey(0x1801f28n, 3, 1));
  assert.equal(parseMsgId('not-walcast'), undefined);
  assert.ok(
    orderKey(0x10n, 2, 0) < orderKey(0x10n, 2, 1) &&
      orderKey(0x10n, 2, 1) < orderKey(0x10n, 3, 0) &&
      orderKey(0x10n, 0xff, 0) < orderKey(0x11n, 1, 0),
  );
});

test('a stream can hold walcast only if one of its subjects covers walcast.<table>.<channel>', () => {
  assert.equal(coversWalcast(['walcast.>']), true);
  assert.equal(coversWalcast(['orders', '>']), true);
  assert.equal(coversWalcast(['walcast.*.*']), true);
  assert.equal(coversWalcast(['walcast.chat_messages.*']), false);
  assert.equal(coversWalcast([]), false);
});

interface Msg extends QueuedMessage {
  n: number;
}
const msg = (lsn: bigint, index: number, bytes = 10): Msg => ({
  key: orderKey(lsn, index),
  bytes,
  commitTimeMs: 0,
  n: index,
});

function queue(maxBytes = 1000) {
  const safe: bigint[] = [];
  let rewinds = 0;
  const q = new PublishQueue<Msg>(maxBytes, { onSafe: (lsn) => safe.push(lsn), onRewind: () => rewinds++ });
  return { q, safe, rewinds: () => rewinds };
}

test('queue: a commit is released only when every message before it is acknowledged, in any ack order', () => {
  const { q, safe } = queue();
  const a = msg(0x10n, 1),
    b = msg(0x10n, 2),
    c = msg(0x20n, 1);
  q.push(a);
  q.push(b);
  q.commit(0x18n, 0);
  q.push(c);
  q.commit(0x28n, 0);
  assert.deepEqual([q.take(), q.take(), q.take(), q.take()], [a, b, c, undefined]);
  q.ack(b);
  assert.deepEqual(safe, [], 'b acknowledged before a: nothing released');
  q.ack(c);
  assert.deepEqual(safe, []);
  q.ack(a);
  assert.deepEqual(safe, [0x18n, 0x28n]);
  assert.equal(q.pending, 0);
  q.commit(0x30n, 0);
  assert.deepEqual(safe, [0x18n, 0x28n, 0x30n], 'nothing pending: a commit passes at once');
});

test('queue: one acknowledgement covers every message sent before it (sparse PubAcks), never one not yet sent', () => {
  const { q, safe } = queue();
  const ms = [1, 2, 3, 4, 5].map((i) => msg(0x10n, i));
  for (const m of ms.slice(0, 3)) q.push(m);
  q.commit(0x18n, 0);
  for (const m of ms.slice(3)) q.push(m);
  q.commit(0x28n, 0);
  assert.deepEqual([q.take(), q.take()], [ms[0], ms[1]]);
  assert.equal(q.hasNext(), true, 'the third is still to send');
  q.ackThrough(ms[1]!);
  assert.deepEqual(safe, [], 'the first transaction has a message not yet sent');
  assert.equal(q.pending, 3);
  assert.deepEqual([q.take(), q.take(), q.take()], [ms[2], ms[3], ms[4]]);
  assert.equal(q.hasNext(), false);
  q.ackThrough(ms[2]!);
  assert.deepEqual(safe, [0x18n]);
  q.ackThrough(ms[4]!);
  assert.deepEqual(safe, [0x18n, 0x28n]);
  assert.equal(q.pending, 0);
});

test('queue: resync treats what the stream holds as acknowledged and sends the rest again, in order', () => {
  const { q, safe } = queue();
  const ms = [1, 2, 3, 4].map((i) => msg(0x10n, i));
  for (const m of ms) q.push(m);
  q.commit(0x18n, 0);
  for (let i = 0; i < 4; i++) q.take();
  // Sent all four; the connection failed; the stream turns out to hold 1 and 2.
  q.resync(ms[1]!.key);
  assert.deepEqual(safe, []);
  assert.equal(q.take(), ms[2]);
  assert.equal(q.take(), ms[3]);
  assert.equal(q.take(), undefined);
  q.ack(ms[2]!);
  q.ack(ms[3]!);
  assert.deepEqual(safe, [0x18n]);
  // At start: what the stream already holds is not wanted again.
  assert.equal(q.wants(orderKey(0x10n, 4)), false);
  assert.equal(q.wants(orderKey(0x10n, 5)), true);
});

test('queue: past maxBytes it falls behind, refuses everything until drained, then asks for a rewind and takes the rest', () => {
  const { q, safe, rewinds } = queue(25);
  const a = msg(0x10n, 1),
    b = msg(0x10n, 2),
    c = msg(0x10n, 3),
    d = msg(0x20n, 1);
  q.push(a);
  q.push(b);
  q.push(c);
  q.commit(0x18n, 0);
  q.push(d);
  q.commit(0x28n, 0);
  assert.equal(q.behind, true, 'c did not fit');
  assert.equal(q.pending, 2);
  q.take();
  q.take();
  q.ack(a);
  assert.equal(rewinds(), 0);
  q.ack(b);
  assert.equal(rewinds(), 1, 'drained: rewind');
  assert.deepEqual(safe, [], 'the commit of the transaction c belongs to was refused');
  // The stream is re-read from the last released position: a and b are not wanted, c and d are.
  assert.equal(q.wants(a.key), false);
  q.push(a);
  q.push(b);
  q.push(c);
  q.commit(0x18n, 0);
  q.push(d);
  q.commit(0x28n, 0);
  assert.equal(q.take(), c);
  assert.equal(q.take(), d);
  q.ack(c);
  q.ack(d);
  assert.deepEqual(safe, [0x18n, 0x28n]);
});

test('queue: one message larger than the bound is taken when nothing else is pending', () => {
  const { q } = queue(25);
  q.push(msg(0x10n, 1, 100));
  assert.equal(q.behind, false);
  assert.equal(q.pending, 1);
});

test('webhook signatures verify with the standardwebhooks package, and fail for another body', async () => {
  const { Webhook } = await import('standardwebhooks');
  const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
  const body = '{"events":[{"type":"event","op":"insert"}]}';
  const headers = signWebhook(secretKey(secret)!, '0000000001801F28-00000001-1', Date.now() / 1000, body);
  assert.match(headers['webhook-signature'], /^v1,[A-Za-z0-9+/]+=*$/);
  assert.deepEqual(new Webhook(secret).verify(body, { ...headers }), JSON.parse(body));
  assert.throws(() => new Webhook(secret).verify(body.replace('insert', 'delete'), { ...headers }));
  assert.equal(secretKey('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'), undefined);
  assert.equal(secretKey('whsec_not base64!'), undefined);
});

test('webhook retries: backoff with jitter, never sooner than Retry-After (seconds or a date), capped; 2xx delivers, 410 disables', () => {
  const opts = { initialMs: 100, maxMs: 10_000, factor: 2 };
  assert.equal(
    retryDelay(1, null, opts, 0, () => 1),
    100,
  );
  assert.equal(
    retryDelay(3, null, opts, 0, () => 1),
    400,
  );
  assert.equal(
    retryDelay(3, null, opts, 0, () => 0),
    0,
  );
  assert.equal(
    retryDelay(1, '2', opts, 0, () => 0),
    2000,
  );
  assert.equal(
    retryDelay(1, new Date(5000).toUTCString(), opts, 1000, () => 0),
    4000,
  );
  assert.equal(
    retryDelay(1, '86400', opts, 0, () => 0),
    10_000,
    'capped at the backoff maximum',
  );
  assert.equal(
    retryDelay(1, 'soon', opts, 0, () => 1),
    100,
    'an unreadable Retry-After is ignored',
  );
  assert.equal(retryAfterMs(undefined, 0), undefined);
  assert.deepEqual([200, 204, 299, 410, 500, 429, 301].map(outcome), [
    'delivered',
    'delivered',
    'delivered',
    'gone',
    'retry',
    'retry',
    'retry',
  ]);
});

test('commit gate: the slowest member decides; a member that leaves stops holding; with none, commits pass', () => {
  const passed: bigint[] = [];
  const gate = new CommitGate((lsn) => passed.push(lsn));
  gate.committed(0x10n, 0);
  assert.deepEqual(passed, [0x10n], 'no member: passes');
  gate.join('a');
  gate.join('b');
  gate.committed(0x20n, 0);
  gate.release('a', 0x20n, 0);
  assert.deepEqual(passed, [0x10n]);
  gate.release('b', 0x20n, 0);
  assert.deepEqual(passed, [0x10n, 0x20n]);
  gate.committed(0x30n, 0);
  gate.release('a', 0x30n, 0);
  gate.leave('b');
  assert.deepEqual(passed, [0x10n, 0x20n, 0x30n], 'b left: a alone decides');
  gate.release('zzz', 0x99n, 0);
  assert.deepEqual(passed, [0x10n, 0x20n, 0x30n], 'not a member: ignored');
});

test('stream headers: the same bytes nats.js would render for the same headers, read back by key; CR or LF refused', () => {
  const entries = [
    ['Nats-Msg-Id', '0000000001801F28-00000001-3f9c2a1b'],
    ['Walcast-Table', 'chat_messages'],
    ['Walcast-Commit-Time', '2026-12-01T03:00:00.000Z'],
  ] as const;
  const ours = new StreamHeaders(`Nats-Expected-Last-Sequence: 41\r\n${renderHeaderLines(entries)}`);
  const theirs = natsHeaders();
  theirs.set('Nats-Expected-Last-Sequence', '41');
  for (const [k, v] of entries) theirs.set(k, v);
  // nats.js publishes headers by calling encode(); its own MsgHdrs has one too.
  const encode = (h: unknown) => Buffer.from((h as { encode(): Uint8Array }).encode()).toString();
  assert.equal(encode(ours), encode(theirs));
  assert.equal(ours.get('Walcast-Table'), 'chat_messages');
  assert.equal(ours.get('Nats-Expected-Last-Sequence'), '41');
  assert.deepEqual(ours.keys(), ['Nats-Expected-Last-Sequence', ...entries.map(([k]) => k)]);
  assert.equal(ours.has('Walcast-Op'), false);
  assert.throws(() => renderHeaderLines([['Walcast-Table', 'a\r\nInjected: 1']]), /cannot contain CR or LF/);
});
