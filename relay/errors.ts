// The relay's error registry: every operational error has a stable code, a
// message that says what went wrong, and the fix. docs/errors.md lists each
// code (a test keeps the two in step). Errors sent to WebSocket clients are
// the protocol's own and live in client/protocol.ts.

type Params = Record<string, string | number | undefined>;

interface ErrorSpec {
  /** What went wrong and how to fix it; `{name}` is replaced from params. */
  message: string;
  /** True when retrying later may succeed without a change by the operator. */
  retryable: boolean;
}

export const RELAY_ERRORS = {
  config_invalid: {
    message: '{detail}',
    retryable: false,
  },
  embedded_postgres_failed: {
    message:
      'the embedded PostgreSQL in {dataDir} did not start: {detail}. Check that no other server uses that data directory, or set DATABASE_URL to use your own PostgreSQL',
    retryable: false,
  },
  database_unreachable: {
    message: 'cannot connect to PostgreSQL at {target}: {detail}. Check DATABASE_URL and that the server is running',
    retryable: true,
  },
  wal_level_not_logical: {
    message: "wal_level is '{walLevel}'; run ALTER SYSTEM SET wal_level = logical and restart PostgreSQL",
    retryable: false,
  },
  replication_not_permitted: {
    message:
      'role {role} may not use replication; run ALTER ROLE {role} WITH REPLICATION (or connect as a role that has it)',
    retryable: false,
  },
  no_free_replication_slot: {
    message:
      'all {max} replication slots are in use and slot {slot} does not exist yet; drop an unused slot (SELECT pg_drop_replication_slot(name) FROM pg_replication_slots WHERE NOT active) or raise max_replication_slots and restart PostgreSQL',
    retryable: false,
  },
  no_free_wal_sender: {
    message:
      'all {max} WAL senders are busy; raise max_wal_senders and restart PostgreSQL, or stop an idle replication client',
    retryable: true,
  },
  live_slot_unavailable: {
    message:
      'no temporary replication slot for live rows while the recovery window is re-read ({detail}): live rows wait until the re-read is done. Raise max_replication_slots and max_wal_senders by one each (restart PostgreSQL), and end transactions left open',
    retryable: true,
  },
  slot_in_use: {
    message:
      'replication slot {slot} is in use by another process (pid {pid}); stop the other relay, or set WALCAST_SLOT to another name',
    retryable: true,
  },
  slot_wrong_plugin: {
    message:
      "replication slot {slot} uses the output plugin '{plugin}', not pgoutput; drop it (SELECT pg_drop_replication_slot('{slot}')) or set WALCAST_SLOT to another name",
    retryable: false,
  },
  slot_wrong_database: {
    message:
      'replication slot {slot} belongs to database {database}; set WALCAST_SLOT to another name, or drop that slot there',
    retryable: false,
  },
  migration_failed: {
    message: 'installing the walcast schema failed at {file}: {detail}',
    retryable: false,
  },
  replication_failed: {
    message: 'the replication stream failed: {detail}; reconnecting',
    retryable: true,
  },
  listen_failed: {
    message: 'cannot listen on {host}:{port}: {detail}. {fix}',
    retryable: false,
  },
  auth_required: {
    message:
      'no JWT key is configured and HOST is {host}, which is not a loopback address: anyone who reaches it could read every channel. Set WALCAST_JWT_SECRET, WALCAST_JWT_PUBLIC_KEY or WALCAST_JWKS_URL, bind to 127.0.0.1, or pass --insecure (WALCAST_INSECURE=true) to serve openly anyway',
    retryable: false,
  },
  auth_key_invalid: {
    message:
      'WALCAST_JWT_PUBLIC_KEY cannot be used: {detail}. Give an RSA (RS256) or P-256 (ES256) public key in PEM (-----BEGIN PUBLIC KEY-----)',
    retryable: false,
  },
  register_failed: {
    message:
      'registering {table} failed: {detail}. Fix the table or column named (or run walcast migrate if the walcast schema is missing)',
    retryable: false,
  },
  relay_unreachable: {
    message: 'cannot reach the relay at {url}: {detail}. Start one (walcast start) or pass --url (WALCAST_URL)',
    retryable: true,
  },
  relay_refused: {
    message:
      'the relay at {url} refused {request}: {detail}. Check the token (--token, WALCAST_TOKEN), the channel and the other arguments',
    retryable: false,
  },
  nats_stream_incompatible: {
    message:
      "JetStream stream {stream} cannot be used: {detail}. It must hold the subjects walcast.> (or be absent, and walcast creates it): add walcast.> to its subjects (nats stream edit {stream} --subjects 'walcast.>'), or set WALCAST_NATS_STREAM to another name",
    retryable: false,
  },
  nats_creds_invalid: {
    message:
      'WALCAST_NATS_CREDS {path} cannot be used: {detail}. Set it to a readable .creds file holding a user JWT and its NKey seed, as `nsc generate creds` writes it (or as your NATS account server issues it)',
    retryable: false,
  },
  nats_auth_failed: {
    message:
      'NATS at {url} refused the credentials walcast sent: {detail}. Set WALCAST_NATS_TOKEN, or WALCAST_NATS_USER and WALCAST_NATS_PASSWORD, or WALCAST_NATS_CREDS to what the server expects; the relay keeps retrying',
    retryable: true,
  },
  nats_tls_failed: {
    message:
      "the TLS connection to NATS at {url} failed: {detail}. Set WALCAST_NATS_CA to the PEM file of the CA that signed the server's certificate (its names must include the host in WALCAST_NATS_URL), or use nats:// if the server has no TLS; the relay keeps retrying",
    retryable: true,
  },
  nats_publish_failed: {
    message:
      'publishing to JetStream stream {stream} failed: {detail}; the relay retries from the last stored event (check that NATS is running at WALCAST_NATS_URL)',
    retryable: true,
  },
  ingest_broker_unreachable: {
    message:
      'MQTT broker {broker} at {url} cannot be reached or dropped the connection: {detail}; reconnecting with backoff (check the URL given to walcast.add_broker and that the broker runs)',
    retryable: true,
  },
  ingest_broker_refused: {
    message:
      'MQTT broker {broker} at {url} refused the connection: {detail}. Check the username and password given to walcast.add_broker (env:VAR passwords are read from the relay environment) and the broker ACL; the relay keeps retrying',
    retryable: true,
  },
  ingest_secret_missing: {
    message:
      'MQTT broker {broker} has password env:{variable}, but {variable} is not set in the relay environment; set it and restart the relay, or give the password to walcast.add_broker',
    retryable: false,
  },
  ingest_subscribe_refused: {
    message:
      "MQTT broker {broker} refused the subscription {filter} of flow {flow} (reason code {reason}); allow it in the broker ACL (walcast tries again every 30 s), or change the flow (walcast.add_flow); the broker's other flows go on",
    retryable: true,
  },
  ingest_flow_invalid: {
    message: 'flow {flow} cannot run: {detail}. Fix it with walcast.add_flow (or walcast.disable_flow)',
    retryable: false,
  },
  ingest_invalid_json: {
    message: 'flow {flow}: the payload on {topic} is not JSON: {detail}',
    retryable: false,
  },
  ingest_not_object: {
    message: 'flow {flow}: the payload on {topic} is a JSON {detail}, not an object whose keys name columns',
    retryable: false,
  },
  ingest_schema_mismatch: {
    message: "flow {flow}: the payload on {topic} does not match the flow's schema: {detail}",
    retryable: false,
  },
  ingest_dedup_key_missing: {
    message: 'flow {flow}: the payload on {topic} has no dedup key {key} (a string or number field, or a capture)',
    retryable: false,
  },
  ingest_constraint_violation: {
    message: 'flow {flow}: {table} refused the row from {topic}: {detail}',
    retryable: false,
  },
  ingest_invalid_value: {
    message: 'flow {flow}: a value from {topic} does not fit its column of {table}: {detail}',
    retryable: false,
  },
  ingest_insert_failed: {
    message: 'flow {flow}: writing the row from {topic} to {table} failed: {detail}',
    retryable: false,
  },
  ingest_post_rejected: {
    message: 'flow {flow}: {url} rejected the message from {topic} with HTTP {status}; it is not retried',
    retryable: false,
  },
  ingest_post_failed: {
    message: 'flow {flow}: posting the message from {topic} to {url} failed {attempts} times, last: {detail}',
    retryable: false,
  },
  // [edge] relay/edge/, docs/scaling.md
  edge_needs_nats: {
    message:
      'walcast edge serves clients from the JetStream change stream and needs WALCAST_NATS_URL: set it to the NATS server the slot relay publishes to (the slot relay runs with the same WALCAST_NATS_URL and WALCAST_NATS_STREAM)',
    retryable: false,
  },
  edge_needs_database: {
    message:
      'walcast edge needs DATABASE_URL (a read-only role or a read replica is enough) for the registered tables, snapshots and the slot epoch: set it; an edge never starts an embedded PostgreSQL',
    retryable: false,
  },
  edge_stream_missing: {
    message:
      'JetStream stream {stream} does not exist yet, or no slot relay has recorded an epoch: start the slot relay with WALCAST_NATS_URL (it creates the stream), or set WALCAST_NATS_STREAM to the stream it uses; the edge keeps checking every second',
    retryable: true,
  },
  supabase_invalid_token: {
    message:
      "the Supabase apikey or access_token was refused: {detail}. Use a JWT signed with one of walcast's keys (WALCAST_JWT_SECRET: a Supabase project's JWT secret works) as the anon key",
    retryable: false,
  },
  supabase_table_not_registered: {
    message:
      "table {table} is not registered with walcast, so its changes are not streamed: run select walcast.register_table('{table}', channel_column => '<column>')",
    retryable: false,
  },
  supabase_filter_unsupported: {
    message:
      'filter {filter} on {table} cannot be served: {detail}. Supported: column=eq.v, neq, lt, lte, gt, gte, in.(a,b), like.pattern, ilike.pattern and is.null (is.true, is.false on booleans), each also as not.<op>, up to 10 joined by commas (AND)',
    retryable: false,
  },
  supabase_forbidden: {
    message:
      "the token may not read {what}: add the channel to its channels claim, or filter on the table's channel column with a channel it grants (docs/supabase.md)",
    retryable: false,
  },
  supabase_private_forbidden: {
    message:
      "the token may not {action} private channel {topic}: add {topic} (or a pattern matching it) to the token's {claim} claim (docs/supabase.md#private-channels)",
    retryable: false,
  },
  supabase_bad_message: {
    message: '{detail}',
    retryable: false,
  },
  supabase_presence_failed: {
    message:
      "the presence could not be written to or read from the database: {detail}. Track again (or rejoin for presence_state); check the relay's database connection if it lasts",
    retryable: true,
  },
  supabase_replay_invalid: {
    message:
      'broadcast replay cannot be served: {detail}. Join a private channel (config.private: true) with config.broadcast.replay = {since: <milliseconds since 1970>, limit: <1 to 25, default 10>} (docs/supabase.md#broadcast-replay)',
    retryable: false,
  },
  supabase_broadcast_failed: {
    message:
      "the broadcast could not be written to the stream: {detail}. Retry; check the relay's database connection if it lasts",
    retryable: true,
  },
  supabase_read_only: {
    message:
      '{detail}: broadcasts and presence are written to the database (pg_logical_emit_message, walcast.supabase_presence); set WALCAST_PUBLISH_DATABASE_URL on the edge, or connect to a relay that has it',
    retryable: false,
  },
} as const satisfies Record<string, ErrorSpec>;

