// The Supabase door's pure parts: the Phoenix serializers (checked against
// realtime-js's own Serializer), filters, the binding index and the value
// encodings of postgres_changes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import RealtimeSerializer from '@supabase/realtime-js/dist/main/lib/serializer.js';
import { decode, encodeMessage, encodeUserBroadcast, FrameError, vsnOf } from '../../relay/supabase/serializer.ts';
import {
  compileFilter,
  filterText,
  parseFilters,
  kindOf,
  likeMatches,
  likePattern,
  matches,
  normalise,
  parseFilter,
  type Filter,
} from '../../relay/supabase/filters.ts';
import { BindingIndex, bindingId, type Binding } from '../../relay/supabase/bindings.ts';
import { changeJson, changeOf, dataJson, TOO_LARGE_ERROR, upstreamValue } from '../../relay/supabase/changes.ts';
import type { EventMessage } from '../../client/protocol.ts';
import { decodeMessage } from '../../relay/mqtt/messages.ts';
import {
  decodePresence,
  encodePresence,
  leaveDiff,
  MAX_PRESENCE_BYTES,
  presenceTooLarge,
  trackDiff,
} from '../../relay/supabase/presence.ts';
import { BROADCAST_TABLE, encodeBroadcast, SUPABASE_MESSAGE_PREFIX } from '../../relay/supabase/broadcast.ts';
import { decodeSupabaseMessage, supabaseMessageRoute } from '../../relay/supabase/messages.ts';
import { replayRequest } from '../../relay/supabase/replay.ts';
import { WalcastError } from '../../relay/errors.ts';

// The package's CJS default export, however the loader wraps it.
const Serializer = ((RealtimeSerializer as unknown as { default?: unknown }).default ??
  RealtimeSerializer) as new () => {
  encode(msg: object, cb: (out: string | ArrayBuffer) => void): void;
  decode(raw: string | ArrayBuffer, cb: (msg: Record<string, unknown>) => void): void;
};

function viaRealtime<T>(fn: (s: InstanceType<typeof Serializer>, done: (v: T) => void) => void): T {
  let out: T | undefined;
  fn(new Serializer(), (v) => (out = v));
  return out as T;
}

test('vsn: none means 1.0.0, 2.0.0 is known, anything else is refused', () => {
  assert.equal(vsnOf(null), '1.0.0');
  assert.equal(vsnOf('2.0.0'), '2.0.0');
  assert.equal(vsnOf('3.0.0'), null);
});

test('vsn 2.0.0: arrays from realtime-js decode, and what is encoded decodes in realtime-js', () => {
  const msg = { topic: 'realtime:room', event: 'phx_join', payload: { config: {} }, ref: '1', join_ref: '1' };
  const wire = viaRealtime<string>((s, done) => s.encode(msg, (o) => done(o as string)));
  assert.deepEqual(decode(Buffer.from(wire), false, '2.0.0'), msg);
  const back = viaRealtime<Record<string, unknown>>((s, done) => s.decode(encodeMessage('2.0.0', msg), done));
  assert.deepEqual(back, msg);
});

test('vsn 2.0.0: a binary user broadcast push from realtime-js decodes into a broadcast', () => {
  const msg = {
    topic: 'realtime:room',
    event: 'broadcast',
    payload: { type: 'broadcast', event: 'cursor', payload: { x: 1 } },
    ref: '7',
    join_ref: '3',
  };
  const wire = viaRealtime<ArrayBuffer>((s, done) => s.encode(msg, (o) => done(o as ArrayBuffer)));
  assert.ok(wire instanceof ArrayBuffer);
  assert.deepEqual(decode(Buffer.from(wire), true, '2.0.0'), msg);
  assert.throws(() => decode(Buffer.from(wire), true, '1.0.0'), FrameError);
});

test('a kind 4 user broadcast decodes in realtime-js', () => {
  const bytes = encodeUserBroadcast('realtime:room', 'cursor', { x: 2 });
  const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length);
  const got = viaRealtime<Record<string, unknown>>((s, done) => s.decode(ab as ArrayBuffer, done));
  assert.deepEqual(got, {
    join_ref: null,
    ref: null,
    topic: 'realtime:room',
    event: 'broadcast',
    payload: { type: 'broadcast', event: 'cursor', payload: { x: 2 } },
  });
});

