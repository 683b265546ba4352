// Hostile input against a live relay: thousands of random, truncated,
// oversized, deeply nested and binary frames, and random subscribe/publish
// sequences, on several connections at once. The relay must not crash; every
// frame gets exactly one reply or error (or, over the size limit, the
// documented close 1009); memory stays bounded (connections, subscriptions
// and heap go back down); and a well-behaved client keeps receiving every
// event in order throughout. Frames come from fast-check with a fixed seed.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CLOSE } from '../../client/protocol.ts';
import { TestClient, waitFor, relayFixture } from '../helpers/relay.ts';
import type { Relay } from '../../relay/relay.ts';

const SEED = 20261123;
const CONNECTIONS = 4;
const FRAMES_PER_CONNECTION = 1500;
const MAX_FRAME = 4096;

const fx = relayFixture();
const { db } = fx;
let relay: Relay;

before(async () => {
  relay = await fx.relay({
    maxFrameBytes: MAX_FRAME,
    maxSubscriptions: 20,
    rateLimit: 1_000_000,
    subjectRateLimit: 1_000_000,
  });
});

type Frame = { kind: string; data: string | Buffer };

const channel = fc.oneof(
  fc.constantFrom('fuzz-a', 'fuzz-b', 'fuzz-good', "x'); drop table chat_messages; --"),
  fc.string({ maxLength: 210 }),
);
const tableName = fc.oneof(
  fc.constantFrom('chat_messages', 'presence', 'public.chat_messages', 'walcast.tables', 'pg_catalog.pg_class'),
  fc.string({ maxLength: 40 }),
);
const value = fc.oneof(
  fc.string({ maxLength: 50 }),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.jsonValue({ maxDepth: 3 }),
);
const row = fc.oneof(
  fc.record({ channel_id: channel, sender: fc.string({ maxLength: 20 }), body: value }, { requiredKeys: [] }),
  fc.dictionary(fc.string({ maxLength: 30 }), value, { maxKeys: 6 }),
);
const id = fc.oneof(fc.string({ maxLength: 70 }), fc.integer());
const message = fc.oneof(
  fc.record(
    {
      type: fc.constant('subscribe'),
      id,
      channel,
      snapshot: fc.boolean(),
      since: fc.string({ maxLength: 70 }),
      limit: fc.integer({ min: -5, max: 2000 }),
      tables: fc.array(tableName, { maxLength: 3 }),
    },
    { requiredKeys: ['type'] },
  ),
  fc.record({ type: fc.constant('unsubscribe'), id, channel }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.constant('publish'), id, table: tableName, row }, { requiredKeys: ['type'] }),
  fc.record(
    {
      type: fc.constantFrom('ping', 'auth', 'pong', 'event', '__proto__', 'constructor'),
      id,
      token: fc.string({ maxLength: 50 }),
    },
    { requiredKeys: ['type'] },
  ),
);
const nested = fc
  .tuple(
    fc.integer({ min: 1, max: 2000 }),
    fc.constantFrom('[', '{"a":', '{"type":"publish","table":"chat_messages","row":{"a":'),
    fc.boolean(),
  )
  .map(([depth, open, closed]) => {
    const close = open === '[' ? ']' : '}';
    const text = `${open.repeat(depth)}1${closed ? close.repeat(depth + (open.startsWith('{"type"') ? 1 : 0)) : ''}`;
    return text.slice(0, MAX_FRAME);
  });
const wellFormedPublish = fc.record({
  type: fc.constant('publish'),
  id: fc.string({ maxLength: 10 }),
  table: fc.constant('chat_messages'),
  row: fc.record({ channel_id: channel, sender: fc.string({ maxLength: 30 }), body: fc.string({ maxLength: 200 }) }),
});
const frame: fc.Arbitrary<Frame> = fc.oneof(
  { weight: 6, arbitrary: wellFormedPublish.map((m) => ({ kind: 'publish', data: JSON.stringify(m) })) },
  { weight: 30, arbitrary: message.map((m) => ({ kind: 'message', data: JSON.stringify(m) })) },
  {
    weight: 10,
    arbitrary: fc.tuple(message, fc.nat()).map(([m, cut]) => {
      const t = JSON.stringify(m);
      return { kind: 'truncated', data: t.slice(0, cut % t.length) };
    }),
  },
  { weight: 10, arbitrary: fc.string({ maxLength: 300, unit: 'binary' }).map((s) => ({ kind: 'random', data: s })) },
  {
    weight: 10,
    arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => ({ kind: 'json', data: JSON.stringify(v) ?? 'null' })),
  },
  { weight: 8, arbitrary: nested.map((s) => ({ kind: 'nested', data: s })) },
  { weight: 8, arbitrary: fc.uint8Array({ maxLength: 300 }).map((b) => ({ kind: 'binary', data: Buffer.from(b) })) },
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: MAX_FRAME + 1, max: MAX_FRAME * 3 })
      .map((n) => ({ kind: 'oversized', data: `{"type":"ping","x":"${'x'.repeat(n)}"}` })),
  },
);

