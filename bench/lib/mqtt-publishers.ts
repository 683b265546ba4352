// A child process of MQTT publishers for the ingest-mqtt scenario (mqtt.js,
// MQTT 5, QoS 1): PUBLISHERS clients each send MESSAGES messages to
// bench/d<i>/t, WINDOW unacknowledged at a time (or, with RATE, paced at
// RATE messages/s in all), each payload carrying its send time (ms since the
// epoch). Runs when the parent sends 'go'; reports 'done' with the time it
// started and ended.
import mqtt from 'mqtt';

interface Config {
  url: string;
  publishers: number;
  messages: number;
  window: number;
  /** Messages/s across all publishers; 0: as fast as the window allows. */
  rate: number;
}

const config = JSON.parse(process.env.PUBLISHERS_CONFIG ?? '{}') as Config;

async function publishAll(client: mqtt.MqttClient, device: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < config.messages) {
      await send(client, device, next++);
    }
  };
  await Promise.all(Array.from({ length: config.window }, worker));
}

const send = (client: mqtt.MqttClient, device: number, seq: number) =>
  client.publishAsync(`bench/d${device}/t`, JSON.stringify({ seq, sent: Date.now(), v: 21.5 }), { qos: 1 });

/** RATE / PUBLISHERS messages/s from this client, in 5 ms steps. */
async function publishPaced(client: mqtt.MqttClient, device: number): Promise<void> {
  const perSecond = config.rate / config.publishers;
  const t0 = Date.now();
  const pending: Promise<unknown>[] = [];
  let sent = 0;
  while (sent < config.messages) {
    const due = Math.min(config.messages, Math.floor(((Date.now() - t0) / 1000) * perSecond));
    for (; sent < due; sent++) pending.push(send(client, device, sent));
    await new Promise((r) => setTimeout(r, 5));
  }
  await Promise.all(pending);
}

async function main(): Promise<void> {
  const clients = await Promise.all(
    Array.from({ length: config.publishers }, () => mqtt.connectAsync(config.url, { protocolVersion: 5 })),
  );
  process.send!({ type: 'ready' });
  await new Promise<void>((r) => process.once('message', () => r()));
  const started = Date.now();
  await Promise.all(clients.map((c, i) => (config.rate > 0 ? publishPaced(c, i) : publishAll(c, i))));
  process.send!({ type: 'done', started, ended: Date.now() });
  await Promise.all(clients.map((c) => c.endAsync()));
  process.exit(0);
}

void main();
