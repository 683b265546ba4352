-- MQTT ingest (relay/ingest/, docs/ingest.md): brokers walcast subscribes
-- to, and flows that say which topics go where (a table, or an HTTP URL),
-- how each payload is checked, and how redeliveries are recognised.
-- Defined here like tables and webhooks; the active relay reads
-- walcast.brokers and walcast.flows every second, so a change takes effect
-- without a restart (and without reconnecting a broker whose own settings
-- did not change).

CREATE TABLE IF NOT EXISTS walcast.brokers (
  name text PRIMARY KEY,
  -- mqtt://, mqtts://, ws:// or wss://
  url text NOT NULL,
  username text,
  -- As given, or env:VAR: the relay reads VAR from its environment.
  password text,
  -- NULL: walcast_<name>. A persistent session is found again by its client id.
  client_id text,
  -- false: a persistent session, so the broker keeps QoS 1 messages while walcast is away.
  clean boolean NOT NULL DEFAULT false,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS walcast.flows (
  name text PRIMARY KEY,
  broker text NOT NULL REFERENCES walcast.brokers (name),
  -- An MQTT topic filter; a level written {column} matches like + and its value goes to that column.
  topic_filter text NOT NULL,
  action text NOT NULL CHECK (action IN ('insert', 'upsert', 'post')),
  -- A table (schema-qualified, as add_flow resolved it) or an http(s):// URL.
  target text NOT NULL,
  -- A JSON Schema each payload must match; NULL: any JSON object.
  schema jsonb,
  qos smallint NOT NULL DEFAULT 1 CHECK (qos IN (0, 1)),
  -- A payload field or topic capture whose value identifies a message: a
  -- redelivered message with a key seen before makes no second row.
  dedup_key text,
  enabled boolean NOT NULL DEFAULT true,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS flows_broker ON walcast.flows (broker);

-- Messages that could not be written or posted; the flow went on after them.
-- Replay one by publishing it again, or with SQL (docs/ingest.md#dead-letters).
CREATE TABLE IF NOT EXISTS walcast.dead_letters (
  id bigserial PRIMARY KEY,
  flow text NOT NULL,
  topic text NOT NULL,
  payload bytea NOT NULL,
  -- A stable code of docs/errors.md (ingest_invalid_json, ingest_schema_mismatch, …).
  code text NOT NULL,
  detail text NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS dead_letters_flow ON walcast.dead_letters (flow, id);

-- Dedup keys seen per flow, written in the transaction of the row they
-- belong to; the relay deletes keys older than a day (docs/ingest.md#dedup).
CREATE TABLE IF NOT EXISTS walcast.ingest_dedup (
  flow text NOT NULL,
  key text NOT NULL,
  seen_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (flow, key)
);
CREATE INDEX IF NOT EXISTS ingest_dedup_seen ON walcast.ingest_dedup (seen_at);

-- Counters per flow, added to in the transaction that commits the rows (so
-- they agree with the table) and by each POST outcome. `walcast flows` reads them.
CREATE TABLE IF NOT EXISTS walcast.flow_stats (
  flow text PRIMARY KEY REFERENCES walcast.flows (name) ON DELETE CASCADE,
  committed bigint NOT NULL DEFAULT 0,
  duplicates bigint NOT NULL DEFAULT 0,
  dead_lettered bigint NOT NULL DEFAULT 0,
  -- Why the relay does not run the flow, or NULL while it runs: state 'failed' (its target table is
  -- gone, its schema does not compile, …) or 'refused' (the broker refused its subscription), and error.
  state text,
  error text,
  last_at timestamptz
);

-- Each broker's connection, as the active relay last saw it.
CREATE TABLE IF NOT EXISTS walcast.broker_status (
  broker text PRIMARY KEY REFERENCES walcast.brokers (name) ON DELETE CASCADE,
  state text NOT NULL,
  detail text,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE OR REPLACE FUNCTION walcast.check_ingest_name(kind text, name text) RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF name IS NULL OR name !~ '^[A-Za-z0-9_.-]{1,100}$' THEN
    RAISE EXCEPTION '% name % is not allowed', kind, coalesce(quote_literal(name), 'NULL')
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Use 1 to 100 letters, digits, ".", "-" or "_".';
  END IF;
END;
$$;

-- Adds or updates (same name) a broker. A running relay reconnects it when its settings changed.
CREATE OR REPLACE FUNCTION walcast.add_broker(
  name text, url text, username text DEFAULT NULL, password text DEFAULT NULL,
  client_id text DEFAULT NULL, clean boolean DEFAULT false
) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM walcast.check_ingest_name('broker', name);
  IF url IS NULL OR url !~ '^(mqtt|mqtts|ws|wss)://[^\s/]+' THEN
    RAISE EXCEPTION 'broker url % is not an mqtt://, mqtts://, ws:// or wss:// URL', coalesce(quote_literal(url), 'NULL')
      USING ERRCODE = 'invalid_parameter_value', HINT = 'For example mqtt://broker.local:1883 or wss://broker.example.com/mqtt.';
  END IF;
  IF password ~ '^env:' AND password !~ '^env:[A-Za-z_][A-Za-z0-9_]*$' THEN
    RAISE EXCEPTION 'broker password % does not name an environment variable', quote_literal(password)
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Write env:VAR with VAR a variable of the relay''s environment, e.g. env:SENSORS_MQTT_PASSWORD.';
  END IF;
  IF client_id IS NOT NULL AND (client_id = '' OR length(client_id) > 128) THEN
    RAISE EXCEPTION 'broker client_id must be 1 to 128 characters' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF clean IS NULL THEN
    RAISE EXCEPTION 'broker clean must be true or false' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO walcast.brokers AS b (name, url, username, password, client_id, clean)
  VALUES (add_broker.name, add_broker.url, add_broker.username, add_broker.password, add_broker.client_id, add_broker.clean)
  ON CONFLICT ON CONSTRAINT brokers_pkey DO UPDATE
    SET url = excluded.url, username = excluded.username, password = excluded.password,
        client_id = excluded.client_id, clean = excluded.clean, updated_at = now();
END;
$$;

CREATE OR REPLACE FUNCTION walcast.remove_broker(name text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  users text;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM walcast.brokers b WHERE b.name = remove_broker.name) THEN
    RAISE EXCEPTION 'broker % does not exist', quote_literal(name)
      USING ERRCODE = 'undefined_object', HINT = 'List them with select name from walcast.brokers.';
  END IF;
  SELECT string_agg(f.name, ', ' ORDER BY f.name) INTO users FROM walcast.flows f WHERE f.broker = remove_broker.name;
  IF users IS NOT NULL THEN
    RAISE EXCEPTION 'broker % is used by flows %', quote_literal(name), users
      USING ERRCODE = 'dependent_objects_still_exist', HINT = 'Remove those flows first (select walcast.remove_flow(name)).';
  END IF;
  DELETE FROM walcast.brokers b WHERE b.name = remove_broker.name;
END;
$$;

-- The columns a topic filter captures ({column} levels), in order; raises
-- when the filter is not a valid MQTT filter (MQTT 3.1.1 section 4.7.1).
-- A leading $share/<group>/ (MQTT 5 shared subscription) is allowed.
CREATE OR REPLACE FUNCTION walcast.topic_filter_captures(topic_filter text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  levels text[];
  level text;
  captures text[] := '{}';
  i int;
  filter text := topic_filter;
BEGIN
  IF filter IS NULL OR filter = '' OR length(filter) > 1000 THEN
    RAISE EXCEPTION 'topic filter is empty or longer than 1000 characters' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF filter ~ '^\$share/' THEN
    IF filter !~ '^\$share/[^/+#{}]+/.' THEN
      RAISE EXCEPTION 'topic filter % has no share name or no filter after $share/', quote_literal(topic_filter)
        USING ERRCODE = 'invalid_parameter_value', HINT = 'Write $share/<group>/<filter>, e.g. $share/walcast/sensors/+/temperature.';
    END IF;
    filter := regexp_replace(filter, '^\$share/[^/]+/', '');
  END IF;
  levels := string_to_array(filter, '/');
  FOR i IN 1 .. array_length(levels, 1) LOOP
    level := levels[i];
    IF level = '#' THEN
      IF i <> array_length(levels, 1) THEN
        RAISE EXCEPTION 'topic filter %: # must be the last level', quote_literal(topic_filter)
          USING ERRCODE = 'invalid_parameter_value';
      END IF;
    ELSIF level ~ '^\{.*\}$' THEN
      IF level !~ '^\{[a-z_][a-z0-9_]{0,62}\}$' THEN
        RAISE EXCEPTION 'topic filter %: % does not name a column', quote_literal(topic_filter), level
          USING ERRCODE = 'invalid_parameter_value', HINT = 'Write {column} with a lower-case column name, e.g. sensors/{device}/temperature.';
      END IF;
      IF substr(level, 2, length(level) - 2) = ANY (captures) THEN
        RAISE EXCEPTION 'topic filter %: % is captured twice', quote_literal(topic_filter), level
          USING ERRCODE = 'invalid_parameter_value';
      END IF;
      captures := captures || substr(level, 2, length(level) - 2);
    ELSIF level <> '+' AND level ~ '[+#{}]' THEN
      RAISE EXCEPTION 'topic filter %: level % mixes a wildcard with text', quote_literal(topic_filter), quote_literal(level)
        USING ERRCODE = 'invalid_parameter_value', HINT = '+, # and {column} stand for a whole level: sensors/+/temperature, not sensors/dev+/temperature.';
    END IF;
  END LOOP;
  RETURN captures;
END;
$$;

-- Adds or updates (same name) a flow; it starts enabled (an update keeps its enabled flag).
-- No SET search_path here: the target table is found on the caller's search
-- path, like a table name in the caller's own query (the function is not
-- SECURITY DEFINER, so it can do nothing the caller could not).
CREATE OR REPLACE FUNCTION walcast.add_flow(
  name text, broker text, topic_filter text, action text, target text,
  schema jsonb DEFAULT NULL, qos int DEFAULT 1, dedup_key text DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
  captures text[];
  rel regclass;
  resolved text := target;
  col text;
BEGIN
  PERFORM walcast.check_ingest_name('flow', name);
  IF NOT EXISTS (SELECT 1 FROM walcast.brokers b WHERE b.name = add_flow.broker) THEN
    RAISE EXCEPTION 'broker % does not exist', coalesce(quote_literal(broker), 'NULL')
      USING ERRCODE = 'undefined_object', HINT = 'Add it first with select walcast.add_broker(name, url).';
  END IF;
  captures := walcast.topic_filter_captures(topic_filter);
  IF action IS NULL OR action NOT IN ('insert', 'upsert', 'post') THEN
    RAISE EXCEPTION 'flow action % is not insert, upsert or post', coalesce(quote_literal(action), 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF qos IS NULL OR qos NOT IN (0, 1) THEN
    RAISE EXCEPTION 'flow qos % is not 0 or 1', coalesce(qos::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Use 1 (acknowledged after the row is committed) unless losing messages is fine.';
  END IF;
  IF schema IS NOT NULL AND jsonb_typeof(schema) <> 'object' THEN
    RAISE EXCEPTION 'flow schema is a JSON %, not a JSON Schema object', jsonb_typeof(schema)
      USING ERRCODE = 'invalid_parameter_value', HINT = 'For example {"type": "object", "required": ["value"]}.';
  END IF;
  IF dedup_key IS NOT NULL AND dedup_key !~ '^[A-Za-z_][A-Za-z0-9_]{0,62}$' THEN
    RAISE EXCEPTION 'flow dedup_key % is not a field name', quote_literal(dedup_key)
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Name a payload field or a {capture} of the topic filter.';
  END IF;
  IF action = 'post' THEN
    IF target IS NULL OR target !~ '^https?://[^\s/]+' THEN
      RAISE EXCEPTION 'flow target % is not an http:// or https:// URL (action post)', coalesce(quote_literal(target), 'NULL')
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
  ELSE
    rel := to_regclass(target);
    IF rel IS NULL THEN
      RAISE EXCEPTION 'flow target table % does not exist', coalesce(quote_literal(target), 'NULL')
        USING ERRCODE = 'undefined_table', HINT = 'Create the table first, or give its schema-qualified name.';
    END IF;
    IF NOT has_table_privilege(rel, 'INSERT') OR (action = 'upsert' AND NOT has_table_privilege(rel, 'UPDATE')) THEN
      RAISE EXCEPTION 'flow target table % is not writable (% needs INSERT%)', rel, action,
        CASE WHEN action = 'upsert' THEN ' and UPDATE' ELSE '' END
        USING ERRCODE = 'insufficient_privilege', HINT = 'GRANT INSERT (and UPDATE for upsert) on the table to the relay''s role.';
    END IF;
    IF action = 'upsert' AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = rel AND i.indisprimary) THEN
      RAISE EXCEPTION 'flow target table % has no primary key, which upsert needs', rel
        USING ERRCODE = 'invalid_parameter_value', HINT = 'Add a primary key, or use action insert.';
    END IF;
    FOREACH col IN ARRAY captures LOOP
      IF NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = rel AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped) THEN
        RAISE EXCEPTION 'flow topic filter captures {%}, but table % has no column %', col, rel, col
          USING ERRCODE = 'undefined_column';
      END IF;
    END LOOP;
    SELECT format('%I.%I', n.nspname, c.relname) INTO resolved
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = rel;
  END IF;
  INSERT INTO walcast.flows AS f (name, broker, topic_filter, action, target, schema, qos, dedup_key)
  VALUES (add_flow.name, add_flow.broker, add_flow.topic_filter, add_flow.action, resolved, add_flow.schema,
          add_flow.qos, add_flow.dedup_key)
  ON CONFLICT ON CONSTRAINT flows_pkey DO UPDATE
    SET broker = excluded.broker, topic_filter = excluded.topic_filter, action = excluded.action,
        target = excluded.target, schema = excluded.schema, qos = excluded.qos, dedup_key = excluded.dedup_key,
        updated_at = now();
  INSERT INTO walcast.flow_stats (flow) VALUES (add_flow.name) ON CONFLICT DO NOTHING;
END;
$$;

CREATE OR REPLACE FUNCTION walcast.flow_exists(name text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM walcast.flows f WHERE f.name = flow_exists.name) THEN
    RAISE EXCEPTION 'flow % does not exist', coalesce(quote_literal(name), 'NULL')
      USING ERRCODE = 'undefined_object', HINT = 'List them with select name from walcast.flows (or walcast flows).';
  END IF;
END;
$$;

CREATE OR REPLACE FUNCTION walcast.enable_flow(name text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM walcast.flow_exists(name);
  UPDATE walcast.flows f SET enabled = true, updated_at = now() WHERE f.name = enable_flow.name AND NOT f.enabled;
END;
$$;

CREATE OR REPLACE FUNCTION walcast.disable_flow(name text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM walcast.flow_exists(name);
  UPDATE walcast.flows f SET enabled = false, updated_at = now() WHERE f.name = disable_flow.name AND f.enabled;
END;
$$;

-- Its dead letters stay (they name the flow); its stats and dedup keys go.
CREATE OR REPLACE FUNCTION walcast.remove_flow(name text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM walcast.flow_exists(name);
  DELETE FROM walcast.flows f WHERE f.name = remove_flow.name;
  DELETE FROM walcast.ingest_dedup d WHERE d.flow = remove_flow.name;
END;
$$;
