// relay/ingest/writer.ts against a real PostgreSQL, without a broker: the
// batches it makes (group commit, the linger under load) and that every
// message it was given is committed and told so, the last one of a burst too.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { relayFixture } from '../helpers/relay.ts';
import { migrate } from '../../relay/db/migrate.ts';
import { readCatalog, type Flow } from '../../relay/ingest/catalog.ts';
import { decode } from '../../relay/ingest/decode.ts';
import { BatchWriter, LINGER_FROM, LINGER_UNTIL, type QueuedWrite } from '../../relay/ingest/writer.ts';
import { silentLogger } from '../../relay/log.ts';

const fx = relayFixture();
const { db } = fx;
let flow: Flow;

before(async () => {
  await fx.ready();
  await migrate(db.pool, {});
  await db.query(`create table writer_rows (id bigserial primary key, device text not null, seq int not null)`);
  await db.query(`select walcast.add_broker('nowhere', 'mqtt://127.0.0.1:1')`);
  await db.query(`select walcast.add_flow('w', 'nowhere', 'w/{device}', 'insert', 'public.writer_rows')`);
  flow = (await readCatalog(db.pool)).flows.find((f) => f.name === 'w')!;
});

/** A writer whose batches are recorded, and a way to give it messages that resolve when acknowledged. */
function writer() {
  const batches: number[] = [];
  const w = new BatchWriter({
    pool: db.pool,
    logger: silentLogger,
    broker: 'nowhere',
    onCommitted: (items) => batches.push(items.length),
  });
  let seq = 0;
  const push = (n: number) =>
    Promise.all(
      Array.from({ length: n }, () => {
        const topic = 'w/dev';
        const payload = Buffer.from(JSON.stringify({ seq: seq++ }));
        return new Promise<void>((done) => {
          const item: QueuedWrite = {
            flow,
            topic,
            payload,
            receivedAt: Date.now(),
            decoded: decode(flow, topic, payload, flow.filter.match(topic)!),
            pending: { done },
          };
          w.push(item);
        });
      }),
    );
  return { w, batches, push };
}

test('after a burst, a writer lingers for more and then commits: every message acknowledged, none held', async () => {
  await db.query('truncate writer_rows');
  const { w, batches, push } = writer();
  assert.ok(100 >= LINGER_FROM);
  await push(100); // one turn: one batch of 100, at least LINGER_FROM, so the writer is now "under load"
  assert.deepEqual(batches, [100]);
  // The next message finds an idle writer under load: it lingers, then commits without more arriving.
  await push(1);
  assert.deepEqual(batches, [100, 1]);
  // An idle writer is no longer under load after a small batch: 3 more go at once, as one batch.
  await push(3);
  assert.deepEqual(batches, [100, 1, 3]);
  const [count] = await db.query<{ n: string }>('select count(*) as n from writer_rows');
  assert.equal(count?.n, '104');
  w.stop();
});

test('a linger ends as soon as LINGER_UNTIL messages wait; the rest follow in the next batch', async () => {
  await db.query('truncate writer_rows');
  const { w, batches, push } = writer();
  await push(100);
  const one = push(1); // the writer lingers with it
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(batches, [100], 'the message is held for more');
  // The LINGER_UNTIL-th waiting message starts the batch; the 51 after it gather while it commits.
  await Promise.all([one, push(LINGER_UNTIL + 50)]);
  assert.deepEqual(batches, [100, LINGER_UNTIL, 51]);
  const [count] = await db.query<{ n: string }>('select count(*) as n from writer_rows');
  assert.equal(count?.n, String(100 + LINGER_UNTIL + 51));
  w.stop();
});