export type RelayErrorCode = keyof typeof RELAY_ERRORS;

export class WalcastError extends Error {
  readonly code: RelayErrorCode;
  readonly retryable: boolean;
  readonly params: Params;

  constructor(code: RelayErrorCode, params: Params = {}, cause?: unknown) {
    super(format(RELAY_ERRORS[code].message, params), cause === undefined ? undefined : { cause });
    this.name = 'WalcastError';
    this.code = code;
    this.params = params;
    this.retryable = RELAY_ERRORS[code].retryable;
  }
}

function format(template: string, params: Params): string {
  return template.replace(/\{(\w+)\}/g, (_, key: string) => String(params[key] ?? `<${key}>`));
}

/** The SQLSTATE of a PostgreSQL error, if it is one. */
export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** SQLSTATEs the relay reacts to (PostgreSQL docs, Appendix A). */
export const SQLSTATE = {
  duplicateObject: '42710',
  undefinedObject: '42704',
  objectInUse: '55006',
  insufficientPrivilege: '42501',
  tooManyConnections: '53300',
  configurationLimitExceeded: '53400',
  adminShutdown: '57P01',
  crashShutdown: '57P02',
  cannotConnectNow: '57P03',
  invalidPassword: '28P01',
  invalidAuthorization: '28000',
  undefinedTable: '42P01',
  undefinedColumn: '42703',
  invalidParameterValue: '22023',
  objectNotInPrerequisiteState: '55000',
  invalidCatalogName: '3D000',
  uniqueViolation: '23505',
  notNullViolation: '23502',
  foreignKeyViolation: '23503',
  checkViolation: '23514',
  exclusionViolation: '23P01',
  dependentObjectsStillExist: '2BP01',
} as const;

/** SQLSTATE classes (the first two characters) the relay reacts to. */
export const SQLSTATE_CLASS = {
  /** 22: data exception (invalid text, value too long, out of range, bad date…). */
  dataException: '22',
  /** 23: integrity constraint violation (not null, unique, foreign key, check, exclusion). */
  integrityConstraintViolation: '23',
} as const;
