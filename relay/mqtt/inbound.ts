// PUBLISH from an MQTT client, into the database:
//   retain=1 on <table>/<channel>/<key…>   upsert that row (channel and key from the topic)
//   retain=1 on <table>/<channel>          insert a new row
//   retain=1, empty payload, on a row      delete the row
//   retain=0 (any topic)                   an MQTT message through the WAL (messages.ts)
// Rows go through the WebSocket publish path (relay/publish/publisher.ts):
// the same grants, validation, server-owned and claim-bound columns. The
// result is known only after the transaction committed, and that is when
// the session sends PUBACK. Refusals carry an MQTT 5 reason code and a
// reason string that starts with walcast's stable error code.
import pg from 'pg';
import type { Grants } from '../auth/grants.ts';
import type { Publisher } from '../publish/publisher.ts';
import { failureOf } from '../publish/failures.ts';
import type { ErrorCode } from '../../client/protocol.ts';
import type { Logger } from '../log.ts';
import { encodeMessage, encodeProperties, MQTT_MESSAGE_PREFIX, type MessageProperties } from './messages.ts';
import { splitTopic, topicNameError } from './topics.ts';
import type { TableKeys, TableTopic } from './keys.ts';

/** MQTT 5 reason codes of PUBACK (3.4.2.1) that walcast sends. */
export const REASON = {
  success: 0x00,
  unspecified: 0x80,
  implementationSpecific: 0x83,
  notAuthorized: 0x87,
  topicNameInvalid: 0x90,
  quotaExceeded: 0x97,
  payloadFormatInvalid: 0x99,
} as const;

export type PublishResult = { ok: true } | { ok: false; reason: number; message: string };

export interface InboundPublish {
  topic: string;
  payload: Buffer;
  qos: 0 | 1;
  retain: boolean;
  properties?: MessageProperties;
}

export interface InboundDeps {
  publisher: Publisher;
  pool: pg.Pool;
  keys: TableKeys;
  logger: Logger;
  publishing: 'token' | 'open' | 'off';
  /** Why publishing is off, when not WALCAST_PUBLISH=off (an edge without a publish URL). */
  refusal?: string;
}

const REASON_OF: Partial<Record<ErrorCode, number>> = {
  forbidden: REASON.notAuthorized,
  publishing_disabled: REASON.notAuthorized,
  unknown_table: REASON.topicNameInvalid,
  rate_limited: REASON.quotaExceeded,
  invalid_row: REASON.payloadFormatInvalid,
  invalid_value: REASON.payloadFormatInvalid,
  duplicate: REASON.implementationSpecific,
  missing_value: REASON.implementationSpecific,
  check_failed: REASON.implementationSpecific,
  reference_not_found: REASON.implementationSpecific,
  publish_failed: REASON.unspecified,
};

function refuse(code: ErrorCode, message: string): PublishResult {
  return { ok: false, reason: REASON_OF[code] ?? REASON.unspecified, message: `${code}: ${message}`.slice(0, 240) };
}

/** Handle one PUBLISH for connection `conn` holding `grants`; resolves once committed (or refused). */
export async function publishFromClient(
  deps: InboundDeps,
  conn: object,
  grants: Grants,
  p: InboundPublish,
): Promise<PublishResult> {
  const invalid = topicNameError(p.topic);
  if (invalid) return { ok: false, reason: REASON.topicNameInvalid, message: `invalid_topic: ${invalid}` };
  const parts = splitTopic(p.topic);
  await deps.keys.refreshIfUnknown(parts.head);
  const table = deps.keys.known(parts.head);
  if (p.retain && table) {
    if (deps.publishing === 'off') return refuse('publishing_disabled', offReason(deps));
    return writeRow(deps, conn, grants, table, parts, p.payload);
  }
  if (!grants.canPublishTo(parts.head) || !grants.canPublishOn(parts.channel)) {
    return refuse('forbidden', `this connection may not publish on ${p.topic.slice(0, 120)}`);
  }
  if (deps.publishing === 'off') return refuse('publishing_disabled', offReason(deps));
  const content = encodeMessage({
    topic: p.topic,
    payload: p.payload,
    qos: p.qos,
    ...(p.retain ? { retained: true } : {}),
    ...(p.properties ? { properties: p.properties } : {}),
  });
  if (!p.retain) {
    await deps.pool.query('SELECT pg_logical_emit_message(true, $1, $2::text)', [MQTT_MESSAGE_PREFIX, content]);
    return { ok: true };
  }
  // A retained message on a generic topic is stored (or, empty, cleared) in the message's own
  // transaction: a data-modifying WITH runs whether or not the SELECT reads it.
  const store =
    p.payload.length === 0
      ? { sql: 'DELETE FROM walcast.mqtt_retained WHERE topic = $3', values: [p.topic] }
      : {
          sql: `INSERT INTO walcast.mqtt_retained (topic, payload, qos, properties) VALUES ($3, $4, $5, $6)
              ON CONFLICT (topic) DO UPDATE SET payload = EXCLUDED.payload, qos = EXCLUDED.qos, properties = EXCLUDED.properties, updated_at = now()`,
          values: [p.topic, p.payload, p.qos, encodeProperties(p.properties)],
        };
  await deps.pool.query(`WITH stored AS (${store.sql}) SELECT pg_logical_emit_message(true, $1, $2::text)`, [
    MQTT_MESSAGE_PREFIX,
    content,
    ...store.values,
  ]);
  return { ok: true };
}

