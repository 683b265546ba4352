-- Delivery guarantees: the slot's epoch, and what a snapshot of a table is.

-- One row per slot walcast created. The epoch names the slot's incarnation:
-- positions carry it, and a slot dropped, recreated or invalidated gets a new
-- one, so positions from before cannot be resumed by mistake.
CREATE TABLE IF NOT EXISTS walcast.slots (
  slot_name  text PRIMARY KEY,
  epoch      text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- 'state': the table holds current state (presence, call_state); a snapshot
-- sends every row of the channel. 'events': the table is a log; a snapshot
-- sends the newest rows (the subscribe's "limit").
ALTER TABLE walcast.tables ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'events';
ALTER TABLE walcast.tables DROP CONSTRAINT IF EXISTS tables_kind_check;
ALTER TABLE walcast.tables ADD CONSTRAINT tables_kind_check CHECK (kind IN ('events', 'state'));

DROP FUNCTION IF EXISTS walcast.register_table(regclass, text, interval, text);

-- Registers `tbl`: its rows go to subscribers of the channel in
-- `channel_column`; with a ttl, the relay deletes rows whose `time_column` is
-- older than that; `kind` says what a snapshot sends. Safe to call again,
-- which updates the registration.
CREATE OR REPLACE FUNCTION walcast.register_table(
  tbl regclass, channel_column text, ttl interval DEFAULT NULL, time_column text DEFAULT NULL,
  kind text DEFAULT 'events'
) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  pub text := walcast.publication_name();
  nsp name;
  rel name;
BEGIN
  IF kind IS NULL OR kind NOT IN ('events', 'state') THEN
    RAISE EXCEPTION 'kind must be ''events'' or ''state'', not %', coalesce(quote_literal(kind), 'NULL')
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'state: a snapshot sends every row of the channel (presence); events: the newest rows (chat).';
  END IF;
  PERFORM walcast.check_registration(tbl, channel_column, ttl, time_column);
  PERFORM walcast.ensure_identity(tbl, channel_column);
  PERFORM walcast.publication_create(pub);
  PERFORM walcast.publication_add(pub, tbl);
  IF EXISTS (SELECT 1 FROM pg_class WHERE oid = tbl AND relkind = 'p')
     AND NOT (SELECT pubviaroot FROM pg_publication WHERE pubname = pub) THEN
    RAISE NOTICE 'walcast: publication % publishes partitions under their own names', pub
      USING HINT = format('Run ALTER PUBLICATION %I SET (publish_via_partition_root = true) so events name %s.', pub, tbl);
  END IF;
  SELECT n.nspname, c.relname INTO nsp, rel
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl;
  -- The WHERE skips no-op updates, which would reach the relay as events.
  INSERT INTO walcast.tables AS t (schema_name, table_name, channel_column, ttl, time_column, kind)
  VALUES (nsp, rel, register_table.channel_column, register_table.ttl, register_table.time_column, register_table.kind)
  ON CONFLICT (schema_name, table_name) DO UPDATE
    SET channel_column = excluded.channel_column, ttl = excluded.ttl, time_column = excluded.time_column, kind = excluded.kind
    WHERE (t.channel_column, t.ttl, t.time_column, t.kind) IS DISTINCT FROM
          (excluded.channel_column, excluded.ttl, excluded.time_column, excluded.kind);
END;
$$;
