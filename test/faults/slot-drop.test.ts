// An operator drops the slot while walcast streams: the relay recreates it
// with a new epoch, logs it, closes its clients with 4010, and positions from
// before get recovered:false, never a wrong replay. Delivery then goes on.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { CLOSE } from '../../client/protocol.ts';
import { createLogger } from '../../relay/log.ts';
import { TestClient, waitFor, relayFixture } from '../helpers/relay.ts';
import type { Relay } from '../../relay/relay.ts';

const fx = relayFixture();
const { db } = fx;
let relay: Relay;
const logLines: { level: number; msg: string; slot?: string; reason?: string }[] = [];
before(async () => {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) logLines.push(JSON.parse(line));
      done();
    },
  });
  relay = await fx.relay({}, undefined, createLogger('info', sink));
});
async function chat(body: string): Promise<void> {
  await db.query(`insert into chat_messages (channel_id, sender, body) values ('ops', 'o', $1)`, [body]);
}

async function dropSlot(slot: string): Promise<void> {
  // An active slot cannot be dropped: end its walsender first, and try again
  // until the drop wins the race against the relay's reconnect.
  for (let i = 0; i < 200; i++) {
    await db.query(
      'select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = $1 and active_pid is not null',
      [slot],
    );
    const dropped = await db.query('select pg_drop_replication_slot($1)', [slot]).then(
      () => true,
      (err: { code?: string }) => {
        if (err.code !== '55006') throw err; // 55006: the slot is active again
        return false;
      },
    );
    if (dropped) return;
  }
  throw new Error(`could not drop slot ${slot}`);
}

test('a dropped slot is recreated and logged; clients are closed with 4010 and old positions get recovered:false', async () => {
  const c = await TestClient.connect(relay.wsUrl);
  await c.subscribe('ops');
  await chat('before');
  const [first] = await c.waitForEvents(1);
  const epochBefore = first!.position.split('-')[2];

  await dropSlot(relay.slot);
  const closed = await c.waitClosed(20_000);
  assert.equal(closed.code, CLOSE.streamReset);
  assert.match(closed.reason, /slot was recreated/);
  await waitFor(() => relay.internals.stream.state === 'streaming', 20_000, 'the stream to come back');
  const recreated = logLines.find((l) => l.msg.startsWith('replication slot recreated'));
  assert.ok(recreated, 'the recreation is logged');
  assert.equal(recreated.slot, relay.slot);
  assert.equal(recreated.level, 40, 'as a warning');
  const [slotRow] = await db.query('select 1 from pg_replication_slots where slot_name = $1', [relay.slot]);
  assert.ok(slotRow, 'the slot exists again');

  const again = await TestClient.connect(relay.wsUrl);
  const reply = await again.subscribe('ops', { since: first!.position });
  assert.equal(
    reply.type === 'subscribed' && reply.recovered,
    false,
    'a position from the old epoch cannot be resumed',
  );
  assert.equal(again.events().length, 0, 'nothing replayed');
  await chat('after');
  const [next] = await again.waitForEvents(1);
  assert.equal(next!.row.body, 'after');
  assert.notEqual(next!.position.split('-')[2], epochBefore, 'positions carry the new epoch');
  again.close();
});
