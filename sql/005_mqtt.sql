-- MQTT persistent sessions (relay/mqtt/sessions.ts, docs/mqtt.md#sessions):
-- a session's topic filters and the position up to which its QoS 1
-- deliveries were acknowledged, so a client that reconnects, to this relay
-- or to a standby that took over after a crash, gets what it missed from the
-- recovery window. Written on SUBSCRIBE/UNSUBSCRIBE, at most once a second
-- per session while it receives, and at disconnect. Not in the publication.
CREATE TABLE IF NOT EXISTS walcast.mqtt_sessions (
  -- The token's subject and the client id (a client id is bound to its subject).
  session_key text PRIMARY KEY,
  -- {"<filter>": <granted QoS>}
  filters jsonb NOT NULL DEFAULT '{}',
  -- Every QoS 1 message at or before this position was acknowledged; NULL: nothing delivered yet.
  resume_after text,
  -- The session ends this long after updated_at (its last write, or its disconnect).
  expiry_seconds integer NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Retained messages on MQTT topics that are not rows (`alerts/fire`): the
-- last retained PUBLISH of each topic, sent to new subscribers of matching
-- filters. Written in the same transaction as the message's
-- pg_logical_emit_message, so subscribers see the two agree. A zero-length
-- retained publish deletes the topic's row (MQTT 3.3.1.3).
CREATE TABLE IF NOT EXISTS walcast.mqtt_retained (
  topic text PRIMARY KEY,
  payload bytea NOT NULL,
  qos smallint NOT NULL,
  -- MQTT 5 properties carried to subscribers (content type, user properties, …), as messages.ts encodes them.
  properties jsonb,
  updated_at timestamptz NOT NULL DEFAULT now()
);
