-- The walcast schema: which tables the relay publishes, and the functions an
-- operator calls to register them. Applied once by relay/db/migrate.ts inside
-- a transaction; later changes go in new numbered files (002_…), never here.
-- Must run on PostgreSQL 14 to 18: no MERGE, no publication column lists or
-- row filters, no FOR TABLES IN SCHEMA.

-- The runner creates the schema before this file (for walcast.migrations).
CREATE SCHEMA IF NOT EXISTS walcast;

CREATE TABLE IF NOT EXISTS walcast.config (
  key text PRIMARY KEY,
  value text NOT NULL
);

INSERT INTO walcast.config (key, value) VALUES ('publication', 'realtime_events')
ON CONFLICT (key) DO NOTHING;

-- One row per registered table. Names are stored as in pg_namespace/pg_class
-- (unquoted). Later migrations add columns (e.g. a JSON schema) with ALTER.
CREATE TABLE IF NOT EXISTS walcast.tables (
  schema_name text NOT NULL,
  table_name text NOT NULL,
  channel_column text NOT NULL,
  ttl interval,
  time_column text,
  registered_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (schema_name, table_name)
);

-- The relay follows registrations through the replication stream; with FULL,
-- a DELETE carries the whole old row, not only the primary key.
ALTER TABLE walcast.tables REPLICA IDENTITY FULL;

-- The publication name the relay and register_table use.
CREATE OR REPLACE FUNCTION walcast.publication_name() RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce((SELECT value FROM walcast.config WHERE key = 'publication'), 'realtime_events')
$$;

-- Does publication `pub` publish `rel`? Directly, FOR ALL TABLES, or (PG15+)
-- through its schema, which pg_publication_tables reports.
CREATE OR REPLACE FUNCTION walcast.publication_has(pub text, rel regclass) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT EXISTS (SELECT 1 FROM pg_publication p WHERE p.pubname = pub AND p.puballtables)
      OR EXISTS (SELECT 1 FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid
                 WHERE p.pubname = pub AND pr.prrelid = rel)
      OR EXISTS (SELECT 1 FROM pg_publication_tables pt
                 JOIN pg_class c ON c.relname = pt.tablename
                 JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = pt.schemaname
                 WHERE pt.pubname = pub AND c.oid = rel)
$$;

-- Adds `rel` to `pub` unless it is already published there. A concurrent
-- caller may add it between the check and the ALTER; that is success too.
CREATE OR REPLACE FUNCTION walcast.publication_add(pub text, rel regclass) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF walcast.publication_has(pub, rel) THEN
    RETURN;
  END IF;
  BEGIN
    EXECUTE format('ALTER PUBLICATION %I ADD TABLE %s', pub, rel);
  EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
  END;
END;
$$;

-- Creates publication `pub` if missing, with walcast.tables in it. Partition
-- changes are published as the root's, the table a user registers.
CREATE OR REPLACE FUNCTION walcast.publication_create(pub text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = pub) THEN
    BEGIN
      EXECUTE format('CREATE PUBLICATION %I WITH (publish_via_partition_root = true)', pub);
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL; -- created concurrently
    END;
  END IF;
  PERFORM walcast.publication_add(pub, 'walcast.tables'::regclass);
END;
$$;

-- Does the old row of an UPDATE/DELETE on `rel` carry column `att` in logical
-- decoding? Only if the replica identity (FULL, the primary key under
-- DEFAULT, or the USING INDEX index) includes it.
CREATE OR REPLACE FUNCTION walcast.identity_has_column(rel regclass, att smallint) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE c.relreplident
    WHEN 'f' THEN true
    WHEN 'd' THEN EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = rel AND i.indisprimary AND att = ANY (i.indkey))
    WHEN 'i' THEN EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = rel AND i.indisreplident AND att = ANY (i.indkey))
    ELSE false
  END
  FROM pg_class c WHERE c.oid = rel
