// WALCAST_MQTT_PORT: unset, the default is tried and given up with a warning
// when taken (another broker on the machine); set explicitly, a port that
// cannot be bound stops start-up with listen_failed; off binds nothing.
// Real sockets; the "default" here is a port this test holds, never 1883.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { bindTcp } from '../../relay/mqtt/start.ts';
import { WalcastError } from '../../relay/errors.ts';

function listen(port: number): Promise<net.Server> {
  const server = net.createServer();
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port }, () => resolve(server));
  });
}

test('the default port taken: a warning that says the fix, and MQTT over WebSocket only', async () => {
  const holder = await listen(0);
  const taken = (holder.address() as net.AddressInfo).port;
  const warnings: string[] = [];
  const bound = await bindTcp(listen, undefined, taken, '127.0.0.1', (m) => warnings.push(m));
  assert.equal(bound, null);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, new RegExp(`MQTT port ${taken} cannot be bound.*WebSocket only.*WALCAST_MQTT_PORT`));
  holder.close();
});

test('an explicit port taken stops start-up with listen_failed; 0 binds a free port; off binds none', async () => {
  const holder = await listen(0);
  const taken = (holder.address() as net.AddressInfo).port;
  await assert.rejects(
    bindTcp(listen, taken, 1, '127.0.0.1', () => assert.fail('no warning')),
    (err: unknown) => {
      assert.ok(err instanceof WalcastError);
      assert.equal(err.code, 'listen_failed');
      assert.match(err.message, /WALCAST_MQTT_PORT/);
      return true;
    },
  );
  const any = await bindTcp(listen, 0, taken, '127.0.0.1', () => assert.fail('no warning'));
  assert.ok(any && (any.address() as net.AddressInfo).port > 0);
  any.close();
  assert.equal(await bindTcp(listen, 'off', taken, '127.0.0.1', () => assert.fail('no warning')), null);
  holder.close();
});