function offReason(deps: InboundDeps): string {
  return deps.refusal ?? 'publishing is turned off on this relay (WALCAST_PUBLISH=off)';
}

async function writeRow(
  deps: InboundDeps,
  conn: object,
  grants: Grants,
  t: TableTopic,
  parts: ReturnType<typeof splitTopic>,
  payload: Buffer,
): Promise<PublishResult> {
  const name = parts.head;
  const shape = `${name}/<${t.channelColumn}>${t.keys.map((k) => `/<${k}>`).join('')}`;
  if (parts.rest.length !== 0 && parts.rest.length !== t.keys.length) {
    return refuse(
      'unknown_table',
      `a row of ${name} is published on ${name}/<${t.channelColumn}> (insert) or ${shape} (upsert, delete)`,
    );
  }
  if (payload.length === 0) {
    if (parts.rest.length === 0)
      return refuse('invalid_row', `an empty retained payload deletes a row: publish it on ${shape}`);
    return deleteRow(deps, grants, t, parts);
  }
  let row: unknown;
  try {
    row = JSON.parse(payload.toString('utf8'));
  } catch {
    return refuse(
      'invalid_row',
      'the payload is not JSON: a retained publish on a row carries the row as a JSON object',
    );
  }
  if (typeof row !== 'object' || row === null || Array.isArray(row))
    return refuse('invalid_row', 'the payload must be a JSON object (the row)');
  const fromTopic: Record<string, string> = { [t.channelColumn]: parts.channel };
  parts.rest.forEach((v, i) => {
    fromTopic[t.keys[i]!] = v;
  });
  const full: Record<string, unknown> = { ...(row as Record<string, unknown>) };
  for (const [column, value] of Object.entries(fromTopic)) {
    if (column in full && String(full[column]) !== value)
      return refuse('invalid_row', `the payload's ${column} differs from the topic's`);
    full[column] = value;
  }
  const reply = await deps.publisher.publish(conn, grants, { type: 'publish', table: name, row: full });
  if (reply.type === 'published') return { ok: true };
  return refuse(reply.code, reply.message);
}

async function deleteRow(
  deps: InboundDeps,
  grants: Grants,
  t: TableTopic,
  parts: ReturnType<typeof splitTopic>,
): Promise<PublishResult> {
  if (!grants.canPublishTo(parts.head) || !grants.canPublishOn(parts.channel)) {
    return refuse(
      'forbidden',
      `this connection may not delete rows of ${parts.head} on ${parts.channel.slice(0, 120)}`,
    );
  }
  const columns = [t.channelColumn, ...t.keys];
  const where = columns.map((c, i) => `${pg.escapeIdentifier(c)} = $${i + 1}`).join(' AND ');
  try {
    await deps.pool.query(
      `DELETE FROM ${pg.escapeIdentifier(t.reg.schema)}.${pg.escapeIdentifier(t.reg.table)} WHERE ${where}`,
      [parts.channel, ...parts.rest],
    );
  } catch (err) {
    const failure = failureOf(err);
    if (failure.code === 'publish_failed') deps.logger.error({ err, table: parts.head }, 'MQTT delete failed');
    return refuse(failure.code, failure.message);
  }
  return { ok: true };
}
