// Real MQTT clients (mqtt.js) against the relay's MQTT front door, collecting
// what they receive so tests can wait for it.
import { after } from 'node:test';
import mqtt, { type IClientOptions, type IClientPublishOptions, type MqttClient, type Packet } from 'mqtt';
import type { Relay } from '../../relay/relay.ts';

/** Where a client connects: a slot relay or an edge relay (both have an MQTT door). */
export type MqttDoor = Pick<Relay, 'mqttPort' | 'mqttWsUrl'>;

export interface Received {
  topic: string;
  payload: string;
  retain: boolean;
  qos: number;
  user: Record<string, unknown>;
}

export class MqttTestClient {
  readonly received: Received[] = [];
  /** Every packet from the relay (PUBACK reason strings, SUBACK properties). */
  readonly packets: Packet[] = [];

  private constructor(readonly client: MqttClient) {
    client.on('packetreceive', (p) => this.packets.push(p));
    client.on('message', (topic, payload, packet) => {
      this.received.push({
        topic,
        payload: payload.toString(),
        retain: packet.retain,
        qos: packet.qos,
        user: (packet.properties?.userProperties ?? {}) as Record<string, unknown>,
      });
    });
  }

  /** Connect over TCP (`tcp`) or WebSocket (`ws`) with protocol 4 (3.1.1) or 5. */
  static async connect(
    relay: MqttDoor,
    transport: 'tcp' | 'ws',
    version: 4 | 5,
    options: IClientOptions = {},
  ): Promise<MqttTestClient> {
    const url = transport === 'tcp' ? `mqtt://127.0.0.1:${relay.mqttPort}` : relay.mqttWsUrl;
    const client = mqtt.connect(url, {
      protocolVersion: version,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      ...options,
    });
    // Listening before CONNACK: a resumed session's messages may come in the same read.
    const c = new MqttTestClient(client);
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
    return c;
  }

  /** Connect and expect a refusal; resolves to the CONNACK's code. */
  static async refused(relay: MqttDoor, version: 4 | 5, options: IClientOptions): Promise<number> {
    const client = mqtt.connect(`mqtt://127.0.0.1:${relay.mqttPort}`, {
      protocolVersion: version,
      reconnectPeriod: 0,
      ...options,
    });
    try {
      return await new Promise<number>((resolve, reject) => {
        client.once('connect', () => reject(new Error('connected, but a refusal was expected')));
        client.once('error', (err) => resolve((err as Error & { code: number }).code));
      });
    } finally {
      client.end(true);
    }
  }

  /** Subscribe; resolves to the SUBACK's codes (mqtt.js rejects on any failure code, so they are read from the packet). */
  async subscribe(filter: string | string[], qos: 0 | 1 = 1): Promise<number[]> {
    const before = this.packets.length;
    await this.client.subscribeAsync(filter, { qos }).catch(() => {});
    const suback = this.packets.slice(before).find((p) => p.cmd === 'suback') as
      | { granted: (number | { qos: number })[] }
      | undefined;
    if (!suback) throw new Error('no SUBACK');
    return suback.granted.map((g) => (typeof g === 'number' ? g : g.qos));
  }

  /** Publish with QoS 1 and return the PUBACK's reason code and string (MQTT 5), refused or not. */
  async ack(
    topic: string,
    payload: string | Buffer,
    opts: IClientPublishOptions = {},
  ): Promise<{ code: number; reason: string | undefined }> {
    await this.publish(topic, payload, opts).catch(() => {});
    const puback = this.packets.filter((p) => p.cmd === 'puback').at(-1) as {
      reasonCode?: number;
      properties?: { reasonString?: string };
    };
    return { code: puback.reasonCode ?? 0, reason: puback.properties?.reasonString };
  }

  /** Publish and wait for the acknowledgement (QoS 1); resolves to the PUBACK packet. */
  publish(topic: string, payload: string | Buffer, opts: IClientPublishOptions = {}): Promise<Packet | undefined> {
    return this.client.publishAsync(topic, payload, { qos: 1, ...opts });
  }

  /** The last CONNACK (after an automatic reconnect) said Session Present. */
  sessionPresentAfterReconnect(): boolean {
    const connacks = this.packets.filter((p) => p.cmd === 'connack') as { sessionPresent?: boolean }[];
    return connacks.length > 1 && connacks.at(-1)!.sessionPresent === true;
  }

  /** The CONNACK's Session Present flag. */
  get sessionPresent(): boolean {
    return (
      (this.packets.find((p) => p.cmd === 'connack') as { sessionPresent?: boolean } | undefined)?.sessionPresent ??
      false
    );
  }

  async waitFor<T>(
    pick: (msgs: Received[]) => T | undefined | false,
    what = 'a message',
    timeoutMs = 10_000,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = pick(this.received);
      if (found !== undefined && found !== false) return found;
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.received).slice(0, 2000)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Wait for the message on `topic` whose payload contains `marker`; returns everything received before it too. */
  until(topic: string, marker: string): Promise<Received[]> {
    return this.waitFor((msgs) => {
      const i = msgs.findIndex((m) => m.topic === topic && m.payload.includes(marker));
      return i >= 0 ? msgs.slice(0, i + 1) : undefined;
    }, `${topic} with ${marker}`);
  }

  end(): Promise<void> {
    return this.client.endAsync();
  }
}

/** Connects clients that are ended after the file's tests (call at the top level). */
export function mqttClients(): (...args: Parameters<typeof MqttTestClient.connect>) => Promise<MqttTestClient> {
  const clients: MqttTestClient[] = [];
  after(async () => {
    for (const c of clients) await c.end().catch(() => {});
  });
  return async (...args) => {
    const c = await MqttTestClient.connect(...args);
    clients.push(c);
    return c;
  };
}

export { startMosquitto, freePort, type Mosquitto } from './mosquitto.ts';
