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
