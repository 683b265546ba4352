// Topics and filters (relay/mqtt/topics.ts): the row topic scheme, level
// escaping, MQTT 4.7 matching and filter validation, and what a filter asks
// of the router; QoS 1 packet numbering (relay/mqtt/outgoing.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import mqttPacket from 'mqtt-packet';
import {
  channelOfTopic,
  decodeLevel,
  encodeLevel,
  filterError,
  matches,
  planFilter,
  rowTopic,
  splitTopic,
  topicNameError,
} from '../../relay/mqtt/topics.ts';
import { packet, withPacketId, type OutMessage } from '../../relay/mqtt/outgoing.ts';

test('a row topic is <table>/<channel>/<key…> with /, +, # and % escaped in values', () => {
  assert.equal(rowTopic('chat_messages', 'room-1', ['42']), 'chat_messages/room-1/42');
  assert.equal(rowTopic('app.orders', 'a/b', ['x+y', '#1', '50%']), 'app.orders/a%2Fb/x%2By/%231/50%25');
  assert.equal(rowTopic('presence', 'r', ['']), 'presence/r/');
  assert.equal(rowTopic('t', 'c', []), 't/c');
  assert.deepEqual(splitTopic('app.orders/a%2Fb/x%2By/%231'), {
    head: 'app.orders',
    channel: 'a/b',
    rest: ['x+y', '#1'],
  });
  assert.equal(channelOfTopic('alerts/fire'), 'fire');
  assert.equal(channelOfTopic('alerts'), '');
  assert.equal(channelOfTopic('t/a%2Fb/k'), 'a/b');
});

