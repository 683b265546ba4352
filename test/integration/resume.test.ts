// Resume with `since`, snapshots on subscribe, and the HTTP replay: what a
// client that drops and comes back, or arrives late, is owed.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { type TestClient, relayFixture } from '../helpers/relay.ts';
import type { Relay } from '../../relay/relay.ts';
import type { EventMessage } from '../../client/protocol.ts';

const fx = relayFixture();
const { db } = fx;
let relay: Relay;

async function client(r: Relay = relay): Promise<TestClient> {
  return fx.client(r);
}

const chat = (channel: string, body: string) =>
  db.query(`insert into chat_messages (channel_id, sender, body) values ($1, 's', $2)`, [channel, body]);

before(async () => {
  relay = await fx.relay({ recoveryEvents: 50 });
});

test('since within the window: the missed events in order, then live, no gap and no duplicate', async () => {
  const first = await client();
  await first.subscribe('r1');
  await chat('r1', 'a');
  await chat('r1', 'b');
  const seen = await first.waitForEvents(2);
  first.close();
  await first.waitClosed();
  await chat('r1', 'c');
  await chat('other', 'x');
  await chat('r1', 'd');
  const back = await client();
  const reply = await back.subscribe('r1', { since: seen[1]!.position });
  assert.equal(reply.type === 'subscribed' && reply.recovered, true);
  await chat('r1', 'e');
  const events = await back.waitForEvents(3);
  assert.deepEqual(
    events.map((e) => e.row.body),
    ['c', 'd', 'e'],
  );
  const positions = events.map((e) => e.position);
  assert.deepEqual([...positions].sort(), positions);
  assert.ok(positions[0]! > seen[1]!.position);
});

test('since from before the window, from another epoch, or garbage: recovered false and nothing replayed', async () => {
  const c = await client();
  await c.subscribe('r2');
  await chat('r2', 'first');
  const [firstEvent] = await c.waitForEvents(1);
  for (let i = 0; i < 60; i++) await chat('r2', `n${i}`); // the window keeps 50 per channel
  await c.waitForEvents(61);
  const late = await client();
  const reply = await late.subscribe('r2', { since: firstEvent!.position });
  assert.equal(reply.type === 'subscribed' && reply.recovered, false);
  const otherEpoch = firstEvent!.position.replace(/-[0-9a-z]+$/, '-zzzz');
  const r2 = await late.request({ type: 'subscribe', id: 'e', channel: 'r2b', since: otherEpoch });
  assert.equal(r2.type === 'subscribed' && r2.recovered, false);
  const r3 = await late.request({ type: 'subscribe', id: 'g', channel: 'r2c', since: 'garbage' });
  assert.equal(r3.type === 'subscribed' && r3.recovered, false);
  await chat('r2', 'live');
  const events = await late.waitForEvents(1);
  assert.deepEqual(
    events.map((e) => e.row.body),
    ['live'],
    'no partial replay, only live',
  );
});

test('the HTTP replay returns the same events as JSON, paged by limit', async () => {
  const c = await client();
  await c.subscribe('r3');
  await chat('r3', 'one');
  const [start] = await c.waitForEvents(1);
  for (const b of ['two', 'three', 'four']) await chat('r3', b);
  const ws = await c.waitForEvents(4);
  const url = (since: string, limit?: number) =>
    `${relay.url}/v1/channels/r3/events?since=${encodeURIComponent(since)}${limit ? `&limit=${limit}` : ''}`;
  const page1 = (await (await fetch(url(start!.position, 2))).json()) as {
    recovered: boolean;
    more: boolean;
    position: string;
    events: EventMessage[];
  };
  assert.equal(page1.recovered, true);
  assert.equal(page1.more, true);
  assert.deepEqual(
    page1.events.map((e) => e.row.body),
    ['two', 'three'],
  );
  const page2 = (await (await fetch(url(page1.position))).json()) as { more: boolean; events: EventMessage[] };
  assert.equal(page2.more, false);
  assert.deepEqual(
    page2.events.map((e) => e.row.body),
    ['four'],
  );
  assert.deepEqual([...page1.events, ...page2.events], ws.slice(1), 'identical to what the socket delivered');
  const gone = (await (await fetch(url(`0000000000000000-00000000-${start!.position.split('-')[2]}`))).json()) as {
    recovered: boolean;
    events: unknown[];
  };
  assert.equal(gone.recovered, false);
  assert.deepEqual(gone.events, []);
  const bad = await fetch(`${relay.url}/v1/channels/r3/events`);
  assert.equal(bad.status, 400);
  assert.equal(((await bad.json()) as { code: string }).code, 'bad_request');
});

