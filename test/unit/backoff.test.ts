// The SDK's pure parts: backoff with full jitter, the reconnect state
// machine, and the positions a subscription resumes from.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { backoffCeiling, backoffDelay, DEFAULT_BACKOFF } from '../../client/backoff.ts';
import { INITIAL_STATE, step, type ConnectionState, type Input } from '../../client/reconnect.ts';
import { Subscription } from '../../client/subscription.ts';
import type { EventMessage, SubscribedMessage } from '../../client/protocol.ts';

const opts = { initialMs: 100, maxMs: 5_000, factor: 2 };

test('the ceiling doubles per attempt up to maxMs, and never overflows', () => {
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 7].map((a) => backoffCeiling(a, opts)),
    [100, 200, 400, 800, 1600, 3200, 5000, 5000],
  );
  assert.equal(backoffCeiling(10_000, opts), 5000);
  assert.equal(backoffCeiling(-3, opts), 100);
  assert.equal(backoffCeiling(0), DEFAULT_BACKOFF.initialMs);
});

test('full jitter: the delay is uniform between 0 and the ceiling', () => {
  assert.equal(
    backoffDelay(3, opts, () => 0),
    0,
  );
  assert.equal(
    backoffDelay(3, opts, () => 1),
    800,
  );
  assert.equal(
    backoffDelay(3, opts, () => 0.5),
    400,
  );
  fc.assert(
    fc.property(fc.nat(200), fc.double({ min: 0, max: 1, noNaN: true }), (attempt, r) => {
      const d = backoffDelay(attempt, opts, () => r);
      return Number.isInteger(d) && d >= 0 && d <= backoffCeiling(attempt, opts);
    }),
  );
});

const delay = (attempt: number) => backoffCeiling(attempt, opts);

function run(inputs: Input['type'][]): { state: ConnectionState; effects: string[] } {
  let state = INITIAL_STATE;
  const effects: string[] = [];
  for (const type of inputs) {
    const r = step(state, { type } as Input, delay);
    state = r.state;
    effects.push(r.effect.type === 'wait' ? `wait ${r.effect.ms}` : r.effect.type);
  }
  return { state, effects };
}

test('reconnect: failed connects back off further each time; only a healthy connection resets the count', () => {
  const { state, effects } = run([
    'lost',
    'timer',
    'lost',
    'timer',
    'lost',
    'timer',
    'opened',
    'healthy',
    'lost',
    'timer',
  ]);
  assert.deepEqual(effects, [
    'wait 100',
    'connect',
    'wait 200',
    'connect',
    'wait 400',
    'connect',
    'none',
    'none',
    'wait 100',
    'connect',
  ]);
  assert.deepEqual(state, { status: 'connecting', attempt: 1 });
});

test('reconnect: a relay that closes every connection right after it opened is retried at growing intervals', () => {
  const { effects } = run([
    'opened',
    'lost',
    'timer',
    'opened',
    'lost',
    'timer',
    'opened',
    'lost',
    'timer',
    'opened',
    'lost',
  ]);
  assert.deepEqual(
    effects.filter((e) => e.startsWith('wait')),
    ['wait 100', 'wait 200', 'wait 400', 'wait 800'],
  );
  assert.deepEqual(
    run(['opened', 'lost', 'timer', 'healthy']).effects.at(-1),
    'none',
    'healthy counts only while open',
  );
});

test('jitter: a thousand clients cut by one relay restart come back spread over the backoff window', () => {
  // A seeded generator per client (mulberry32): the test is deterministic, the spread is real.
  const seeded = (seed: number) => () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const window = backoffCeiling(0, DEFAULT_BACKOFF);
  const delays: number[] = [];
  for (let client = 0; client < 1000; client++) {
    const random = seeded(client + 1);
    const opened = step(INITIAL_STATE, { type: 'opened' }, () => 0).state;
    const healthy = step(opened, { type: 'healthy' }, () => 0).state;
    const { effect } = step(healthy, { type: 'lost' }, (attempt) => backoffDelay(attempt, DEFAULT_BACKOFF, random));
    assert.equal(effect.type, 'wait');
    delays.push(effect.type === 'wait' ? effect.ms : -1);
  }
  const buckets = Array.from({ length: 10 }, () => 0);
  for (const d of delays) buckets[Math.min(9, Math.floor((d / window) * 10))]!++;
  // Uniform: 100 per tenth of the window; none holds more than twice that, none is empty.
  for (const [i, n] of buckets.entries())
    assert.ok(n > 50 && n < 200, `tenth ${i} of the window holds ${n} of 1000 reconnects`);
  assert.ok(Math.max(...delays) <= window);
  assert.ok(new Set(delays).size > 300, 'the delays are spread, not a few values');
});