test('bad frames are FrameErrors that say what is wrong', () => {
  assert.throws(() => decode(Buffer.from('{'), false, '1.0.0'), /not JSON/);
  assert.throws(() => decode(Buffer.from('{"topic":1}'), false, '1.0.0'), /string topic and event/);
  assert.throws(() => decode(Buffer.from('{"topic":"t","event":"e"}'), false, '2.0.0'), /arrays/);
  assert.throws(() => decode(Buffer.from([9, 0, 0, 0, 0, 0, 1]), true, '2.0.0'), /kind 3/);
  assert.throws(() => decode(Buffer.from([3, 5, 0, 0, 0, 0, 1]), true, '2.0.0'), /shorter/);
});

test('filters: every operator parses; others are refused naming what works', () => {
  assert.deepEqual(parseFilter('room_id=eq.42'), { column: 'room_id', op: 'eq', values: ['42'] });
  assert.deepEqual(parseFilter('id=in.(1,2,"a,b")'), { column: 'id', op: 'in', values: ['1', '2', 'a,b'] });
  for (const op of ['neq', 'lt', 'lte', 'gt', 'gte']) assert.equal((parseFilter(`n=${op}.5`) as Filter).op, op);
  for (const op of ['like', 'ilike', 'is']) assert.equal((parseFilter(`n=${op}.x`) as Filter).op, op);
  assert.match(parseFilter('name=fts.a') as string, /not supported; supported: eq, neq, .*like, ilike, is/);
  assert.deepEqual(parseFilter('s=not.eq.done'), { column: 's', op: 'eq', values: ['done'], negated: true });
  assert.deepEqual(parseFilter('id=not.in.(1,2)'), { column: 'id', op: 'in', values: ['1', '2'], negated: true });
  assert.match(parseFilter('s=not.fts.a') as string, /"fts" is not supported.*each also as not\.<op>/);
  assert.match(parseFilter('nofilter') as string, /column=op.value/);
  assert.deepEqual(parseFilters('a=eq.1, b=gt.2'), [
    { column: 'a', op: 'eq', values: ['1'] },
    { column: 'b', op: 'gt', values: ['2'] },
  ]);
  assert.deepEqual(parseFilters('a=eq."x,y",id=in.(1,2)'), [
    { column: 'a', op: 'eq', values: ['x,y'] },
    { column: 'id', op: 'in', values: ['1', '2'] },
  ]);
  assert.match(parseFilters('a=eq.1,,b=eq.2') as string, /empty part/);
  assert.match(parseFilters(Array.from({ length: 11 }, (_, i) => `c${i}=eq.1`).join(',')) as string, /at most 10/);
  assert.match(parseFilter('id=in.1,2') as string, /in takes a list/);
});

test('filters compare as upstream casts them: numbers numerically, booleans, text; NULL matches nothing', () => {
  const f = (text: string, kind: 'number' | 'text' | 'boolean'): Filter => {
    const p = parseFilter(text) as Filter;
    return { ...p, values: p.values.map((v) => normalise(v, kind)!) };
  };
  assert.equal(kindOf('int4'), 'number');
  assert.equal(kindOf('bool'), 'boolean');
  assert.equal(kindOf('timestamptz'), 'text');
  assert.ok(matches(f('n=eq.1.0', 'number'), 'number', 1));
  assert.ok(matches(f('n=gt.9', 'number'), 'number', 10));
  assert.ok(!matches(f('n=lt.9', 'number'), 'number', 10));
  assert.ok(matches(f('n=lte.10', 'number'), 'number', 10));
  assert.ok(matches(f('n=gte.10', 'number'), 'number', 10));
  assert.ok(matches(f('t=lt.2026-02-01', 'text'), 'text', '2026-01-31T23:00:00+00:00'));
  assert.ok(matches(f('b=eq.t', 'boolean'), 'boolean', true));
  assert.ok(matches(f('s=neq.a', 'text'), 'text', 'b'));
  assert.ok(!matches(f('s=neq.a', 'text'), 'text', null));
  assert.ok(matches(f('s=in.(a,b)', 'text'), 'text', 'b'));
  assert.equal(normalise('abc', 'number'), null);
});

