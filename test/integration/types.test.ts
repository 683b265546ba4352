// Row values as clients see them: the encoding of docs/protocol.md, through
// the real decoder and stream.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestClient, relayFixture } from '../helpers/relay.ts';
import type { Relay } from '../../relay/relay.ts';

const fx = relayFixture();
const { db } = fx;
let relay: Relay;
let c: TestClient;

before(async () => {
  await db.query(`
    create table all_types (
      id serial primary key, channel text not null,
      i2 smallint, i4 integer, i8 bigint, num numeric, f4 real, f8 double precision,
      b boolean, t text, vc varchar(10), j json, jb jsonb,
      ts timestamp, tstz timestamptz, d date, by bytea,
      ia integer[], ta text[], i8a bigint[], ja jsonb[], u uuid, n text
    )`);
  relay = await fx.relay({ example: false });
  await db.query(`select walcast.register_table('all_types', channel_column => 'channel')`);
  c = await TestClient.connect(relay.wsUrl);
  await c.subscribe('types');
});

test('every listed type has its JSON encoding', async () => {
  await db.query(`
    insert into all_types (channel, i2, i4, i8, num, f4, f8, b, t, vc, j, jb, ts, tstz, d, by, ia, ta, i8a, ja, u, n)
    values ('types', -7, 2147483647, 9223372036854775807, 3.14159265358979323846, 1.5, -2.25e-10,
      true, 'héllo "q"', 'v', '{"a":[1,2]}', '{"b": {"c": null}}',
      '2026-11-23 10:11:12.345678', '2026-11-23 10:11:12.345678+02', '2026-11-23', '\\x00ff41',
      '{1,NULL,3}', '{"a b","c,d"}', '{9007199254740993}', array['{"k":1}'::jsonb], 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', null)`);
  const [e] = await c.waitForEvents(1);
  assert.deepEqual(e?.row, {
    id: 1,
    channel: 'types',
    i2: -7,
    i4: 2147483647,
    i8: '9223372036854775807',
    num: '3.14159265358979323846',
    f4: 1.5,
    f8: -2.25e-10,
    b: true,
    t: 'héllo "q"',
    vc: 'v',
    j: { a: [1, 2] },
    jb: { b: { c: null } },
    ts: '2026-11-23T10:11:12.345678',
    tstz: '2026-11-23T08:11:12.345678Z',
    d: '2026-11-23',
    by: Buffer.from([0, 255, 0x41]).toString('base64'),
    ia: [1, null, 3],
    ta: ['a b', 'c,d'],
    i8a: ['9007199254740993'],
    ja: [{ k: 1 }],
    u: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    n: null,
  });
});

test('a schema change mid-stream is picked up without a restart', async () => {
  await db.query(`alter table all_types add column extra integer default 5`);
  await db.query(`alter table all_types alter column i4 type bigint`);
  await db.query(`insert into all_types (channel, i4, extra) values ('types', 42, 6)`);
  const events = await c.waitForEvents(2);
  assert.equal(events[1]?.row.extra, 6);
  assert.equal(events[1]?.row.i4, '42'); // now int8: a string
});