$$;

-- Sets REPLICA IDENTITY FULL on `rel` and its partitions whose identity does
-- not include `col`. Replica identity is per partition and does not recurse.
CREATE OR REPLACE FUNCTION walcast.ensure_identity(rel regclass, col text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  part regclass;
  changed text[] := '{}';
BEGIN
  FOR part IN
    -- pg_partition_tree lists nothing for a table that is not partitioned.
    SELECT t.relid FROM (SELECT rel AS relid UNION SELECT relid FROM pg_partition_tree(rel)) t
    JOIN pg_class c ON c.oid = t.relid AND c.relkind IN ('r', 'p')
    WHERE NOT walcast.identity_has_column(t.relid, (
      SELECT a.attnum FROM pg_attribute a WHERE a.attrelid = t.relid AND a.attname = col))
  LOOP
    EXECUTE format('ALTER TABLE %s REPLICA IDENTITY FULL', part);
    changed := changed || part::text;
  END LOOP;
  IF cardinality(changed) > 0 THEN
    RAISE NOTICE 'walcast: set REPLICA IDENTITY FULL on %', array_to_string(changed, ', ')
      USING DETAIL = format('Its replica identity did not include the channel column %I, so the old row of an UPDATE or DELETE would not say which channel to send the event to.', col),
            HINT = format('To write less WAL, create a unique index on NOT NULL columns that include %I and run ALTER TABLE %s REPLICA IDENTITY USING INDEX <index>.', col, rel);
  END IF;
END;
$$;

-- The number of column `col` of `rel`, with a clear error if it is missing.
CREATE OR REPLACE FUNCTION walcast.column_number(rel regclass, col text, arg text) RETURNS smallint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  num smallint;
  cols text;
BEGIN
  SELECT a.attnum INTO num FROM pg_attribute a
  WHERE a.attrelid = rel AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
  IF num IS NULL THEN
    SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO cols FROM pg_attribute a
    WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped;
    RAISE EXCEPTION 'column % of table % does not exist', quote_ident(col), rel
      USING ERRCODE = 'undefined_column',
            HINT = format('%s must name a column of %s; its columns are: %s. Names are case-sensitive, as in pg_attribute.', arg, rel, coalesce(cols, '(none)'));
  END IF;
  RETURN num;
END;
$$;

-- Checks the arguments of register_table; raises on the first problem.
CREATE OR REPLACE FUNCTION walcast.check_registration(
  tbl regclass, channel_column text, ttl interval, time_column text
) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  kind "char";
  persistence "char";
  generated "char";
  time_type regtype;
BEGIN
  SELECT relkind, relpersistence INTO kind, persistence FROM pg_class WHERE oid = tbl;
  IF kind NOT IN ('r', 'p') THEN
    RAISE EXCEPTION '% is not a table', tbl
      USING ERRCODE = 'wrong_object_type', HINT = 'Only ordinary and partitioned tables can be registered.';
  END IF;
  IF persistence <> 'p' THEN
    RAISE EXCEPTION '% is temporary or unlogged, and logical replication cannot publish it', tbl
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = format('ALTER TABLE %s SET LOGGED', tbl);
  END IF;
  SELECT attgenerated INTO generated FROM pg_attribute
  WHERE attrelid = tbl AND attnum = walcast.column_number(tbl, channel_column, 'channel_column');
  -- pgoutput does not publish generated columns before PostgreSQL 18.
  IF generated <> '' THEN
    RAISE EXCEPTION 'channel column % of % is a generated column', quote_ident(channel_column), tbl
      USING ERRCODE = 'feature_not_supported', HINT = 'Logical replication does not carry generated columns; use a stored, ordinary column.';
  END IF;
  IF ttl IS NOT NULL AND time_column IS NULL THEN
    RAISE EXCEPTION 'ttl needs time_column'
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Name the timestamptz, timestamp or date column the ttl is measured from, e.g. time_column => ''created_at''.';
  END IF;
  IF ttl IS NOT NULL AND ttl <= interval '0' THEN
    RAISE EXCEPTION 'ttl must be positive, not %', ttl
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass e.g. ttl => interval ''7 days'', or NULL to keep rows forever.';
  END IF;
  IF time_column IS NOT NULL THEN
    SELECT atttypid::regtype INTO time_type FROM pg_attribute
    WHERE attrelid = tbl AND attnum = walcast.column_number(tbl, time_column, 'time_column');
    IF time_type NOT IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype) THEN
      RAISE EXCEPTION 'time column % of % has type %, not a timestamp', quote_ident(time_column), tbl, time_type
        USING ERRCODE = 'invalid_parameter_value', HINT = 'time_column must be of type timestamptz, timestamp or date.';
    END IF;
  END IF;