test('reconnect: close is final from every state, and late inputs are ignored', () => {
  for (const prefix of [[], ['opened'], ['lost'], ['lost', 'timer']] as Input['type'][][]) {
    const { state, effects } = run([...prefix, 'close', 'opened', 'lost', 'timer', 'close']);
    assert.equal(state.status, 'closed');
    assert.deepEqual(effects.slice(prefix.length), ['shutdown', 'none', 'none', 'none', 'none']);
  }
});

test('reconnect: a loss while already waiting does not schedule a second wait; a stray timer does nothing', () => {
  assert.deepEqual(run(['lost', 'lost']).effects, ['wait 100', 'none']);
  assert.deepEqual(run(['opened', 'timer', 'opened']).effects, ['none', 'none', 'none']);
});

test('reconnect: any sequence of inputs keeps the state machine consistent', () => {
  const input = fc.constantFrom<Input['type']>('opened', 'healthy', 'lost', 'timer', 'close');
  fc.assert(
    fc.property(fc.array(input, { maxLength: 50 }), (inputs) => {
      let state = INITIAL_STATE;
      let closed = false;
      for (const type of inputs) {
        const { state: next, effect } = step(state, { type } as Input, delay);
        if (closed) assert.deepEqual([next, effect.type], [state, 'none']);
        if (effect.type === 'wait') assert.equal(next.status, 'reconnecting');
        if (effect.type === 'connect') assert.equal(next.status, 'connecting');
        if (type === 'healthy' && next.status === 'open') assert.equal(next.attempt, 0);
        closed ||= next.status === 'closed';
        state = next;
      }
    }),
  );
});

// ---- the positions a subscription resumes from ----

const P = (n: number, i = 1) =>
  `${n.toString(16).toUpperCase().padStart(16, '0')}-${i.toString(16).padStart(8, '0')}-ep`;
const ev = (position: string, op: EventMessage['op'] = 'insert'): EventMessage => ({
  type: 'event',
  channel: 'c',
  table: 't',
  op,
  position,
  commit_time: '',
  row: { position },
});

function sub(options = {}) {
  const seen: string[] = [];
  const notices: string[] = [];
  const s = new Subscription(
    'c',
    options,
    (e) => seen.push(`${e.op} ${e.position}`),
    () => {},
  );
  for (const n of ['subscribed', 'synced', 'resync'] as const) s.on(n, () => notices.push(n));
  const reply = (id: string, extra: Partial<SubscribedMessage>) =>
    s.subscribed({ type: 'subscribed', id, channel: 'c', position: P(10, 0), ...extra });
  return { s, seen, notices, reply };
}

test('subscription: resumes from the last live event, never from a snapshot row', () => {
  const { s, seen, notices, reply } = sub({ snapshot: true });
  assert.equal(s.request('1').since, undefined);
  reply('1', { snapshot: 2 });
  s.event(ev(`${P(10, 0)}~000001`, 'snapshot'));
  assert.deepEqual(notices, ['subscribed']);
  s.event(ev(`${P(10, 0)}~000002`, 'snapshot'));
  assert.deepEqual(notices, ['subscribed', 'synced']);
  assert.equal(s.position, P(10, 0));
  s.event(ev(P(11)));
  s.suspend();
  const again = s.request('2');
  assert.deepEqual([again.since, again.snapshot], [P(11), true]);
  assert.equal(seen.length, 3);
});

test('subscription: after a resume it keeps the last replayed position until a pong settles it', () => {
  const { s, seen, reply } = sub();
  s.request('1');
  reply('1', {});
  s.event(ev(P(11)));
  s.suspend();
  assert.equal(s.request('2').since, P(11));
  reply('2', { position: P(20, 0), recovered: true });
  assert.equal(s.position, P(11), 'the replay (older than the reply) has not arrived yet');
  s.event(ev(P(12)));
  assert.equal(s.position, P(12));
  s.settle();
  assert.equal(s.position, P(20, 0), 'the pong came after the replay: resume from the reply');
  s.event(ev(P(12)));
  s.event(ev(P(21)));
  assert.deepEqual(seen, [`insert ${P(11)}`, `insert ${P(12)}`, `insert ${P(21)}`], 'nothing twice');
});

test("subscription: recovered false is a resync, and the reply's position is the new start", () => {
  const { s, notices, reply } = sub({ since: P(5) });
  assert.equal(s.request('1').since, P(5));
  reply('1', { position: P(30, 0), recovered: false });
  assert.deepEqual(notices, ['subscribed', 'resync', 'synced']);
  assert.equal(s.position, P(30, 0));
});

test('subscription: events before its own subscribed reply are not delivered', () => {
  const { s, seen, reply } = sub();
  s.request('1');
  s.event(ev(P(9)));
  reply('1', {});
  s.event(ev(P(11)));
  assert.deepEqual(seen, [`insert ${P(11)}`]);
});
