// Publishing from clients against live relays: rows become INSERTs with
// bound parameters; the reply follows the commit; validation (derived and
// stored JSON Schemas, changed without a restart), server-owned and
// claim-bound columns, database refusals by SQLSTATE, and injection attempts
// that must arrive as plain values.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerMessage } from '../../client/protocol.ts';
import { type TestClient, waitFor, relayFixture } from '../helpers/relay.ts';
import { TEST_SECRET, token } from '../helpers/tokens.ts';
import type { Relay } from '../../relay/relay.ts';

const fx = relayFixture();
const { db } = fx;
let open: Relay;
let keyed: Relay;
let seq = 0;

async function client(relay: Relay, query = ''): Promise<TestClient> {
  return fx.client({ wsUrl: relay.wsUrl + query });
}

const publish = (c: TestClient, table: string, row: Record<string, unknown>) =>
  c.request({ type: 'publish', id: `p${++seq}`, table, row });

function code(reply: ServerMessage): string {
  return reply.type === 'error' ? reply.code : reply.type;
}

before(async () => {
  open = await fx.relay();
  await db.query(`
    create table parents (id bigint primary key);
    insert into parents values (1);
    create table items (
      id bigint generated always as identity primary key,
      channel text not null,
      qty int not null,
      price numeric check (price >= 0),
      due date,
      parent bigint references parents (id),
      code text unique,
      note varchar(5),
      tags text[],
      meta jsonb,
      blob bytea,
      status text not null default 'new',
      created_at timestamptz not null default now(),
      total numeric generated always as (qty * coalesce(price, 0)) stored
    );
    select walcast.register_table('public.items', channel_column => 'channel');
    create table notes (channel text not null, body text not null);
    select walcast.register_table('public.notes', channel_column => 'channel');
    select walcast.set_row_schema('public.notes', '{"type":"object"}');`);
  keyed = await fx.relay({ jwtSecret: TEST_SECRET });
  await waitFor(
    () => open.internals.dispatcher.hasTable('notes') && keyed.internals.dispatcher.hasTable('notes'),
    10_000,
    'registrations',
  );
});

test('open mode: a published row is committed before the reply, and reaches subscribers as an event', async () => {
  const sub = await client(open);
  await sub.subscribe('room-pub');
  const c = await client(open);
  const reply = await publish(c, 'chat_messages', { channel_id: 'room-pub', sender: 'ada', body: 'hello' });
  assert.equal(reply.type, 'published');
  assert.equal(reply.type === 'published' && reply.table, 'chat_messages');
  const rows = await db.query("select sender, body from chat_messages where channel_id = 'room-pub'");
  assert.deepEqual(rows, [{ sender: 'ada', body: 'hello' }]);
  const [event] = await sub.waitForEvents(1);
  assert.equal(event!.row.body, 'hello');
});

test('a state table is upserted on its primary key: the row is updated, updated_at reset', async () => {
  const sub = await client(open);
  await sub.subscribe('room-presence');
  const c = await client(open);
  const row = { channel_id: 'room-presence', user_id: 'ada', name: 'Ada' };
  assert.equal(code(await publish(c, 'presence', { ...row, status: 'online' })), 'published');
  const [first] = await db.query("select status, updated_at from presence where user_id = 'ada'");
  assert.equal(code(await publish(c, 'presence', { ...row, status: 'away' })), 'published');
  const rows = await db.query("select status, name, updated_at from presence where user_id = 'ada'");
  assert.equal(rows.length, 1);
  assert.equal(rows[0]!.status, 'away');
  assert.ok(rows[0]!.updated_at >= first!.updated_at);
  const events = await sub.waitForEvents(2);
  assert.deepEqual(
    events.map((e) => [e.op, e.row.status]),
    [
      ['insert', 'online'],
      ['update', 'away'],
    ],
  );
});

test('values of every kind are stored as given', async () => {
  const c = await client(open);
  const row = {
    channel: 'items-1',
    qty: 3,
    price: '12.50',
    due: '2026-01-31',
    parent: 1,
    code: 'A1',
    note: 'short',
    tags: ['a', 'b,c', 'd"e'],
    meta: { x: [1, { y: null }], s: "it's" },
    blob: Buffer.from([0, 1, 255]).toString('base64'),
  };
  assert.equal(code(await publish(c, 'items', row)), 'published');
  const [stored] = await db.query(
    "select qty, price::text, due::text, parent::int, tags, meta, encode(blob, 'hex') as blob, status, total::text from items where code = 'A1'",
  );
  assert.deepEqual(stored, {
    qty: 3,
    price: '12.50',
    due: '2026-01-31',
    parent: 1,
    tags: ['a', 'b,c', 'd"e'],
    meta: row.meta,
    blob: '0001ff',
    status: 'new',
    total: '37.50',
  });
});

