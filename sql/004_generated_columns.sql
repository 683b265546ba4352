-- Generated columns (GENERATED ALWAYS AS (…) STORED, and PostgreSQL 18's
-- VIRTUAL ones). pgoutput sends a stored generated column only from
-- PostgreSQL 18 on, when the publication has publish_generated_columns =
-- stored (walcast creates its publication so there), and never a virtual
-- one. A column it does not send is "omitted": walcast leaves it out of
-- snapshot rows too, so live and snapshot rows have the same shape, and
-- lists it in each event's `omitted` (docs/protocol.md "Generated columns").

ALTER TABLE walcast.tables ADD COLUMN IF NOT EXISTS omitted_columns text[] NOT NULL DEFAULT '{}';

-- The generated columns of `tbl` that publication `pub` does not send.
-- (pubgencols is read through to_jsonb: the column exists only from 18 on.)
CREATE OR REPLACE FUNCTION walcast.omitted_columns(tbl regclass, pub text) RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce(array_agg(a.attname::text ORDER BY a.attnum), '{}')
  FROM pg_attribute a
  WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated <> ''
    AND NOT (a.attgenerated = 's' AND coalesce(
      (SELECT to_jsonb(p) ->> 'pubgencols' = 's' FROM pg_publication p WHERE p.pubname = pub), false))
$$;

-- Creates publication `pub` if missing, with walcast.tables in it. Partition
-- changes are published as the root's; on PostgreSQL 18 stored generated
-- columns are published too.
CREATE OR REPLACE FUNCTION walcast.publication_create(pub text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = pub) THEN
    BEGIN
      EXECUTE format('CREATE PUBLICATION %I WITH (publish_via_partition_root = true%s)', pub,
        CASE WHEN current_setting('server_version_num')::int >= 180000 THEN ', publish_generated_columns = stored' ELSE '' END);
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL; -- created concurrently
    END;
  END IF;
  PERFORM walcast.publication_add(pub, 'walcast.tables'::regclass);
END;
$$;

-- A publication walcast created before this file: publish them from now on.
DO $$
BEGIN
  IF current_setting('server_version_num')::int >= 180000
     AND EXISTS (SELECT 1 FROM pg_publication WHERE pubname = walcast.publication_name()) THEN
    EXECUTE format('ALTER PUBLICATION %I SET (publish_generated_columns = stored)', walcast.publication_name());
  END IF;
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE 'walcast: publication % is not ours to alter: its stored generated columns stay unpublished', walcast.publication_name()
    USING HINT = format('As its owner: ALTER PUBLICATION %I SET (publish_generated_columns = stored), then run register_table again for tables with generated columns.', walcast.publication_name());
END;
$$;

-- Tells what happens to the generated columns of `tbl` (register_table calls it).
CREATE OR REPLACE FUNCTION walcast.generated_notice(tbl regclass, pub text, omitted text[]) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  generated text[];
BEGIN
  SELECT array_agg(quote_ident(a.attname) ORDER BY a.attnum) INTO generated FROM pg_attribute a
  WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated <> '';
  IF generated IS NULL THEN
    RETURN;
  END IF;
  IF cardinality(omitted) = 0 THEN
    RAISE NOTICE 'walcast: generated columns % of % are sent in events and snapshot rows', array_to_string(generated, ', '), tbl
      USING DETAIL = format('Publication %I publishes stored generated columns (publish_generated_columns = stored, PostgreSQL 18).', pub);
  ELSE
    RAISE NOTICE 'walcast: generated columns % of % are not sent', array_to_string(omitted, ', '), tbl
      USING DETAIL = 'PostgreSQL does not publish them (stored generated columns only from version 18 with publish_generated_columns = stored; virtual ones never). Events and snapshot rows leave them out and list them in "omitted".',
            HINT = format('Compute them in the client, or, on PostgreSQL 18, make them STORED and run ALTER PUBLICATION %I SET (publish_generated_columns = stored). Run register_table again after adding or dropping a generated column.', pub);
  END IF;
END;
$$;

-- Registers `tbl` (as in 002_delivery.sql), now recording its omitted
-- generated columns, so the relay lists them in each event.
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
  omitted text[];
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
  omitted := walcast.omitted_columns(tbl, pub);
  PERFORM walcast.generated_notice(tbl, pub, omitted);
  SELECT n.nspname, c.relname INTO nsp, rel
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl;
  -- The WHERE skips no-op updates, which would reach the relay as events.
  INSERT INTO walcast.tables AS t (schema_name, table_name, channel_column, ttl, time_column, kind, omitted_columns)
  VALUES (nsp, rel, register_table.channel_column, register_table.ttl, register_table.time_column, register_table.kind, omitted)
  ON CONFLICT (schema_name, table_name) DO UPDATE
    SET channel_column = excluded.channel_column, ttl = excluded.ttl, time_column = excluded.time_column, kind = excluded.kind,
        omitted_columns = excluded.omitted_columns
    WHERE (t.channel_column, t.ttl, t.time_column, t.kind, t.omitted_columns) IS DISTINCT FROM
          (excluded.channel_column, excluded.ttl, excluded.time_column, excluded.kind, excluded.omitted_columns);
END;
$$;

-- Tables registered before this file.
UPDATE walcast.tables t SET omitted_columns = walcast.omitted_columns(c.oid, walcast.publication_name())
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = t.schema_name AND c.relname = t.table_name;
