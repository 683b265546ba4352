// The QoS 1 window of an MQTT session (relay/mqtt/inflight.ts): packet
// identifiers, Receive Maximum, and the resume position under out-of-order
// acknowledgements. Packets are built and read back with mqtt-packet.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqttPacket, { type IPublishPacket } from 'mqtt-packet';
import { Inflight } from '../../relay/mqtt/inflight.ts';

const template = (n: number) =>
  mqttPacket.generate({
    cmd: 'publish',
    topic: 't/c/1',
    payload: `m${n}`,
    qos: 1,
    retain: false,
    messageId: 1,
    dup: false,
  });

function read(bytes: Buffer): IPublishPacket {
  const parser = mqttPacket.parser();
  let out: IPublishPacket | undefined;
  parser.on('packet', (p) => (out = p as IPublishPacket));
  parser.parse(bytes);
  return out!;
}

test('each message gets an identifier no unacknowledged one has; the payload is untouched', () => {
  const w = new Inflight(() => 100);
  const ids = [1, 2, 3].map((n) => read(w.add(template(n), `p${n}`)!));
  assert.deepEqual(
    ids.map((p) => [p.messageId, String(p.payload)]),
    [
      [1, 'm1'],
      [2, 'm2'],
      [3, 'm3'],
    ],
  );
  w.ack(2);
  assert.equal(read(w.add(template(4), 'p4')!).messageId, 4, 'identifiers go on rather than reuse at once');
  assert.equal(w.size, 3);
});

test('the resume position moves only past messages that are all acknowledged, whatever the order of acks', () => {
  const w = new Inflight(() => 100);
  const ids = [1, 2, 3].map((n) => read(w.add(template(n), `p${n}`)!).messageId!);
  assert.equal(w.settled, false);
  assert.deepEqual(w.ack(ids[1]!), { moved: undefined, next: undefined }, 'the second acked first: p1 is still open');
  assert.equal(w.ack(ids[0]!).moved, 'p2', 'the first acked: everything up to p2 is');
  assert.equal(w.ack(999).moved, undefined, 'an unknown identifier changes nothing');
  assert.equal(w.ack(ids[2]!).moved, 'p3');
  assert.equal(w.settled, true);
});

test('a retained row (no position) does not move the resume position, nor hold it back once acked', () => {
  const w = new Inflight(() => 100);
  const a = read(w.add(template(1), null)!).messageId!;
  const b = read(w.add(template(2), 'p2')!).messageId!;
  assert.equal(w.ack(a).moved, undefined);
  assert.equal(w.ack(b).moved, 'p2');
});

test('past Receive Maximum messages wait, counted in waitingBytes, and go out one per acknowledgement', () => {
  const w = new Inflight(() => 2);
  const first = read(w.add(template(1), 'p1')!).messageId!;
  w.add(template(2), 'p2');
  assert.equal(w.add(template(3), 'p3'), null);
  assert.equal(w.waitingBytes, template(3).length);
  const { moved, next } = w.ack(first);
  assert.equal(moved, 'p1');
  assert.equal(String(read(next!).payload), 'm3');
  assert.equal(w.waitingBytes, 0);
  assert.equal(w.size, 2);
});