test('like and ilike are SQL patterns (% any run, _ one character, \\ escapes); is matches NULL and booleans', () => {
  const f = (text: string, kind: 'number' | 'text' | 'boolean'): Filter | string =>
    compileFilter(parseFilter(text) as Filter, kind, 'c (type)');
  const like = f('name=like.A%c_', 'text') as Filter;
  assert.ok(matches(like, 'text', 'Abbcd'));
  assert.ok(matches(like, 'text', 'Acx'));
  assert.ok(!matches(like, 'text', 'abbcd'), 'like is case-sensitive');
  assert.ok(!matches(like, 'text', 'Abbc'), '_ is exactly one character');
  assert.ok(!matches(like, 'text', null), 'NULL matches no like');
  const ilike = f('name=ilike.%ADA%', 'text') as Filter;
  assert.ok(matches(ilike, 'text', 'hello ada lovelace'));
  assert.ok(!matches(ilike, 'text', 'hello bob'));
  assert.ok(likeMatches(likePattern('100\\%', false), '100%'));
  assert.ok(!likeMatches(likePattern('100\\%', false), '1000'));
  assert.ok(likeMatches(likePattern('a.(b)*', false), 'a.(b)*'), 'regular expression characters are literal');
  assert.ok(likeMatches(likePattern('%', false), ''));
  assert.ok(likeMatches(likePattern('é_', true), 'Éx'), 'characters, not bytes; ilike folds case');
  // A hostile pattern stays linear-ish: no exponential backtracking.
  const started = Date.now();
  assert.ok(!likeMatches(likePattern('%a%a%a%a%a%a%a%a%a%a%b', false), 'a'.repeat(20_000)));
  assert.ok(Date.now() - started < 2000);
  assert.match(f(`name=like.${'x'.repeat(257)}`, 'text') as string, /at most 256 characters/);
  assert.match(f('n=like.1%', 'number') as string, /like compares text, and c \(type\) is a number column/);

  const isNull = f('name=is.null', 'text') as Filter;
  assert.ok(matches(isNull, 'text', null));
  assert.ok(!matches(isNull, 'text', 'x'));
  assert.ok(matches(f('b=is.TRUE', 'boolean') as Filter, 'boolean', true));
  assert.ok(!matches(f('b=is.false', 'boolean') as Filter, 'boolean', null));
  assert.ok(matches(f('b=is.unknown', 'boolean') as Filter, 'boolean', null));
  assert.match(f('name=is.true', 'text') as string, /not a boolean\) takes null/);
  assert.match(f('b=is.maybe', 'boolean') as string, /is takes null, true, false or unknown/);
});

test('not. negates as SQL NOT does: a NULL still matches nothing, but not.is.null matches every value', () => {
  const f = (text: string, kind: 'number' | 'text' | 'boolean') =>
    compileFilter(parseFilter(text) as Filter, kind, 'c') as Filter;
  assert.ok(matches(f('s=not.eq.done', 'text'), 'text', 'open'));
  assert.ok(!matches(f('s=not.eq.done', 'text'), 'text', 'done'));
  assert.ok(!matches(f('s=not.eq.done', 'text'), 'text', null));
  assert.ok(matches(f('n=not.in.(1,2)', 'number'), 'number', 3));
  assert.ok(!matches(f('n=not.gt.2', 'number'), 'number', 3));
  assert.ok(matches(f('s=not.like.A%', 'text'), 'text', 'bob'));
  assert.ok(matches(f('s=not.is.null', 'text'), 'text', ''));
  assert.ok(!matches(f('s=not.is.null', 'text'), 'text', null));
  assert.ok(matches(f('b=not.is.true', 'boolean'), 'boolean', null), 'NULL IS NOT TRUE');
  assert.equal(filterText(f('n=not.in.(1,2)', 'number')), 'n=not.in.(1,2)');
  for (const text of ['s=eq."a,b"', 's=in.("x,y",z)', 's=like."(%)"'])
    assert.deepEqual(parseFilters(filterText(parseFilter(text) as Filter)), [parseFilter(text)], `${text} round-trips`);
  const index = new BindingIndex<string>();
  const negated: Binding<string> = {
    id: 1,
    event: '*',
    table: 't',
    filter: f('room=not.eq.a', 'text'),
    kind: 'text',
    checkRows: false,
    soloKey: '1',
    owner: 'x',
  };
  index.add(negated);
  assert.deepEqual(index.match('t', 'INSERT', { room: 'b' }), [negated], 'a negated eq is checked, not looked up');
  assert.deepEqual(index.match('t', 'INSERT', { room: 'a' }), []);
  // Filters joined by commas: the index keys on the eq, the others are checked on what it finds.
  const both: Binding<string> = {
    ...negated,
    id: 2,
    filter: f('room=eq.a', 'text'),
    also: [{ filter: f('n=gt.5', 'number'), kind: 'number' }],
  };
  index.add(both);
  assert.deepEqual(index.match('t', 'INSERT', { room: 'a', n: 6 }), [both]);
  assert.deepEqual(index.match('t', 'INSERT', { room: 'a', n: 5 }), []);
});

