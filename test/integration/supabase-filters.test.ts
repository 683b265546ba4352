// postgres_changes filters beyond eq/in with the real supabase-js: like,
// ilike, is, a not. negation and several filters ANDed, evaluated per candidate row on the relay,
// each binding receiving exactly the rows its filter matches.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { SupabaseClient } from '@supabase/supabase-js';
import { relayFixture, waitFor } from '../helpers/relay.ts';
import { Inbox, subscribed, supabaseClient } from '../helpers/supabase.ts';

const fx = relayFixture();
const clients: SupabaseClient[] = [];
after(async () => {
  for (const c of clients) await c.removeAllChannels();
});

type Row = { new: { name: string | null; done: boolean | null } };

test('like, ilike, is.null, not.is.null and filters joined by commas: each binding gets the rows its pattern matches, nothing else', async () => {
  const relay = await fx.relay();
  await fx.db.query('create table tasks (id serial primary key, room text not null, name text, done boolean)');
  await fx.db.query("select walcast.register_table('public.tasks', channel_column => 'room')");
  const registered = () => relay.internals.dispatcher.registrationList().some((r) => r.table === 'tasks');
  await waitFor(registered, 10_000, 'the relay to see tasks registered');
  const sb = supabaseClient(relay.url, 'anon-key-unused-in-open-mode', { vsn: '2.0.0' });
  clients.push(sb);
  const ilike = new Inbox<Row>();
  const like = new Inbox<Row>();
  const isNull = new Inbox<Row>();
  const notNull = new Inbox<Row>();
  const and = new Inbox<Row>();
  const on = (filter: string) => ({ event: 'INSERT', schema: 'public', table: 'tasks', filter }) as const;
  const ch = sb
    .channel('filters')
    .on('postgres_changes', on('name=ilike.%ada%'), (p) => ilike.push(p as unknown as Row))
    .on('postgres_changes', on('name=like.B_b'), (p) => like.push(p as unknown as Row))
    .on('postgres_changes', on('done=is.null'), (p) => isNull.push(p as unknown as Row))
    .on('postgres_changes', on('done=not.is.null'), (p) => notNull.push(p as unknown as Row))
    .on('postgres_changes', on('name=like.Bob%, room=eq.r,done=eq.false'), (p) => and.push(p as unknown as Row));
  await subscribed(ch);
  await fx.db.query(`insert into tasks (room, name, done) values
    ('r', 'Ada L', true), ('r', 'bob', null), ('r', 'Bob', false), ('r', 'Bobby', false), ('r', null, false)`);
  await fx.db.query("insert into tasks (room, name, done) values ('r', 'marker ADA', null)");
  // The marker is the last row and matches both ilike and is.null: the socket delivers in commit order, so
  // what every binding got before it is all it gets.
  await ilike.until((i) => i.some((r) => r.new.name === 'marker ADA'), 'the marker (ilike)');
  await isNull.until((i) => i.some((r) => r.new.name === 'marker ADA'), 'the marker (is.null)');
  assert.deepEqual(
    ilike.items.map((r) => r.new.name),
    ['Ada L', 'marker ADA'],
  );
  assert.deepEqual(
    isNull.items.map((r) => r.new.name),
    ['bob', 'marker ADA'],
  );
  assert.deepEqual(
    like.items.map((r) => r.new.name),
    ['Bob'],
  );
  assert.deepEqual(
    notNull.items.map((r) => r.new.name),
    ['Ada L', 'Bob', 'Bobby', null],
  );
  assert.deepEqual(
    and.items.map((r) => r.new.name),
    ['Bob', 'Bobby'],
  );
});
