-- Publishing from clients (relay/publish/): a JSON Schema per registered
-- table, and columns whose value comes from a claim of the client's token.
-- Both live with the registration and take effect in a running relay: the
-- relay sees walcast.tables change through the replication stream.

-- NULL: the relay derives a schema from the table's columns and types.
ALTER TABLE walcast.tables ADD COLUMN IF NOT EXISTS row_schema jsonb;
-- {"column": "claim"}: e.g. {"sender": "sub"}. A client cannot set these columns.
ALTER TABLE walcast.tables ADD COLUMN IF NOT EXISTS claim_columns jsonb NOT NULL DEFAULT '{}';

-- The registration of `tbl`, or an error saying how to make one.
CREATE OR REPLACE FUNCTION walcast.registered(tbl regclass) RETURNS walcast.tables
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  reg walcast.tables;
BEGIN
  SELECT t.* INTO reg FROM walcast.tables t
  JOIN pg_namespace n ON n.nspname = t.schema_name
  JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.table_name
  WHERE c.oid = tbl;
  IF NOT FOUND THEN
    RAISE EXCEPTION '% is not registered with walcast', tbl
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = format('Run select walcast.register_table(%L, channel_column => ''<column>'') first.', tbl::text);
  END IF;
  RETURN reg;
END;
$$;

-- Sets the JSON Schema (draft 2020-12 or 07, as ajv reads it) a published
-- row of `tbl` must match; NULL goes back to the schema derived from the
-- columns. The relay compiles it when it first needs it: a schema it cannot
-- compile makes publishes to the table fail with publish_failed, logged.
CREATE OR REPLACE FUNCTION walcast.set_row_schema(tbl regclass, row_schema jsonb) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  reg walcast.tables := walcast.registered(tbl);
BEGIN
  IF row_schema IS NOT NULL AND jsonb_typeof(row_schema) NOT IN ('object', 'boolean') THEN
    RAISE EXCEPTION 'a row schema is a JSON object (or true/false), not %', jsonb_typeof(row_schema)
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass e.g. ''{"type":"object","properties":{"body":{"type":"string","maxLength":2000}}}''.';
  END IF;
  UPDATE walcast.tables t SET row_schema = set_row_schema.row_schema
  WHERE t.schema_name = reg.schema_name AND t.table_name = reg.table_name
    AND t.row_schema IS DISTINCT FROM set_row_schema.row_schema;
END;
$$;

-- Binds column `col` of `tbl` to the token claim `claim` (e.g. 'sub'): a
-- published row gets the claim's value there, and a client that sets the
-- column itself is refused. NULL unbinds it.
CREATE OR REPLACE FUNCTION walcast.set_claim_column(tbl regclass, col text, claim text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  reg walcast.tables := walcast.registered(tbl);
  bound jsonb;
BEGIN
  PERFORM walcast.column_number(tbl, col, 'col');
  IF claim IS NOT NULL AND (claim = '' OR length(claim) > 128) THEN
    RAISE EXCEPTION 'invalid claim name %', quote_literal(claim)
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Name a claim of the token, e.g. ''sub''.';
  END IF;
  bound := CASE WHEN claim IS NULL THEN reg.claim_columns - col
                ELSE reg.claim_columns || jsonb_build_object(col, claim) END;
  UPDATE walcast.tables t SET claim_columns = bound
  WHERE t.schema_name = reg.schema_name AND t.table_name = reg.table_name
    AND t.claim_columns IS DISTINCT FROM bound;
END;
$$;
