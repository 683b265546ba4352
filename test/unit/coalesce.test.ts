// Frames written by the coalescer, read back by ws's own frame parser (the
// Receiver a client uses): every length form of RFC 6455 §5.2.
import test from 'node:test';
import assert from 'node:assert/strict';
import type { Writable } from 'node:stream';
import * as ws from 'ws';
import {
  SHARED_PAYLOAD_BYTES,
  WriteCoalescer,
  encodeTextFrames,
  flushQueue,
  type FrameQueue,
} from '../../relay/ws/coalesce.ts';

// ws exports its frame parser at runtime; @types/ws does not declare it.
const Receiver = (ws as unknown as { Receiver: new (opts: { isServer: boolean; maxPayload: number }) => Writable })
  .Receiver;

function parse(bytes: Buffer): { text: string; binary: boolean }[] {
  const out: { text: string; binary: boolean }[] = [];
  const receiver = new Receiver({ isServer: false, maxPayload: 0 });
  receiver.on('message', (data: Buffer, isBinary: boolean) => out.push({ text: data.toString(), binary: isBinary }));
  receiver.on('error', (err: Error) => assert.fail(err));
  receiver.write(bytes);
  return out;
}

test('text frames of every length form parse back to the same messages', () => {
  const texts = [0, 1, 125, 126, 127, 65_535, 65_536, 70_000].map((n) =>
    'é'.repeat(Math.ceil(n / 2)).slice(0, Math.ceil(n / 2)),
  );
  const frames = encodeTextFrames(texts.map((t) => Buffer.from(t)));
  assert.deepEqual(
    parse(frames),
    texts.map((text) => ({ text, binary: false })),
  );
});

test("a tick's frames for one queue are written once, in order, at the end of the tick", async () => {
  const writes: Buffer[] = [];
  const queue: FrameQueue = { pending: [], pendingBytes: 0, writeFrames: (b) => writes.push(b) };
  const coalescer = new WriteCoalescer();
  for (const t of ['a', 'bb', 'ccc']) coalescer.enqueue(queue, Buffer.from(t));
  assert.equal(queue.pendingBytes, 6);
  assert.equal(writes.length, 0);
  await new Promise((r) => setImmediate(r));
  assert.equal(writes.length, 1);
  assert.deepEqual(
    parse(writes[0]!).map((m) => m.text),
    ['a', 'bb', 'ccc'],
  );
  assert.equal(queue.pendingBytes, 0);
  coalescer.enqueue(queue, Buffer.from('d'));
  await new Promise((r) => setImmediate(r));
  assert.equal(writes.length, 2);
});

test('a large payload is written as itself after its header, between the small frames around it, not copied', () => {
  const writes: Buffer[] = [];
  const queue: FrameQueue = { pending: [], pendingBytes: 0, writeFrames: (b) => writes.push(b) };
  const big = Buffer.from('x'.repeat(SHARED_PAYLOAD_BYTES * 3));
  queue.pending = [Buffer.from('a'), big, Buffer.from('b'), Buffer.from('c')];
  flushQueue(queue);
  assert.ok(writes.includes(big), 'the large payload went to the socket as the same Buffer');
  assert.deepEqual(
    parse(Buffer.concat(writes)).map((m) => m.text.length),
    [1, big.length, 1, 1],
  );
});

test('queues holding the same payloads in a tick share one encoding; different or equal-but-distinct ones get their own', async () => {
  const writes = new Map<string, Buffer[]>();
  const queueFor = (name: string): FrameQueue => {
    writes.set(name, []);
    return { pending: [], pendingBytes: 0, writeFrames: (b) => writes.get(name)!.push(b) };
  };
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map(queueFor) as [FrameQueue, FrameQueue, FrameQueue, FrameQueue];
  const e1 = Buffer.from('event 1');
  const e2 = Buffer.from('event 2');
  const coalescer = new WriteCoalescer();
  for (const q of [a, b]) for (const e of [e1, e2]) coalescer.enqueue(q, e);
  coalescer.enqueue(c, e1); // one of the two
  for (const e of [Buffer.from('event 1'), e2]) coalescer.enqueue(d, e); // same bytes, another Buffer
  await new Promise((r) => setImmediate(r));
  const [wa, wb, wc, wd] = ['a', 'b', 'c', 'd'].map((n) => writes.get(n)!);
  assert.equal(wa!.length, 1);
  assert.equal(wb![0], wa![0], 'b was written the Buffer encoded for a');
  assert.notEqual(wc![0], wa![0]);
  assert.notEqual(wd![0], wa![0]);
  for (const w of [wa, wb, wd])
    assert.deepEqual(
      parse(w![0]!).map((m) => m.text),
      ['event 1', 'event 2'],
    );
  assert.deepEqual(
    parse(wc![0]!).map((m) => m.text),
    ['event 1'],
  );
  // The next tick starts afresh: the same payloads for a again are encoded anew.
  for (const e of [e1, e2]) coalescer.enqueue(a, e);
  await new Promise((r) => setImmediate(r));
  assert.notEqual(writes.get('a')![1], wa![0]);
});
