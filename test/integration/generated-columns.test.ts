// Generated columns: live events and snapshot rows have the same shape. On
// PostgreSQL 18 walcast's publication sends stored generated columns; where
// the server does not (before 18, or a publication without
// publish_generated_columns, as here after ALTER PUBLICATION), they are left
// out of both and listed in `omitted`. register_table says which it is.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { relayFixture, type TestClient } from '../helpers/relay.ts';
import type { EventMessage } from '../../client/protocol.ts';

const fx = relayFixture();

async function register(): Promise<string[]> {
  const client = new pg.Client({ connectionString: fx.db.url });
  await client.connect();
  const notices: string[] = [];
  client.on('notice', (n) => notices.push(`${n.message} ${n.detail ?? ''}`));
  try {
    await client.query(`select walcast.register_table('public.orders', channel_column => 'ch')`);
  } finally {
    await client.end();
  }
  return notices.filter((n) => n.includes('generated columns'));
}

/** A live insert and a snapshot row of the same table, as one client sees them. */
async function liveAndSnapshot(c: TestClient, channel: string): Promise<[EventMessage, EventMessage]> {
  await c.subscribe(channel);
  await fx.db.query(`insert into orders (ch, qty, price) values ($1, 3, 7)`, [channel]);
  const [live] = await c.waitForEvents(1);
  await fx.db.query(`insert into orders (ch, qty, price) values ($1, 3, 7)`, [`${channel}-snap`]);
  const reply = await c.subscribe(`${channel}-snap`, { snapshot: true });
  assert.equal(reply.type === 'subscribed' && reply.snapshot, 1);
  const snapshot = (await c.waitFor((ms) =>
    ms.find((m): m is EventMessage => m.type === 'event' && m.op === 'snapshot'),
  ))!;
  return [live!, snapshot];
}

test('PostgreSQL 18: stored generated columns are in live events and snapshot rows', async () => {
  const relay = await fx.relay(); // installs the walcast schema; the registration below reaches it through the stream
  await fx.db.query(`create table orders (id int generated always as identity primary key, ch text not null,
    qty int not null, price int not null, total int generated always as (qty * price) stored)`);
  const notices = await register();
  assert.match(notices.join(), /generated columns total of public.orders are sent/);
  const [live, snapshot] = await liveAndSnapshot(await fx.client(relay), 'o18');
  assert.equal(live.row.total, 21);
  assert.deepEqual(Object.keys(snapshot.row).sort(), Object.keys(live.row).sort());
  assert.equal(live.omitted, undefined);
  assert.equal(snapshot.omitted, undefined);
});

test('a server that does not publish them: left out of events and snapshot rows alike, listed in omitted', async () => {
  await fx.db.query(`alter publication realtime_events set (publish_generated_columns = none)`);
  const notices = await register();
  assert.match(notices.join(), /generated columns total of public.orders are not sent .*list them in "omitted"/);
  const relay = await fx.relay();
  const [live, snapshot] = await liveAndSnapshot(await fx.client(relay), 'o17');
  assert.equal('total' in live.row, false);
  assert.deepEqual(live.omitted, ['total']);
  assert.deepEqual(
    Object.keys(snapshot.row).sort(),
    Object.keys(live.row).sort(),
    'the same shape live and in a snapshot',
  );
  assert.deepEqual(snapshot.omitted, ['total']);
});