test('level escaping round-trips any text and never leaves a wildcard or separator', () => {
  fc.assert(
    fc.property(fc.string(), (value) => {
      const level = encodeLevel(value);
      assert.equal(/[/+#]/.test(level), false);
      assert.equal(decodeLevel(level), value);
    }),
  );
});

test('matching follows MQTT 4.7: + one level, # the rest (and the parent), $ topics not matched by a leading wildcard', () => {
  const cases: [string, string, boolean][] = [
    ['sport/tennis/#', 'sport/tennis', true],
    ['sport/tennis/#', 'sport/tennis/player1/ranking', true],
    ['sport/#', 'sport', true],
    ['#', 'a/b/c', true],
    ['sport/+', 'sport/', true],
    ['sport/+', 'sport', false],
    ['+/+', '/finance', true],
    ['/+', '/finance', true],
    ['+', '/finance', false],
    ['+/room-1/#', 'chat_messages/room-1/7', true],
    ['+/room-1/#', 'chat_messages/room-2/7', false],
    ['presence/+/u-7', 'presence/r/u-7', true],
    ['presence/+/u-7', 'presence/r/u-8', false],
    ['a/b', 'a/b/c', false],
    ['#', '$SYS/x', false],
    ['+/x', '$SYS/x', false],
    ['$SYS/#', '$SYS/x', true],
  ];
  for (const [filter, topic, want] of cases) assert.equal(matches(filter, topic), want, `${filter} vs ${topic}`);
});

test('matching agrees with MQTT 4.7 level by level for any valid filter and topic name', () => {
  // The spec's definition, one level at a time, against the in-place matcher.
  const spec = (filter: string, topic: string): boolean => {
    if (topic.startsWith('$') && /^[+#]/.test(filter)) return false;
    const f = filter.split('/');
    const t = topic.split('/');
    for (let i = 0; i < f.length; i++) {
      if (f[i] === '#') return true;
      if (i >= t.length || (f[i] !== '+' && f[i] !== t[i])) return false;
    }
    return f.length === t.length;
  };
  const level = fc.constantFrom('', 'a', 'ab', 'b', '$S', '+', '#');
  const path = fc.array(level, { minLength: 1, maxLength: 5 }).map((l) => l.join('/'));
  fc.assert(
    fc.property(path, path, (filter, rawTopic) => {
      const topic = rawTopic.replace(/[+#]/g, 'x');
      fc.pre(filterError(filter) === null && topicNameError(topic) === null);
      assert.equal(matches(filter, topic), spec(filter, topic), `${filter} vs ${topic}`);
    }),
    { numRuns: 2000 },
  );
});

test('filters and topic names are validated as MQTT 4.7.1 and 4.7.3 say', () => {
  for (const ok of ['#', '+', 'a/+/b', 'a/#', '+/+/#', 'a//b', '/']) assert.equal(filterError(ok), null, ok);
  for (const bad of ['', 'a/#/b', 'a#', 'a/b+', '+a', 'a\u0000b']) assert.notEqual(filterError(bad), null, bad);
  assert.equal(topicNameError('a/b'), null);
  for (const bad of ['', 'a/+', 'a/#', 'a\u0000']) assert.notEqual(topicNameError(bad), null, bad);
});

test('a filter tells the table and channel it can match (null: any)', () => {
  assert.deepEqual(planFilter('chat_messages/room-1/#'), {
    filter: 'chat_messages/room-1/#',
    table: 'chat_messages',
    channel: 'room-1',
    key: ['#'],
  });
  assert.deepEqual(planFilter('+/room%2F1/#'), { filter: '+/room%2F1/#', table: null, channel: 'room/1', key: ['#'] });
  assert.deepEqual(planFilter('presence/+/#'), {
    filter: 'presence/+/#',
    table: 'presence',
    channel: null,
    key: ['#'],
  });
  assert.deepEqual(planFilter('user_profiles/u-7/123'), {
    filter: 'user_profiles/u-7/123',
    table: 'user_profiles',
    channel: 'u-7',
    key: ['123'],
  });
  assert.deepEqual(planFilter('#'), { filter: '#', table: null, channel: null, key: [] });
  assert.deepEqual(planFilter('alerts'), { filter: 'alerts', table: 'alerts', channel: '', key: [] });
});

test('a QoS 1 PUBLISH is serialised once and numbered per subscriber; mqtt-packet reads the copies back', () => {
  const m: OutMessage = {
    topic: 'presence/r/ü',
    payload: Buffer.alloc(300, 'x'),
    qos: 1,
    table: 'presence',
    position: 'p',
    xid: 1,
    row: true,
    properties: { userProperties: { op: 'insert' } },
  };
  for (const version of [4, 5] as const) {
    const template = packet(m, version, 1, false);
    assert.equal(packet(m, version, 1, false), template, 'cached');
    const parsed: mqttPacket.Packet[] = [];
    const parser = mqttPacket.parser({ protocolVersion: version });
    parser.on('packet', (p) => parsed.push(p));
    parser.parse(Buffer.concat([withPacketId(template, 513), withPacketId(template, 65_535, true)]));
    assert.deepEqual(
      parsed.map((p) => [
        (p as mqttPacket.IPublishPacket).messageId,
        (p as mqttPacket.IPublishPacket).dup,
        (p as mqttPacket.IPublishPacket).topic,
      ]),
      [
        [513, false, 'presence/r/ü'],
        [65_535, true, 'presence/r/ü'],
      ],
    );
    if (version === 5)
      assert.deepEqual({ ...(parsed[0] as mqttPacket.IPublishPacket).properties?.userProperties }, { op: 'insert' });
  }
});

test('the packet size guard reads each fixed header across chunks and reports the first packet over the limit', async () => {
  const { PacketSizeGuard } = await import('../../relay/mqtt/framing.ts');
  const small = mqttPacket.generate({
    cmd: 'publish',
    topic: 'a/b',
    payload: Buffer.alloc(100),
    qos: 0,
    retain: false,
    dup: false,
  });
  const big = mqttPacket.generate({
    cmd: 'publish',
    topic: 'a/b',
    payload: Buffer.alloc(20_000),
    qos: 0,
    retain: false,
    dup: false,
  });
  const guard = new PacketSizeGuard(1024);
  const stream = Buffer.concat([small, mqttPacket.generate({ cmd: 'pingreq' }), small, big]);
  // Byte by byte: headers split anywhere.
  let found: number | null = null;
  for (let i = 0; i < stream.length && found === null; i++) found = guard.feed(stream.subarray(i, i + 1));
  assert.equal(found, big.length);
  assert.equal(new PacketSizeGuard(1024).feed(Buffer.concat([small, small])), null);
  assert.equal(new PacketSizeGuard(1024).feed(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff])), -1);
});