test('the binding index: eq and in are looked up by value, the rest checked; events and tables respected', () => {
  const index = new BindingIndex<string>();
  const make = (
    owner: string,
    table: string,
    filter: string | null,
    event: Binding<string>['event'] = '*',
  ): Binding<string> => {
    const f = filter ? (parseFilter(filter) as Filter) : null;
    return {
      id: bindingId(event, 'public', table, filter ?? undefined),
      event,
      table,
      filter: f,
      kind: 'text',
      checkRows: false,
      soloKey: owner,
      owner,
    };
  };
  const eqA = make('eqA', 'chat', 'room=eq.a');
  const inAB = make('inAB', 'chat', 'room=in.(a,b)', 'INSERT');
  const gtM = make('gtM', 'chat', 'name=gt.m');
  const all = make('all', '*', null, 'DELETE');
  for (const b of [eqA, inAB, gtM, all]) index.add(b);
  const owners = (t: string, type: 'INSERT' | 'UPDATE' | 'DELETE', row: Record<string, unknown>) =>
    index
      .match(t, type, row)
      .map((b) => b.owner)
      .sort();
  assert.deepEqual(owners('chat', 'INSERT', { room: 'a', name: 'z' }), ['eqA', 'gtM', 'inAB']);
  assert.deepEqual(owners('chat', 'UPDATE', { room: 'b', name: 'a' }), []);
  assert.deepEqual(owners('chat', 'DELETE', { room: 'a', name: 'a' }), ['all', 'eqA']);
  assert.deepEqual(owners('other', 'INSERT', { room: 'a' }), []);
  assert.equal(index.size, 4);
  index.remove(inAB);
  index.remove(eqA);
  assert.deepEqual(owners('chat', 'INSERT', { room: 'a', name: 'z' }), ['gtM']);
  assert.equal(index.size, 2);
  assert.equal(bindingId('*', 'public', 'chat', 'room=eq.a'), eqA.id, 'equal bindings share their id');
});

test('values as upstream encodes them; a row over the limit keeps its small values and says Error 413', () => {
  assert.equal(upstreamValue('int8', '42'), 42);
  assert.equal(upstreamValue('int8', '9007199254740993'), '9007199254740993');
  assert.equal(upstreamValue('numeric', '1.50'), 1.5);
  assert.equal(upstreamValue('timestamptz', '2026-01-01T00:00:00.5Z'), '2026-01-01T00:00:00.5+00:00');
  assert.equal(upstreamValue('bytea', Buffer.from([1, 255]).toString('base64')), '\\x01ff');
  assert.deepEqual(upstreamValue('_int8', ['1', '2']), [1, 2]);
  const e: EventMessage = {
    type: 'event',
    channel: 'c',
    table: 'app.docs',
    op: 'update',
    position: 'p',
    commit_time: '2026-01-01T00:00:00Z',
    row: { id: '1', body: 'x'.repeat(1000) },
    old: { id: '1' },
  };
  const d = changeOf(e, [
    { name: 'id', type: 'int8' },
    { name: 'body', type: 'text' },
  ])!;
  assert.deepEqual(
    [d.schema, d.table, d.type, d.record, d.old_record],
    ['app', 'docs', 'UPDATE', { id: 1, body: 'x'.repeat(1000) }, { id: 1 }],
  );
  const small = JSON.parse(dataJson(d, 500));
  assert.deepEqual([small.record, small.errors], [{ id: 1 }, [TOO_LARGE_ERROR]]);
  assert.equal(changeOf({ ...e, op: 'delete', moved: 'out' }, []), null);
  assert.equal(changeOf({ ...e, op: 'insert', moved: 'in' }, [])!.type, 'UPDATE');
});