END;
$$;

-- Registers `tbl`: its rows go to subscribers of the channel in
-- `channel_column`; with a ttl, the relay deletes rows whose `time_column` is
-- older than that. Safe to call again, which updates the registration.
CREATE OR REPLACE FUNCTION walcast.register_table(
  tbl regclass, channel_column text, ttl interval DEFAULT NULL, time_column text DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  pub text := walcast.publication_name();
  nsp name;
  rel name;
BEGIN
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
  INSERT INTO walcast.tables AS t (schema_name, table_name, channel_column, ttl, time_column)
  VALUES (nsp, rel, register_table.channel_column, register_table.ttl, register_table.time_column)
  ON CONFLICT (schema_name, table_name) DO UPDATE
    SET channel_column = excluded.channel_column, ttl = excluded.ttl, time_column = excluded.time_column
    WHERE (t.channel_column, t.ttl, t.time_column) IS DISTINCT FROM
          (excluded.channel_column, excluded.ttl, excluded.time_column);
END;
$$;

-- Stops publishing `tbl` and forgets its registration. Safe to call again.
-- Its replica identity is left as it is.
CREATE OR REPLACE FUNCTION walcast.unregister_table(tbl regclass) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  pub text := walcast.publication_name();
BEGIN
  IF EXISTS (SELECT 1 FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid
             WHERE p.pubname = pub AND pr.prrelid = tbl) THEN
    EXECUTE format('ALTER PUBLICATION %I DROP TABLE %s', pub, tbl);
  ELSIF walcast.publication_has(pub, tbl) THEN
    RAISE NOTICE 'walcast: % stays published by %, which publishes it for all tables or by schema', tbl, pub;
  END IF;
  DELETE FROM walcast.tables t USING pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.oid = tbl AND t.schema_name = n.nspname AND t.table_name = c.relname;
END;
$$;

-- Makes `name` the relay's publication: creates it if missing, with
-- walcast.tables and every registered table that still exists.
CREATE OR REPLACE FUNCTION walcast.ensure_publication(name text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  rel regclass;
BEGIN
  IF name IS NULL OR name !~ '^[a-z_][a-z0-9_]{0,62}$' THEN
    RAISE EXCEPTION 'invalid publication name %', coalesce(quote_literal(name), 'NULL')
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Use lower-case letters, digits and underscores, starting with a letter or underscore, at most 63 characters.';
  END IF;
  INSERT INTO walcast.config (key, value) VALUES ('publication', name)
  ON CONFLICT (key) DO UPDATE SET value = excluded.value
  WHERE walcast.config.value IS DISTINCT FROM excluded.value;
  PERFORM walcast.publication_create(name);
  FOR rel IN
    SELECT to_regclass(format('%I.%I', t.schema_name, t.table_name)) FROM walcast.tables t
    ORDER BY t.schema_name, t.table_name
  LOOP
    IF rel IS NOT NULL THEN
      PERFORM walcast.publication_add(name, rel);
    END IF;
  END LOOP;
END;
$$;
