// A fleet of lean MQTT 3.1.1 subscribers (QoS 0) for the mqtt scenario, in
// its own process like fleet-child.ts: each connects over TCP, subscribes to
// its filter, and for each PUBLISH counts it and reads the row's created_at
// from the payload (indexOf on the bytes) for the latency histogram. The
// same IPC commands and report as fleet-child.ts.
import net from 'node:net';
import mqttPacket from 'mqtt-packet';
import { build } from 'hdr-histogram-js';
import type { FleetReport } from './fleet-child.ts';

export interface MqttFleetConfig {
  port: number;
  count: number;
  channels: number;
  /** Client i subscribes to `${table}/${prefix}${i % channels}/#`. */
  prefix: string;
  concurrency: number;
}

const config = JSON.parse(process.env.FLEET_CONFIG ?? '{}') as MqttFleetConfig;
const MARKER = Buffer.from('"created_at":"');
const histogram = build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: 3 });
let received = 0;
let closed = 0;
let open = 0;

function record(payload: Buffer): void {
  received++;
  const at = payload.indexOf(MARKER);
  if (at < 0) return;
  const s = at + MARKER.length;
  const base = Date.parse(`${payload.toString('latin1', s, s + 10)}T${payload.toString('latin1', s + 11, s + 19)}Z`) * 1000;
  let frac = 0;
  let digits = 0;
  let i = s + 19;
  if (payload[i] === 0x2e) for (i++; digits < 6 && payload[i]! >= 0x30 && payload[i]! <= 0x39; i++, digits++) frac = frac * 10 + (payload[i]! - 0x30);
  while (digits++ < 6) frac *= 10;
  const now = Math.round((performance.timeOrigin + performance.now()) * 1000);
  histogram.recordValue(Math.max(1, now - (base + frac)));
}

function connect(i: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(config.port, '127.0.0.1');
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    let subscribed = false;
    parser.on('packet', (p: mqttPacket.Packet) => {
      if (p.cmd === 'publish') return record(p.payload as Buffer);
      if (p.cmd === 'connack') {
        const filter = `chat_messages/${config.prefix}${i % config.channels}/#`;
        socket.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 0 }] }));
      } else if (p.cmd === 'suback') {
        subscribed = true;
        open++;
        resolve();
      }
    });
    socket.on('connect', () => {
      socket.setNoDelay(true);
      socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: `bench-${process.pid}-${i}`, clean: true, keepalive: 0 }));
    });
    socket.on('data', (d) => parser.parse(d));
    socket.on('error', (err) => {
      if (!subscribed) reject(err);
    });
    socket.on('close', () => {
      if (subscribed) {
        open--;
        closed++;
      } else reject(new Error(`connection ${i} closed before its SUBACK`));
    });
  });
}

async function main(): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < config.count) await connect(next++);
  };
  await Promise.all(Array.from({ length: Math.min(config.concurrency, config.count) }, worker));
  process.send!({ type: 'ready', open });
  process.on('message', (msg: { cmd: string }) => {
    if (msg.cmd === 'reset') {
      histogram.reset();
      received = 0;
      process.send!({ type: 'reset' });
    } else if (msg.cmd === 'report') {
      const cpu = process.cpuUsage();
      const report: FleetReport = {
        received, closed, open,
        p50: histogram.getValueAtPercentile(50), p99: histogram.getValueAtPercentile(99), p999: histogram.getValueAtPercentile(99.9),
        max: histogram.maxValue, samples: histogram.totalCount, cpuSeconds: (cpu.user + cpu.system) / 1e6,
      };
      process.send!({ type: 'report', report });
    } else if (msg.cmd === 'count') {
      process.send!({ type: 'count', received });
    }
  });
  process.on('disconnect', () => process.exit(0));
}

main().catch((err) => {
  process.stderr.write(`mqtt fleet: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
