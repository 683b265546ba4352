-- Supabase door presence (relay/supabase/presence.ts, docs/supabase.md#presence):
-- who tracks what on which topic, across every relay on the database. A
-- row is written in the same statement as the pg_logical_emit_message that
-- carries its presence_diff, so the diffs every relay reads from the slot
-- and the state a joining channel reads from here agree. The relay that
-- holds the socket renews expires_at; any relay deletes rows past it (and
-- emits their leaves), so a killed relay's presences leave after the lease.
-- Not in the publication: the diffs travel as logical messages.
CREATE TABLE IF NOT EXISTS walcast.supabase_presence (
  -- The topic without its `realtime:` prefix.
  topic text NOT NULL,
  -- The channel's presence key (config.presence.key, or a random one).
  key text NOT NULL,
  -- Unique per track: realtime-js tells presences apart by it (phx_ref on the wire).
  presence_ref text NOT NULL,
  -- The tracked payload, as the client sent it.
  meta jsonb NOT NULL,
  -- The relay process holding the socket (a random id per start).
  node text NOT NULL,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (topic, presence_ref)
);
CREATE INDEX IF NOT EXISTS supabase_presence_expires ON walcast.supabase_presence (expires_at);
CREATE INDEX IF NOT EXISTS supabase_presence_node ON walcast.supabase_presence (node);
