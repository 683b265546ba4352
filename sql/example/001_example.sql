-- The example tables the demo clients use: chat, presence, call signalling
-- and video frames. Installed by default with the embedded PostgreSQL, and
-- with DATABASE_URL only when asked for. IF NOT EXISTS keeps a user's own
-- tables of these names and their rows (register_table checks the columns).

-- Chat history, replayable per channel in id order.
CREATE TABLE IF NOT EXISTS public.chat_messages (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  channel_id text NOT NULL,
  sender text NOT NULL,
  body text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
-- Unique so it can be the replica identity: the old row of an UPDATE or
-- DELETE then carries (channel_id, id) instead of the whole row (FULL).
CREATE UNIQUE INDEX IF NOT EXISTS chat_messages_channel_id_id_key ON public.chat_messages (channel_id, id);
ALTER TABLE public.chat_messages REPLICA IDENTITY USING INDEX chat_messages_channel_id_id_key;
-- The TTL pruner looks for expired rows by created_at; a week of chat is
-- too much to scan every ten seconds.
CREATE INDEX IF NOT EXISTS chat_messages_created_at_idx ON public.chat_messages (created_at);
SELECT walcast.register_table('public.chat_messages', channel_column => 'channel_id',
  ttl => interval '7 days', time_column => 'created_at');

-- Who is in a channel: one row per user, upserted as a heartbeat and pruned
-- when the heartbeats stop.
CREATE TABLE IF NOT EXISTS public.presence (
  channel_id text NOT NULL,
  user_id text NOT NULL,
  name text NOT NULL DEFAULT '',
  status text NOT NULL DEFAULT 'online',
  meta jsonb NOT NULL DEFAULT '{}',
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (channel_id, user_id)
);
SELECT walcast.register_table('public.presence', channel_column => 'channel_id',
  ttl => interval '2 minutes', time_column => 'updated_at');

-- Call signalling state (offers, answers, ICE candidates) per session.
CREATE TABLE IF NOT EXISTS public.call_state (
  session_id text NOT NULL,
  key text NOT NULL,
  value jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (session_id, key)
);
SELECT walcast.register_table('public.call_state', channel_column => 'session_id');

-- Video frames addressed to one peer; useless after a few seconds. With FULL
-- identity every pruned frame would be written to the WAL again, payload
-- and all, so the (to_id, id) index is the replica identity.
CREATE TABLE IF NOT EXISTS public.video_frames (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  to_id text NOT NULL,
  from_id text NOT NULL DEFAULT '',
  seq integer NOT NULL DEFAULT 0,
  payload bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS video_frames_to_id_id_key ON public.video_frames (to_id, id);
ALTER TABLE public.video_frames REPLICA IDENTITY USING INDEX video_frames_to_id_id_key;
SELECT walcast.register_table('public.video_frames', channel_column => 'to_id',
  ttl => interval '30 seconds', time_column => 'created_at');
