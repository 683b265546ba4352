// relay/edge/pull.ts deliveryInfo: the stream and delivery sequences of a
// JetStream message, read from its reply subject in both of the server's
// forms, and nothing from a subject that is not one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deliveryInfo } from '../../relay/edge/pull.ts';

test('the stream and delivery sequences of a reply subject, old and new forms', () => {
  // $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<delivery seq>.<timestamp>.<pending>
  assert.deepEqual(deliveryInfo('$JS.ACK.walcast.oc_1.1.4711.12.1796105200333983000.0'), { seq: 4711, delivery: 12 });
  // with <domain>.<account hash>, and the newer trailing token
  assert.deepEqual(deliveryInfo('$JS.ACK._.AHASH.walcast.oc_1.1.4711.12.1796105200333983000.7'), {
    seq: 4711,
    delivery: 12,
  });
  assert.deepEqual(deliveryInfo('$JS.ACK.hub.AHASH.walcast.oc_1.2.9.3.1796105200333983000.0.x9'), {
    seq: 9,
    delivery: 3,
  });
});

test('a subject that is not a JetStream reply gives nothing', () => {
  assert.equal(deliveryInfo('_INBOX.abc.1'), undefined);
  assert.equal(deliveryInfo('$JS.ACK.walcast.oc_1.1.4711'), undefined);
  assert.equal(deliveryInfo('$JS.ACK.walcast.oc_1.1.x.12.1796105200333983000.0'), undefined);
});
