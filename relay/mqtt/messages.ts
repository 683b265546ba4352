// MQTT messages that are not row changes (retain=0 publishes, wills) travel
// through the WAL like rows: the publish path writes them with
// pg_logical_emit_message(true, 'walcast.mqtt', content), so they are
// committed, ordered with the row changes of other transactions, and reach
// every relay reading the slot. The content is JSON; the payload is base64.
// Decoded once per message (WeakMap on the content buffer), however many
// subscribers it reaches.

import { channelOfTopic } from './topics.ts';

export const MQTT_MESSAGE_PREFIX = 'walcast.mqtt';

export interface EphemeralMessage {
  topic: string;
  payload: Buffer;
  /** QoS it was published with: a subscriber gets min(this, its granted QoS). */
  qos: 0 | 1;
  /** Published with retain on a topic that is not a row: also stored in walcast.mqtt_retained. */
  retained?: boolean;
  /** MQTT 5 properties carried from the publisher to the subscribers. */
  properties?: MessageProperties;
}

export interface MessageProperties {
  payloadFormatIndicator?: boolean;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Buffer;
  userProperties?: Record<string, string | string[]>;
}

interface Wire {
  t: string;
  q: 0 | 1;
  p: string;
  k?: true;
  f?: boolean;
  c?: string;
  r?: string;
  d?: string;
  u?: Record<string, string | string[]>;
}

/** The MQTT 5 properties as stored in walcast.mqtt_retained.properties (null: none). */
export function encodeProperties(props: MessageProperties | undefined): string | null {
  if (!props || Object.keys(props).length === 0) return null;
  return JSON.stringify({ ...props, correlationData: props.correlationData?.toString('base64') });
}

export function decodeProperties(json: Record<string, unknown> | null): MessageProperties | undefined {
  if (!json) return undefined;
  const props = { ...json } as MessageProperties & { correlationData?: unknown };
  if (typeof json.correlationData === 'string') props.correlationData = Buffer.from(json.correlationData, 'base64');
  else delete props.correlationData;
  return props;
}

export function encodeMessage(m: EphemeralMessage): string {
  const w: Wire = { t: m.topic, q: m.qos, p: m.payload.toString('base64') };
  if (m.retained) w.k = true;
  const props = m.properties;
  if (props?.payloadFormatIndicator !== undefined) w.f = props.payloadFormatIndicator;
  if (props?.contentType !== undefined) w.c = props.contentType;
  if (props?.responseTopic !== undefined) w.r = props.responseTopic;
  if (props?.correlationData !== undefined) w.d = props.correlationData.toString('base64');
  if (props?.userProperties !== undefined) w.u = props.userProperties;
  return JSON.stringify(w);
}

const decoded = new WeakMap<Buffer, EphemeralMessage | null>();

/** The message in `content`, or null if it is not one walcast wrote. */
export function decodeMessage(content: Buffer): EphemeralMessage | null {
  let m = decoded.get(content);
  if (m !== undefined) return m;
  m = parse(content);
  decoded.set(content, m);
  return m;
}

function parse(content: Buffer): EphemeralMessage | null {
  let w: Wire;
  try {
    w = JSON.parse(content.toString('utf8')) as Wire;
  } catch {
    return null;
  }
  if (typeof w?.t !== 'string' || typeof w.p !== 'string') return null;
  const m: EphemeralMessage = { topic: w.t, payload: Buffer.from(w.p, 'base64'), qos: w.q === 1 ? 1 : 0 };
  if (w.k === true) m.retained = true;
  const props: MessageProperties = {};
  if (typeof w.f === 'boolean') props.payloadFormatIndicator = w.f;
  if (typeof w.c === 'string') props.contentType = w.c;
  if (typeof w.r === 'string') props.responseTopic = w.r;
  if (typeof w.d === 'string') props.correlationData = Buffer.from(w.d, 'base64');
  if (w.u && typeof w.u === 'object') props.userProperties = w.u;
  if (Object.keys(props).length > 0) m.properties = props;
  return m;
}

/** Where the dispatcher routes a logical message of the MQTT front door: its topic's channel, and the topic's first level as the table. */
export function mqttMessageRoute(prefix: string, content: Buffer): { channel: string; table: string } | undefined {
  if (prefix !== MQTT_MESSAGE_PREFIX) return undefined;
  const message = decodeMessage(content);
  if (!message) return undefined;
  return { channel: channelOfTopic(message.topic), table: message.topic.split('/', 1)[0]! };
}
