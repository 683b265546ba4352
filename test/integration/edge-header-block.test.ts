// relay/edge/header-block.ts on messages nats.js really received: a message
// published with the sink's headers into a stream on a real nats-server,
// read back by an ordered consumer as relay/edge/source.ts reads it. The
// edge reads the header block from nats.js's received bytes (its own parse,
// not MsgHdrs); if a nats.js version keeps them elsewhere, rawHeaderBlock
// gives up (the edge falls back to MsgHdrs, correct but slower) and this
// test fails so that the change is noticed.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import { startNatsServer, type NatsServer } from '../helpers/nats.ts';
import { StreamHeaders, renderHeaderLines } from '../../relay/sinks/stream-headers.ts';
import { headerReader, headerValue, rawHeaderBlock } from '../../relay/edge/header-block.ts';

let nats: NatsServer;
let nc: NatsConnection;
before(async () => {
  nats = await startNatsServer();
  nc = await connect({ servers: nats.url });
  await (await jetstreamManager(nc)).streams.add({ name: 'hb', subjects: ['hb.>'] });
});
after(async () => {
  await nc.close();
  await nats.stop();
});

async function readBack(count: number): Promise<JsMsg[]> {
  const messages = await (await jetstream(nc).consumers.get('hb')).consume();
  const out: JsMsg[] = [];
  for await (const m of messages) {
    out.push(m);
    if (out.length === count) break;
  }
  return out;
}

test('the header block of a received stream message is read from its bytes, with the values MsgHdrs gives', async () => {
  const js = jetstream(nc);
  const lines = renderHeaderLines([
    ['Nats-Msg-Id', '00000000016B3748-00000001-ab12'],
    ['Walcast-Position', '00000000016B3748-00000001-ab12'],
    ['Walcast-Table', 'public.café'],
    ['Walcast-Commit-Time', '2026-11-30T12:00:00.123Z'],
    ['Walcast-Xid', '4242'],
  ]);
  await js.publish('hb.chat_messages.room', Buffer.from('{"type":"event"}'), { headers: new StreamHeaders(lines) });
  await js.publish('hb.chat_messages.bare', Buffer.from('{}'));
  const [withHeaders, bare] = await readBack(2);
  const block = rawHeaderBlock(withHeaders!);
  assert.ok(block !== undefined, 'nats.js keeps the received bytes where header-block.ts reads them');
  for (const key of ['Nats-Msg-Id', 'Walcast-Position', 'Walcast-Table', 'Walcast-Commit-Time', 'Walcast-Xid'])
    assert.equal(headerValue(block, key), withHeaders!.headers!.get(key), key);
  assert.equal(headerValue(block, 'Walcast-Table'), 'public.café');
  assert.equal(Buffer.from(withHeaders!.data).toString(), '{"type":"event"}', 'the payload is untouched');
  assert.equal(rawHeaderBlock(bare!), undefined, 'a message without headers has no block');
  // What relay/edge/source.ts hands the decoder.
  assert.equal(headerReader(withHeaders!)('Walcast-Xid'), '4242');
  assert.equal(headerReader(withHeaders!)('Walcast-Missing'), undefined);
  assert.equal(headerReader(bare!)('Walcast-Position'), undefined);
});