/** Send frames on fresh connections; returns how many went out and how many closes were seen. */
async function fuzzConnection(frames: Frame[]): Promise<{ sent: number; closes: number }> {
  let sent = 0;
  let closes = 0;
  let c = await TestClient.connect(relay.wsUrl);
  let expected = 0;
  const replies = (cl: TestClient) => cl.messages.filter((m) => m.type !== 'event').length;
  for (const f of frames) {
    c.ws.send(f.data);
    sent++;
    if (f.kind === 'oversized') {
      const closed = await c.waitClosed();
      assert.equal(closed.code, CLOSE.messageTooBig);
      // Replies still on their way (a publish waiting for the database) die with the connection.
      assert.ok(replies(c) <= expected);
      closes++;
      c = await TestClient.connect(relay.wsUrl);
      expected = 0;
      continue;
    }
    expected++;
    // Every 100 frames, catch up: each frame got its one reply.
    if (expected % 100 === 0)
      await c.waitFor(() => (replies(c) >= expected ? true : undefined), 20_000, `${expected} replies`);
  }
  await c.waitFor(() => (replies(c) >= expected ? true : undefined), 20_000, `${expected} replies`);
  assert.equal(replies(c), expected, 'one reply per frame, no more');
  for (const m of c.messages) if (m.type === 'error') assert.ok(m.message.length > 0);
  c.close();
  await c.waitClosed();
  return { sent, closes };
}

test('fuzz: the relay survives, answers every frame, stays bounded, and a good client keeps receiving', async (t) => {
  const good = await TestClient.connect(relay.wsUrl);
  await good.subscribe('fuzz-good', { tables: ['chat_messages'] });
  const heapBefore = process.memoryUsage().heapUsed;
  let inserted = 0;
  let fuzzing = true;
  const inserter = (async () => {
    while (fuzzing) {
      await db.query("insert into chat_messages (channel_id, sender, body) values ('fuzz-good', 'steady', $1)", [
        `good-${inserted}`,
      ]);
      inserted++;
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const all = fc.sample(frame, { numRuns: CONNECTIONS * FRAMES_PER_CONNECTION, seed: SEED });
  const kinds = new Map<string, number>();
  for (const f of all) kinds.set(f.kind, (kinds.get(f.kind) ?? 0) + 1);
  let results: { sent: number; closes: number }[];
  try {
    results = await Promise.all(
      Array.from({ length: CONNECTIONS }, (_, i) =>
        fuzzConnection(all.slice(i * FRAMES_PER_CONNECTION, (i + 1) * FRAMES_PER_CONNECTION)),
      ),
    );
  } finally {
    fuzzing = false;
    await inserter;
  }
  const sent = results.reduce((n, r) => n + r.sent, 0);
  const closes = results.reduce((n, r) => n + r.closes, 0);
  const summary = `fuzz: ${sent} frames tried on ${CONNECTIONS} connections (seed ${SEED}; ${[...kinds].map(([k, n]) => `${k} ${n}`).join(', ')}); ${closes} closed with 1009; ${relay.internals.publisher.counters.published} published, ${relay.internals.publisher.counters.invalid} rejected by validation`;
  t.diagnostic(summary);
  console.log(`# ${summary}`);
  assert.ok(sent >= 5000);

  // The good client got every steady row, in order, and nothing was lost.
  await good.waitFor(
    () => (good.events().filter((e) => e.row.sender === 'steady').length >= inserted ? true : undefined),
    20_000,
    'every steady row',
  );
  const bodies = good
    .events()
    .filter((e) => e.row.sender === 'steady')
    .map((e) => e.row.body);
  assert.deepEqual(
    bodies,
    Array.from({ length: inserted }, (_, i) => `good-${i}`),
  );
  assert.equal(good.closed, undefined);

  // Bounded: what the fuzzers held is released; the heap did not balloon.
  await waitFor(() => relay.internals.ws.connections.size === 1, 10_000, 'fuzz connections to be dropped');
  assert.equal(relay.internals.router.subscriptionCount, 1);
  const grown = process.memoryUsage().heapUsed - heapBefore;
  assert.ok(grown < 256 * 1024 * 1024, `heap grew by ${grown} bytes`);
  assert.equal((await fetch(`${relay.url}/healthz`)).status, 200);
  assert.equal((await db.query("select to_regclass('public.chat_messages') is not null as ok"))[0]!.ok, true);
  good.close();
});

test('found by the fuzz: subscribe with snapshot, unsubscribe, subscribe again, at once: one answer each, one stream', async () => {
  const c = await TestClient.connect(relay.wsUrl);
  // A watcher sees 'old' dispatched first: otherwise s2, a live subscribe, could get it as news.
  const watcher = await TestClient.connect(relay.wsUrl);
  await watcher.subscribe('fuzz-race');
  await db.query("insert into chat_messages (channel_id, sender, body) values ('fuzz-race', 'x', 'old')");
  await watcher.waitForEvents(1);
  watcher.close();
  c.send({ type: 'subscribe', id: 's1', channel: 'fuzz-race', snapshot: true });
  c.send({ type: 'unsubscribe', id: 'u', channel: 'fuzz-race' });
  c.send({ type: 'subscribe', id: 's2', channel: 'fuzz-race' });
  await c.waitFor((m) => (m.filter((x) => x.type !== 'event').length >= 3 ? true : undefined));
  await db.query("insert into chat_messages (channel_id, sender, body) values ('fuzz-race', 'x', 'new')");
  await c.waitForEvents(1);
  assert.deepEqual((await c.request({ type: 'ping', id: 'end' })).type, 'pong');
  const replies = c.messages
    .filter((m) => m.type !== 'event')
    .map((m) => [m.type, 'id' in m ? m.id : undefined, m.type === 'error' ? m.code : undefined]);
  // The snapshot read finishes last: its subscribe is answered after the other two.
  assert.deepEqual(replies, [
    ['unsubscribed', 'u', undefined],
    ['subscribed', 's2', undefined],
    ['error', 's1', 'snapshot_failed'],
    ['pong', 'end', undefined],
  ]);
  assert.deepEqual(
    c.events().map((e) => [e.op, e.row.body]),
    [['insert', 'new']],
  );
  c.close();
});
