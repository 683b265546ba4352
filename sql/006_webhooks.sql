-- Webhooks (relay/sinks/webhooks.ts, docs/webhooks.md): HTTP endpoints the
-- active relay calls with batches of events, signed per Standard Webhooks.
-- Defined here like tables; a running relay reads this table every second,
-- so a change takes effect without a restart.
-- (Numbered 006 on purpose: 004 and 005 are left to branches in flight.)

CREATE TABLE IF NOT EXISTS walcast.webhooks (
  name text PRIMARY KEY,
  url text NOT NULL,
  -- whsec_<base64 key>, as Standard Webhooks writes it.
  secret text NOT NULL,
  -- A channel pattern as in the grants: literal text, `*` any run of characters.
  channels text NOT NULL DEFAULT '*',
  -- Table names as events name them (bare in public); NULL: every table.
  tables text[],
  enabled boolean NOT NULL DEFAULT true,
  -- Why the relay disabled it (410 Gone), if it did.
  disabled_reason text,
  -- Position of the last event delivered (a 2xx, or dead-lettered). The relay
  -- resumes after it; NULL: from the moment the relay loads the webhook.
  cursor text,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Batches that failed every attempt; delivery went on after them.
CREATE TABLE IF NOT EXISTS walcast.webhook_dead_letters (
  id bigserial PRIMARY KEY,
  webhook text NOT NULL,
  -- The webhook-id the batch was sent with (its first event's position).
  message_id text NOT NULL,
  events jsonb NOT NULL,
  attempts int NOT NULL,
  last_status int,
  last_body text,
  failed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS webhook_dead_letters_webhook ON walcast.webhook_dead_letters (webhook, id);

-- Adds or updates (same name) a webhook. The secret must be a Standard
-- Webhooks secret: whsec_ and the base64 of 24 to 64 random bytes.
CREATE OR REPLACE FUNCTION walcast.add_webhook(
  name text, url text, secret text, channels text DEFAULT '*', tables text[] DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  key bytea;
BEGIN
  IF name IS NULL OR name !~ '^[A-Za-z0-9_.-]{1,100}$' THEN
    RAISE EXCEPTION 'webhook name % is not allowed', coalesce(quote_literal(name), 'NULL')
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Use 1 to 100 letters, digits, ".", "-" or "_".';
  END IF;
  IF url IS NULL OR url !~ '^https?://[^\s/]+' THEN
    RAISE EXCEPTION 'webhook url % is not an http:// or https:// URL', coalesce(quote_literal(url), 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  BEGIN
    key := decode(substr(secret, 7), 'base64');
  EXCEPTION WHEN others THEN
    key := NULL;
  END;
  IF secret IS NULL OR left(secret, 6) <> 'whsec_' OR key IS NULL OR length(key) < 24 OR length(key) > 64 THEN
    RAISE EXCEPTION 'webhook secret is not a Standard Webhooks secret'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Give whsec_ followed by the base64 of 24 to 64 random bytes, e.g. select ''whsec_'' || encode(gen_random_bytes(32), ''base64'') (pgcrypto), or openssl rand -base64 32.';
  END IF;
  IF channels IS NULL OR channels = '' THEN
    RAISE EXCEPTION 'webhook channels pattern is empty' USING ERRCODE = 'invalid_parameter_value', HINT = 'Use ''*'' for every channel.';
  END IF;
  INSERT INTO walcast.webhooks AS w (name, url, secret, channels, tables)
  VALUES (add_webhook.name, add_webhook.url, add_webhook.secret, add_webhook.channels, add_webhook.tables)
  ON CONFLICT ON CONSTRAINT webhooks_pkey DO UPDATE
    SET url = excluded.url, secret = excluded.secret, channels = excluded.channels, tables = excluded.tables, updated_at = now();
END;
$$;

CREATE OR REPLACE FUNCTION walcast.webhook_exists(name text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM walcast.webhooks w WHERE w.name = webhook_exists.name) THEN
    RAISE EXCEPTION 'webhook % does not exist', quote_literal(name)
      USING ERRCODE = 'undefined_object', HINT = 'List them with select name from walcast.webhooks.';
  END IF;
END;
$$;

CREATE OR REPLACE FUNCTION walcast.remove_webhook(name text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM walcast.webhook_exists(name);
  DELETE FROM walcast.webhooks w WHERE w.name = remove_webhook.name;
END;
$$;

-- Enabled again, it resumes with the events committed from then on (the
-- slot does not wait for a disabled webhook, so what came meanwhile is gone).
CREATE OR REPLACE FUNCTION walcast.enable_webhook(name text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM walcast.webhook_exists(name);
  UPDATE walcast.webhooks w SET enabled = true, disabled_reason = NULL, cursor = NULL, updated_at = now()
  WHERE w.name = enable_webhook.name AND NOT w.enabled;
END;
$$;

CREATE OR REPLACE FUNCTION walcast.disable_webhook(name text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM walcast.webhook_exists(name);
  UPDATE walcast.webhooks w SET enabled = false, updated_at = now() WHERE w.name = disable_webhook.name AND w.enabled;
END;
$$;
