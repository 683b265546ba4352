// CONNECT → CONNACK (MQTT 3.1.1 §3.1-3.2, MQTT 5 §3.1-3.2). Decides the
// protocol version, authenticates (with a JWT key configured the token is
// the password; the user name is free), binds the client id to the token's
// subject, takes over an older connection of the same session, and tells an
// MQTT 5 client the server's limits: Maximum QoS 1, no topic aliases, no
// shared subscriptions or subscription identifiers, the largest packet.
import mqttPacket, { type IConnackPacket, type IConnectPacket } from 'mqtt-packet';
import { randomUUID } from 'node:crypto';
import type { Grants } from '../auth/grants.ts';
import type { MessageProperties } from './messages.ts';
import type { Session } from './session.ts';
import { MAX_EXPIRY_SECONDS, type StoredSession } from './sessions.ts';
import { resume, resumePoint } from './resume.ts';

/** How long a 3.1.1 persistent session (clean session 0) is kept after it disconnects. */
export const DEFAULT_EXPIRY_SECONDS = 86_400;

export interface Will {
  topic: string;
  payload: Buffer;
  qos: 0 | 1;
  retain: boolean;
  properties?: MessageProperties;
}

/** CONNACK refusals: [3.1.1 return code, MQTT 5 reason code]. */
export const REFUSAL = {
  protocolVersion: [0x01, 0x84],
  clientId: [0x02, 0x85],
  badCredentials: [0x04, 0x86],
  notAuthorized: [0x05, 0x87],
  badAuthMethod: [0x05, 0x8c],
  serverUnavailable: [0x03, 0x88],
} as const;

export async function connect(s: Session, p: IConnectPacket): Promise<void> {
  const version = p.protocolVersion;
  if (version === 5) s.version = 5;
  else if (version !== 4) return refuse(s, REFUSAL.protocolVersion, 'walcast speaks MQTT 3.1.1 and 5.0');
  const unavailable = s.server.opts.unavailable?.() ?? null;
  if (unavailable !== null) return refuse(s, REFUSAL.serverUnavailable, unavailable);
  if (p.properties?.authenticationMethod !== undefined) {
    return refuse(s, REFUSAL.badAuthMethod, 'enhanced authentication is not supported: send the token as the password');
  }
  let grants: Grants;
  try {
    grants = await authenticate(s, p);
  } catch (err) {
    return refuse(s, REFUSAL.notAuthorized, `invalid token: ${(err as Error).message}`);
  }
  if (s.closed) return;
  let clientId = p.clientId;
  let assigned: string | undefined;
  if (clientId === '') {
    // MQTT-3.1.3-8: a 3.1.1 client with an empty id must ask for a clean session.
    if (version === 4 && p.clean === false)
      return refuse(s, REFUSAL.clientId, 'an empty client id needs a clean session');
    clientId = assigned = `walcast-${randomUUID()}`;
  }
  s.clientId = clientId;
  s.key = JSON.stringify([grants.sub ?? null, clientId]);
  s.grants = grants;
  s.server.admitted(s, grants);
  const stored = await session(s, p);
  if (s.closed) return;
  if (p.will) {
    const w = p.will;
    s.will = {
      topic: w.topic,
      payload: typeof w.payload === 'string' ? Buffer.from(w.payload) : w.payload,
      qos: w.qos ? 1 : 0,
      retain: w.retain ?? false,
    };
  }
  const props = p.properties;
  if (props?.maximumPacketSize) s.maxPacket = props.maximumPacketSize;
  if (props?.receiveMaximum) s.receiveMaximum = props.receiveMaximum;
  const connack: IConnackPacket = { cmd: 'connack', sessionPresent: stored !== null };
  if (version === 5) {
    connack.reasonCode = 0;
    connack.properties = {
      // What the relay keeps, which may be less than asked for (3.2.2.3.2).
      sessionExpiryInterval: s.expirySeconds,
      maximumQoS: 1,
      retainAvailable: true,
      maximumPacketSize: s.server.opts.maxPacketBytes,
      topicAliasMaximum: 0,
      wildcardSubscriptionAvailable: true,
      subscriptionIdentifiersAvailable: false,
      sharedSubscriptionAvailable: false,
    };
    if (assigned) connack.properties.assignedClientIdentifier = assigned;
  } else {
    connack.returnCode = 0;
  }
  s.write(mqttPacket.generate(connack, { protocolVersion: version }));
  s.started(p.keepalive ?? 0);
  if (!stored) return;
  const since = p.properties?.userProperties?.since;
  await resume(s, { ...stored, resumeAfter: resumePoint(stored.resumeAfter, since, s.server.opts.position()) });
}

/**
 * Clean session / clean start (MQTT 3.1.2.4, 3.1.2.11.2): a clean one
 * discards what was stored; a persistent one (clean session 0, or Session
 * Expiry Interval > 0) is kept in walcast.mqtt_sessions and returned if it
 * existed. A 3.1.1 session is kept for DEFAULT_EXPIRY_SECONDS.
 */
async function session(s: Session, p: IConnectPacket): Promise<StoredSession | null> {
  const store = s.server.store;
  // No database to keep sessions in (an edge without a publish URL): every session is clean, and an
  // MQTT 5 client is told Session Expiry Interval 0 (3.2.2.3.2).
  if (!store) {
    s.expirySeconds = 0;
    s.persistent = false;
    return null;
  }
  await s.server.parked(s.key);
  const requested =
    s.version === 5 ? (p.properties?.sessionExpiryInterval ?? 0) : p.clean === false ? DEFAULT_EXPIRY_SECONDS : 0;
  s.expirySeconds = Math.min(requested, MAX_EXPIRY_SECONDS);
  s.persistent = s.expirySeconds > 0;
  if (p.clean !== false) {
    await store.discard(s.key);
    if (s.persistent) await store.save(s);
    return null;
  }
  const stored = await store.take(s.key);
  if (!stored && s.persistent) await store.save(s);
  if (stored && !s.persistent) await store.discard(s.key);
  return stored;
}

/** The connection's grants: from the CONNECT password, else from the WebSocket upgrade, else open mode. */
async function authenticate(s: Session, p: IConnectPacket): Promise<Grants> {
  const gate = s.server.opts.gate;
  const password = p.password?.toString('utf8');
  if (password) return gate.grantsFor(password);
  if (s.admitted) return s.admitted;
  if (gate.authRequired) throw new Error('send the token as the CONNECT password (user name free, e.g. jwt)');
  return gate.grantsFor('');
}

function refuse(s: Session, codes: readonly [number, number], message: string): void {
  const connack: IConnackPacket = { cmd: 'connack', sessionPresent: false };
  if (s.version === 5) {
    connack.reasonCode = codes[1];
    connack.properties = { reasonString: message.slice(0, 240) };
  } else {
    connack.returnCode = codes[0];
  }
  s.server.opts.logger.info(
    { clientId: s.clientId || undefined, code: codes[s.version === 5 ? 1 : 0], reason: message },
    'MQTT CONNECT refused',
  );
  s.write(mqttPacket.generate(connack, { protocolVersion: s.version }));
  s.close();
}
