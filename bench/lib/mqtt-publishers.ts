// A child process of MQTT publishers for the ingest-mqtt scenario (mqtt.js,
// MQTT 5, QoS 1): PUBLISHERS clients each send MESSAGES messages to
// bench/d<i>/t, WINDOW unacknowledged at a time, each payload carrying its
// send time (ms since the epoch). Runs when the parent sends 'go'; reports
// 'done' with the time it started and ended.
import mqtt from 'mqtt';

interface Config {
  url: string;
  publishers: number;
  messages: number;
  window: number;
}

const config = JSON.parse(process.env.PUBLISHERS_CONFIG ?? '{}') as Config;

async function publishAll(client: mqtt.MqttClient, device: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < config.messages) {
      const seq = next++;
      const payload = JSON.stringify({ seq, sent: Date.now(), v: 21.5 });
      await client.publishAsync(`bench/d${device}/t`, payload, { qos: 1 });
    }
  };
  await Promise.all(Array.from({ length: config.window }, worker));
}

async function main(): Promise<void> {
  const clients = await Promise.all(
    Array.from({ length: config.publishers }, () => mqtt.connectAsync(config.url, { protocolVersion: 5 })),
  );
  process.send!({ type: 'ready' });
  await new Promise<void>((r) => process.once('message', () => r()));
  const started = Date.now();
  await Promise.all(clients.map((c, i) => publishAll(c, i)));
  process.send!({ type: 'done', started, ended: Date.now() });
  await Promise.all(clients.map((c) => c.endAsync()));
  process.exit(0);
}

void main();