test("a change's data JSON is JSON.stringify's, byte for byte, for every kind of change", () => {
  const columns = [
    { name: 'id', type: 'int8' },
    { name: 'na"me', type: 'text' },
    { name: 'at', type: 'timestamptz' },
  ];
  const e: EventMessage = {
    type: 'event',
    channel: 'c',
    table: 'we"ird.t\\ble',
    op: 'insert',
    position: 'p',
    commit_time: '2026-01-01T00:00:00Z',
    row: { id: '9007199254740993', 'na"me': 'é \u2028 "q"', at: '2026-01-01T00:00:00.5Z' },
  };
  const changes = [
    e,
    { ...e, op: 'update', old: { id: '1' } },
    { ...e, op: 'update' },
    { ...e, op: 'delete' },
    { ...e, op: 'insert', moved: 'in' },
    { ...e, table: 'plain' },
  ] satisfies EventMessage[];
  for (const c of changes) {
    const d = changeOf(c, columns)!;
    assert.equal(changeJson(d), JSON.stringify(d), `${c.op} ${c.table}`);
    assert.equal(dataJson(d, 1 << 20), JSON.stringify(d));
  }
  // The columns JSON is kept per catalog read: a new read of the same table is serialised afresh.
  const d = changeOf(e, [{ name: 'id', type: 'int4' }])!;
  assert.equal(changeJson(d), JSON.stringify(d));
});

test('a broadcast in the stream is routed on its topic, and MQTT wildcard subscribers do not take it for theirs', () => {
  const content = Buffer.from(encodeBroadcast({ topic: 'room', event: 'e', payload: 'a string', sender: null }));
  assert.deepEqual(supabaseMessageRoute(SUPABASE_MESSAGE_PREFIX, content), { channel: 'room', table: BROADCAST_TABLE });
  assert.equal(supabaseMessageRoute('walcast.mqtt', content), undefined);
  assert.equal(decodeMessage(content), null);
});

test('presence: track, re-track and untrack give upstream diffs, carried on the stream under their topic', () => {
  const ada1 = { topic: 't', key: 'ada', meta: { x: 1, phx_ref: 'r1' } };
  const ada2 = { topic: 't', key: 'ada', meta: { x: 3, phx_ref: 'r2' } };
  assert.deepEqual(trackDiff(ada1, null), { joins: { ada: { metas: [{ x: 1, phx_ref: 'r1' }] } }, leaves: {} });
  assert.deepEqual(trackDiff(ada2, ada1), {
    joins: { ada: { metas: [{ x: 3, phx_ref: 'r2', phx_ref_prev: 'r1' }] } },
    leaves: { ada: { metas: [{ x: 1, phx_ref: 'r1' }] } },
  });
  assert.deepEqual(leaveDiff(ada2), { joins: {}, leaves: { ada: { metas: [{ x: 3, phx_ref: 'r2' }] } } });
  const content = Buffer.from(encodePresence({ topic: 'room', presence: leaveDiff(ada2) }));
  assert.deepEqual(supabaseMessageRoute(SUPABASE_MESSAGE_PREFIX, content), { channel: 'room', table: BROADCAST_TABLE });
  assert.equal(decodeSupabaseMessage(content)?.kind, 'presence');
  assert.equal(decodeMessage(content), null, 'MQTT wildcard subscribers do not take it');
  assert.equal(decodePresence(Buffer.from('{"topic":"room"}')), null);
  assert.match(presenceTooLarge({ big: 'x'.repeat(MAX_PRESENCE_BYTES) })!, /at most 16384 bytes/);
  assert.equal(presenceTooLarge({ small: 1 }), null);
});

test('broadcast replay: defaults and clamping as upstream; public channels and bad values refused with the code', () => {
  const priv = (replay: unknown) => ({ private: true, broadcast: { replay } });
  assert.equal(replayRequest({ broadcast: {} }), null);
  assert.deepEqual(replayRequest(priv({})), { since: 0, limit: 10 });
  assert.deepEqual(replayRequest(priv({ since: 5, limit: 1000 })), { since: 5, limit: 25 });
  assert.deepEqual(replayRequest(priv({ since: 5, limit: 0 })), { since: 5, limit: 1 });
  const refused = (config: Record<string, unknown>, detail: RegExp) =>
    assert.throws(
      () => replayRequest(config),
      (e: unknown) => e instanceof WalcastError && e.code === 'supabase_replay_invalid' && detail.test(e.message),
    );
  refused({ broadcast: { replay: { since: 0 } } }, /public channels/);
  refused(priv({ since: -1 }), /since must be/);
  refused(priv({ since: 1.5 }), /since must be/);
  refused(priv({ limit: 'ten' }), /limit must be/);
  refused(priv('soon'), /must be an object/);
});
