// A fleet of lean MQTT 3.1.1 subscribers (QoS 0) for the mqtt scenario, in
// its own process like fleet-child.ts: each connects over TCP, subscribes to
// its filter, and for each PUBLISH counts it and reads the row's created_at
// from the payload (indexOf on the bytes) for the latency histogram. The
// same IPC commands and report as fleet-child.ts (fleet-stats.ts).
import net from 'node:net';
import mqttPacket from 'mqtt-packet';
import { FleetStats } from './fleet-stats.ts';

export interface MqttFleetConfig {
  port: number;
  count: number;
  channels: number;
  /** Client i subscribes to `${table}/${prefix}${i % channels}/#`. */
  prefix: string;
  concurrency: number;
}

const config = JSON.parse(process.env.FLEET_CONFIG ?? '{}') as MqttFleetConfig;
const stats = new FleetStats();

function connect(i: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(config.port, '127.0.0.1');
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    let subscribed = false;
    parser.on('packet', (p: mqttPacket.Packet) => {
      if (p.cmd === 'publish') return stats.record(p.payload as Buffer);
      if (p.cmd === 'connack') {
        const filter = `chat_messages/${config.prefix}${i % config.channels}/#`;
        socket.write(
          mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 0 }] }),
        );
      } else if (p.cmd === 'suback') {
        subscribed = true;
        stats.open++;
        resolve();
      }
    });
    socket.on('connect', () => {
      socket.setNoDelay(true);
      socket.write(
        mqttPacket.generate({
          cmd: 'connect',
          protocolId: 'MQTT',
          protocolVersion: 4,
          clientId: `bench-${process.pid}-${i}`,
          clean: true,
          keepalive: 0,
        }),
      );
    });
    socket.on('data', (d) => parser.parse(d));
    socket.on('error', (err) => {
      if (!subscribed) reject(err);
    });
    socket.on('close', () => {
      if (subscribed) {
        stats.open--;
        stats.closed++;
      } else reject(new Error(`connection ${i} closed before its SUBACK`));
    });
  });
}

async function main(): Promise<void> {
  await stats.serve(connect, config.count, config.concurrency);
}

main().catch((err) => {
  process.stderr.write(`mqtt fleet: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
