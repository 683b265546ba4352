// The relay is killed with SIGKILL while rows are inserted at a steady rate;
// a new relay process takes over the slot, and a client that resumes from
// its last position has every row exactly once, in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { uniqueName } from '../helpers/postgres.ts';
import { TestClient, relayFixture, waitFor } from '../helpers/relay.ts';

const fx = relayFixture();
const { db } = fx;

test('SIGKILL under steady inserts: after restart, resuming clients have every row exactly once, in order', async () => {
  const slot = uniqueName('kill_slot');
  const args = ['--database-url', db.url, '--slot', slot, '--example', 'true'];
  const first = await fx.spawn(args);
  const received: { body: string; position: string }[] = [];
  const track = (c: TestClient) =>
    c.ws.on('message', (d) => {
      const m = JSON.parse(d.toString());
      if (m.type === 'event') received.push({ body: m.row.body, position: m.position });
    });
  const c1 = await TestClient.connect(first.wsUrl);
  track(c1);
  await c1.subscribe('steady');

  let inserting = true;
  const inserter = (async () => {
    for (let i = 0; inserting; i++) {
      await db.query(`insert into chat_messages (channel_id, sender, body) values ('steady', 'load', $1)`, [String(i)]);
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  await waitFor(() => received.length >= 100, 20_000, '100 rows before the kill');
  first.child.kill('SIGKILL');
  await c1.waitClosed();
  const lastSeen = received[received.length - 1]!.position;
  await new Promise((r) => setTimeout(r, 300)); // rows keep coming while no relay runs

  const second = await fx.spawn(args);
  const c2 = await TestClient.connect(second.wsUrl);
  track(c2);
  const reply = await c2.subscribe('steady', { since: lastSeen });
  assert.equal(reply.type === 'subscribed' && reply.recovered, true, 'resumed within the window');
  await new Promise((r) => setTimeout(r, 500));
  inserting = false;
  await inserter;

  const committed = (
    await db.query<{ body: string }>(`select body from chat_messages where channel_id = 'steady' order by id`)
  ).map((r) => r.body);
  await waitFor(() => received.length >= committed.length, 30_000, `all ${committed.length} rows`);
  // A marker row last: events arrive in commit order, so a duplicate would be before it.
  await db.query(`insert into chat_messages (channel_id, sender, body) values ('steady', 'marker', 'end')`);
  await waitFor(() => received.some((r) => r.body === 'end'), 30_000, 'the marker row');
  assert.deepEqual(
    received.map((r) => r.body),
    [...committed, 'end'],
    'every committed row exactly once, in commit order',
  );
  const positions = received.map((r) => r.position);
  assert.deepEqual([...positions].sort(), positions);
  c2.close();
  second.child.kill('SIGTERM');
  assert.equal(await second.exited, 0);
});
