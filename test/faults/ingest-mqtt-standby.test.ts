// Only the active relay ingests: with a hot standby on the same slot, the
// broker sees one walcast connection (its log says who connected), every
// message is one row; when the active relay is killed, the standby takes
// over, connects with the same persistent session and ingests what came
// meanwhile.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { uniqueName } from '../helpers/postgres.ts';
import { relayFixture, waitFor } from '../helpers/relay.ts';
import { startMosquitto } from '../helpers/mqtt.ts';

const fx = relayFixture();
const { db } = fx;

const CLIENT_ID = 'walcast-standby-test';

test('a standby does not ingest; after it takes over it does, from the same session', async () => {
  const broker = await startMosquitto();
  fx.cleanup(() => broker.stop());
  const connects = async () => (await broker.log()).split('\n').filter((l) => l.includes(` as ${CLIENT_ID} `)).length;
  const args = ['--database-url', db.url, '--slot', uniqueName('ingest_standby'), '--example', 'true'];
  const active = await fx.spawn(args);
  const standby = await fx.spawn(args);
  await db.query(`create table standby_rows (id bigserial primary key, seq int not null)`);
  await db.query(`select walcast.add_broker('sb', $1, client_id => $2)`, [broker.url, CLIENT_ID]);
  await db.query(`select walcast.add_flow('sb', 'sb', 'standby/t', 'insert', 'public.standby_rows')`);
  await waitFor(async () => (await connects()) === 1, 15_000, 'the active relay connected to the broker');

  const publisher = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
  fx.cleanup(() => publisher.endAsync());
  const send = (from: number, to: number) =>
    Promise.all(
      Array.from({ length: to - from }, (_, i) =>
        publisher.publishAsync('standby/t', JSON.stringify({ seq: from + i }), { qos: 1 }),
      ),
    );
  // Warm-up messages (seq 1000, perhaps several) are left out.
  const seqs = async () =>
    (await db.query<{ seq: number }>(`select seq from standby_rows where seq < 1000 order by seq`)).map((r) => r.seq);
  const warm = async () => (await db.query(`select 1 from standby_rows where seq = 1000`)).length > 0;
  // Subscribed once the first messages arrive; the last one is the marker (a topic's messages arrive in order).
  await waitFor(
    async () => {
      await send(1000, 1001);
      return warm();
    },
    15_000,
    'the flow running',
  );
  await send(0, 200);
  await waitFor(async () => (await seqs()).includes(199), 15_000, 'the marker message');
  assert.deepEqual(
    await seqs(),
    Array.from({ length: 200 }, (_, i) => i),
    'each message once: one relay ingests',
  );
  assert.equal(await connects(), 1, 'the standby never connected to the broker');

  active.child.kill('SIGKILL');
  await active.exited;
  await send(200, 400); // while no relay runs: the broker keeps them for the persistent session
  await waitFor(async () => (await seqs()).includes(399), 60_000, 'the standby took over and ingested');
  const after = await seqs();
  assert.deepEqual(
    [...new Set(after)],
    Array.from({ length: 400 }, (_, i) => i),
    'nothing lost across the takeover',
  );
  assert.equal(await connects(), 2);
  standby.child.kill('SIGTERM');
  assert.equal(await standby.exited, 0);
});