test('snapshot: the current state rows, then live; the newest N of event tables', async () => {
  await db.query(
    `insert into presence (channel_id, user_id, name) values ('s1', 'u1', 'Ada'), ('s1', 'u2', 'Bob'), ('s2', 'u3', 'Cy')`,
  );
  await db.query(`insert into call_state (session_id, key, value) values ('s1', 'muted', 'true')`);
  for (let i = 1; i <= 5; i++) await chat('s1', `m${i}`);
  const c = await client();
  const reply = await c.subscribe('s1', { snapshot: true, limit: 3 });
  assert.equal(reply.type === 'subscribed' && reply.snapshot, 6, 'subscribed counts the snapshot rows that follow');
  const snap = await c.waitForEvents(6);
  assert.ok(snap.every((e) => e.op === 'snapshot' && e.channel === 's1'));
  const byTable = (t: string) => snap.filter((e) => e.table === t).map((e) => e.row);
  assert.deepEqual(
    byTable('presence')
      .map((r) => r.user_id)
      .sort(),
    ['u1', 'u2'],
  );
  assert.deepEqual(
    byTable('call_state').map((r) => [r.key, r.value]),
    [['muted', true]],
  );
  assert.deepEqual(
    byTable('chat_messages').map((r) => r.body),
    ['m3', 'm4', 'm5'],
    'the newest 3, oldest first',
  );
  assert.match(
    String(byTable('chat_messages')[0]?.created_at),
    /^\d{4}-\d\d-\d\dT[\d:.]+Z$/,
    'values encoded as in the stream',
  );
  await chat('s1', 'live');
  const all = await c.waitForEvents(7);
  assert.deepEqual([all[6]?.op, all[6]?.row.body], ['insert', 'live']);
  const positions = all.map((e) => e.position);
  assert.equal(new Set(positions).size, 7, 'positions are unique');
  assert.deepEqual([...positions].sort(), positions, 'and ordered');
});

test('snapshot under concurrent writes: every row once, none lost between the read and the stream', async () => {
  const writer = (async () => {
    for (let i = 0; i < 150; i++)
      await db.query(`insert into presence (channel_id, user_id, name) values ('busy', $1, 'n')`, [`u${i}`]);
  })();
  await new Promise((r) => setTimeout(r, 30));
  const c = await client();
  await c.subscribe('busy', { snapshot: true, tables: ['presence'] });
  await writer;
  await db.query(`insert into presence (channel_id, user_id, name) values ('busy', 'last', 'n')`);
  await c.waitFor(() => (c.events().some((e) => e.row.user_id === 'last') ? true : undefined));
  const ids = c.events().map((e) => e.row.user_id as string);
  assert.equal(new Set(ids).size, ids.length, `no row twice (${ids.length} rows)`);
  assert.deepEqual(
    [...ids].sort(),
    [...Array.from({ length: 150 }, (_, i) => `u${i}`), 'last'].sort(),
    'no row missing',
  );
});

test('since and snapshot together: replay when possible, otherwise a fresh snapshot with recovered false', async () => {
  await db.query(`insert into call_state (session_id, key, value) values ('s3', 'k', '1')`);
  const c = await client();
  const reply = await c.subscribe('s3', { since: 'stale', snapshot: true });
  assert.equal(reply.type === 'subscribed' && reply.recovered, false);
  const [e] = await c.waitForEvents(1);
  assert.equal(e?.op, 'snapshot');
  assert.equal(e?.row.value, 1);
});