test('rows are validated against the derived schema: columns, server-owned columns, types, required', async () => {
  const c = await client(open);
  const cases: [Record<string, unknown>, string][] = [
    [{ channel: 'i', qty: 1, nope: 1 }, '/nope'],
    [{ channel: 'i', qty: 1, id: 5 }, '/id'],
    [{ channel: 'i', qty: 1, created_at: '2020-01-01T00:00:00Z' }, '/created_at'],
    [{ channel: 'i', qty: 1, total: 1 }, '/total'],
    [{ channel: 'i', qty: 'three' }, '/qty'],
    [{ channel: 'i', qty: 2 ** 31 }, '/qty'],
    [{ channel: 'i', qty: 1, note: 'too long' }, '/note'],
    [{ channel: 'i', qty: 1, tags: 'a' }, '/tags'],
    [{ channel: 'i' }, ''],
  ];
  const before = open.internals.publisher.counters.invalid;
  for (const [row, path] of cases) {
    const reply = await publish(c, 'items', row);
    assert.equal(code(reply), 'invalid_row', JSON.stringify(row));
    assert.ok(reply.type === 'error' && reply.errors?.some((e) => e.path === path), JSON.stringify(reply));
  }
  assert.equal(open.internals.publisher.counters.invalid - before, cases.length);
  assert.equal((await db.query("select count(*)::int as n from items where channel = 'i'"))[0]!.n, 0);
});

test('database refusals map to stable codes by SQLSTATE, with safe messages', async () => {
  const c = await client(open);
  const base = { channel: 'items-2', qty: 1 };
  assert.equal(code(await publish(c, 'items', { ...base, code: 'dup' })), 'published');
  const cases: [Record<string, unknown>, string][] = [
    [{ ...base, code: 'dup' }, 'duplicate'],
    [{ ...base, parent: 999 }, 'reference_not_found'],
    [{ ...base, price: -1 }, 'check_failed'],
    [{ ...base, due: 'not a date' }, 'invalid_value'],
  ];
  for (const [row, expected] of cases) {
    const reply = await publish(c, 'items', row);
    assert.equal(code(reply), expected, JSON.stringify(row));
    assert.ok(
      reply.type === 'error' && !/not a date|999/.test(reply.message),
      reply.type === 'error' ? reply.message : '',
    );
  }
  // notes has a permissive stored schema: PostgreSQL's NOT NULL refuses.
  const missing = await publish(c, 'notes', { channel: 'n' });
  assert.equal(code(missing), 'missing_value');
  assert.match(missing.type === 'error' ? missing.message : '', /body/);
});

test('a stored JSON Schema applies without a restart, and can be removed again', async () => {
  const c = await client(open);
  const long = { channel_id: 'room-s', sender: 'ada', body: 'x'.repeat(50) };
  assert.equal(code(await publish(c, 'chat_messages', long)), 'published');
  await db.query(`select walcast.set_row_schema('public.chat_messages',
    '{"type":"object","properties":{"body":{"type":"string","maxLength":10}},"required":["channel_id","body"]}')`);
  let reply: ServerMessage | undefined;
  await waitFor(
    async () => code((reply = await publish(c, 'chat_messages', long))) === 'invalid_row',
    10_000,
    'the schema to apply',
  );
  assert.ok(reply?.type === 'error' && reply.errors?.[0]?.path === '/body');
  // Another version of a schema with the same $id replaces the first.
  await db.query(`select walcast.set_row_schema('public.chat_messages',
    '{"$id":"urn:walcast:chat","type":"object","properties":{"body":{"type":"string","maxLength":5}}}')`);
  await waitFor(
    async () => code(await publish(c, 'chat_messages', { ...long, body: 'x'.repeat(8) })) === 'invalid_row',
    10_000,
    'the second schema',
  );
  await db.query(`select walcast.set_row_schema('public.chat_messages',
    '{"$id":"urn:walcast:chat","type":"object","properties":{"body":{"type":"string","maxLength":100}}}')`);
  await waitFor(
    async () => code(await publish(c, 'chat_messages', long)) === 'published',
    10_000,
    'the third schema, same $id',
  );
  await db.query("select walcast.set_row_schema('public.chat_messages', null)");
  await waitFor(
    async () => code(await publish(c, 'chat_messages', long)) === 'published',
    10_000,
    'the derived schema to apply again',
  );
});

test('injection through table, column, channel and values never reaches SQL as text', async () => {
  const evil = "x'); drop table chat_messages; --";
  const c = await client(open);
  assert.equal(code(await publish(c, evil, { body: 'x' })), 'unknown_table');
  assert.equal(code(await publish(c, `chat_messages"; drop table chat_messages; --`, {})), 'unknown_table');
  const evilColumn = `body" ) values ('x'); drop table chat_messages; --`;
  const col = await publish(c, 'chat_messages', { channel_id: 'room-i', sender: 'a', body: 'b', [evilColumn]: 1 });
  assert.equal(code(col), 'invalid_row');
  const sub = await client(open);
  const subscribed = await sub.subscribe(evil, { snapshot: true, tables: ['chat_messages'] });
  assert.equal(subscribed.type === 'subscribed' && subscribed.snapshot, 0);
  assert.equal(
    code(
      await publish(c, 'chat_messages', { channel_id: evil, sender: evil, body: `'); drop table chat_messages; --` }),
    ),
    'published',
  );
  const [event] = await sub.waitForEvents(1);
  assert.equal(event!.channel, evil);
  const rows = await db.query('select sender, body from chat_messages where channel_id = $1', [evil]);
  assert.deepEqual(rows, [{ sender: evil, body: `'); drop table chat_messages; --` }]);
  assert.equal((await db.query("select to_regclass('public.chat_messages') is not null as ok"))[0]!.ok, true);
  const replay = await fetch(
    `${open.url}/v1/channels/${encodeURIComponent(evil)}/events?since=${encodeURIComponent("0'; drop table chat_messages; --")}`,
  );
  assert.ok(replay.status < 500);
});

test('with tokens: publish claim, channels, and claim-bound columns that cannot be forged', async () => {
  await db.query("select walcast.set_claim_column('public.chat_messages', 'sender', 'sub')");
  const t = await token({ sub: 'ada', channels: ['room-*'], publish: ['chat_messages'] });
  const c = await client(keyed, `?token=${t}`);
  await c.subscribe('room-claims');
  await waitFor(
    async () => {
      const r = await publish(c, 'chat_messages', { channel_id: 'room-claims', sender: 'mallory', body: 'forged' });
      return code(r) === 'invalid_row';
    },
    10_000,
    'the claim binding to apply',
  );
  assert.equal(code(await publish(c, 'chat_messages', { channel_id: 'room-claims', body: 'signed' })), 'published');
  const events = await c.waitFor(
    (m) => m.filter((x) => x.type === 'event' && x.op !== 'truncate' && x.row.body === 'signed')[0],
  );
  assert.equal(events.type === 'event' && events.op !== 'truncate' && events.row.sender, 'ada');
  assert.equal(code(await publish(c, 'presence', { channel_id: 'room-claims', user_id: 'ada' })), 'forbidden');
  assert.equal(code(await publish(c, 'chat_messages', { channel_id: 'lobby', body: 'elsewhere' })), 'forbidden');
  const reader = await client(keyed, `?token=${await token({ sub: 'bob', channels: ['room-*'] })}`);
  assert.equal(
    code(await publish(reader, 'chat_messages', { channel_id: 'room-claims', body: 'no claim' })),
    'forbidden',
  );
  const noSub = await client(keyed, `?token=${await token({ channels: ['room-*'], publish: ['*'] })}`);
  // No sub: claim columns cannot be filled from the token, and the client may not set them.
  assert.equal(code(await publish(noSub, 'chat_messages', { channel_id: 'room-claims', body: 'x' })), 'forbidden');
  assert.equal(
    code(await publish(noSub, 'chat_messages', { channel_id: 'room-claims', sender: 'mallory', body: 'x' })),
    'invalid_row',
  );
  const forged = await db.query("select count(*)::int as n from chat_messages where sender = 'mallory'");
  assert.equal(forged[0]!.n, 0);
  await db.query("select walcast.set_claim_column('public.chat_messages', 'sender', null)");
});
