// Configuration: every option is an environment variable and a CLI flag,
// with a default. The table below is the single source for both, and for the
// configuration table of docs/configuration.md (a test checks they agree). Invalid values
// stop start-up with one line naming the variable and what is allowed.
import { parseArgs } from 'node:util';
import { validate as validateCron } from 'node-cron';
import { WalcastError } from './errors.ts';
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from './log.ts';

export interface Config {
  databaseUrl: string | undefined;
  host: string;
  port: number;
  slot: string;
  publication: string;
  logLevel: LogLevel;
  logFormat: LogFormat;
  dataDir: string;
  embeddedPort: number;
  example: boolean | undefined;
  maxSubscriptions: number;
  maxFrameBytes: number;
  sendQueueBytes: number;
  slowConsumerMs: number;
  maxEventBytes: number;
  heartbeatMs: number;
  ttlSchedule: string;
  recoverySeconds: number;
  recoveryEvents: number;
  recoveryMaxBytes: number;
  recoveryRebuildBytes: number;
  /** A restart re-reading at least this much WAL serves live rows from a temporary slot meanwhile (0: never). */
  liveSlotBytes?: number;
  /** While the temporary slot serves, the re-read of the window may take this percent of the time (100: flat out). */
  rebuildPercent?: number;
  // Security (relay/auth/settings.ts fills in what a caller leaves out).
  jwtSecret?: string | undefined;
  jwtPublicKey?: string | undefined;
  jwksUrl?: string | undefined;
  jwtIssuer?: string | undefined;
  jwtAudience?: string | undefined;
  insecure?: boolean;
  allowedOrigins?: string[] | undefined;
  publish?: 'token' | 'open' | 'off' | undefined;
  authTimeoutMs?: number;
  rateLimit?: number;
  subjectRateLimit?: number;
  maxConnectionsPerIp?: number;
  shutdownSeconds: number;
  watchdogMs: number;
  lagWarnSeconds: number;
  lagWarnBytes: number;
  standbyPollMs: number;
  // Resource limits (issue 18); optional so that callers (tests) may leave them to the defaults: limit().
  maxConnections?: number;
  httpTimeoutMs?: number;
  snapshotsPerConnection?: number;
  snapshotsPerSubject?: number;
  snapshotQueue?: number;
  snapshotTimeoutMs?: number;
  replayMaxBytes?: number;
  replaysPerIp?: number;
  // [sinks] The JetStream change stream (relay/sinks/, docs/streams.md); unset URL: no sink.
  natsUrl?: string | undefined;
  natsStream?: string;
  natsToken?: string | undefined;
  natsUser?: string | undefined;
  natsPassword?: string | undefined;
  natsCreds?: string | undefined;
  natsCa?: string | undefined;
  natsMaxAgeSeconds?: number;
  natsBufferBytes?: number;
  // [edge] `walcast edge` (relay/edge/, docs/scaling.md): where its clients' publishes INSERT.
  publishDatabaseUrl?: string | undefined;
  // [sinks] Webhooks (relay/sinks/webhooks.ts, docs/webhooks.md).
  webhookBatchEvents?: number;
  webhookBatchBytes?: number;
  webhookMaxAttempts?: number;
  webhookTimeoutMs?: number;
  webhookRetryMs?: number;
  webhookBufferBytes?: number;
  // MQTT front door (relay/mqtt/, docs/mqtt.md). Unset port: 1883, given up with a warning if taken.
  mqttPort?: number | 'off' | undefined;
  mqttRetainedLimit?: number;
  // Supabase door (relay/supabase/, docs/supabase.md).
  presenceLeaseMs?: number;
}

type Parser<T> = (raw: string) => T | undefined;

interface OptionSpec<K extends keyof Config> {
  key: K;
  env: string;
  flag: string;
  default: Config[K];
  allowed: string;
  parse: Parser<Config[K]>;
  help: string;
  /** A flag that may stand alone (`--insecure`); its variable takes true/false. */
  boolean?: true;
  /** Never echoed in error messages. */
  secret?: true;
  /** The default as help shows it, when the value is left unset on purpose. */
  shown?: string;
}

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;
const ident: Parser<string> = (v) => (IDENTIFIER.test(v) ? v : undefined);
const int =
  (min: number, max: number): Parser<number> =>
  (v) => {
    if (!/^\d+$/.test(v)) return undefined;
    const n = Number(v);
    return n >= min && n <= max ? n : undefined;
  };
const pem: Parser<string> = (v) => {
  // Environment variables often carry a PEM on one line with literal \n.
  const text = v.replace(/\\n/g, '\n').trim();
  return /^-----BEGIN PUBLIC KEY-----\n[\s\S]+\n-----END PUBLIC KEY-----$/.test(text) ? text : undefined;
};
const httpUrl: Parser<string> = (v) => (/^https?:\/\/\S+$/.test(v) ? v : undefined);
const origins: Parser<string[]> = (v) => {
  const list = v
    .split(',')
    .map((o) => o.trim())
    .filter(Boolean);
  return list.length > 0 && list.every((o) => o === '*' || /^https?:\/\/[^/\s]+$/.test(o)) ? list : undefined;
};
/** An HS256 secret: at least 32 characters other than whitespace (40 spaces is no secret). */
export const usableSecret: Parser<string> = (v) => (v.replace(/\s/g, '').length >= 32 ? v : undefined);
const bool: Parser<boolean> = (v) => ({ true: true, '1': true, false: false, '0': false })[v.toLowerCase()];

function opt<K extends keyof Config>(spec: OptionSpec<K>): OptionSpec<K> {
  return spec;
}

export const OPTIONS = [
  opt({
    key: 'databaseUrl',
    env: 'DATABASE_URL',
    flag: 'database-url',
    default: undefined,
    allowed: 'a postgres:// or postgresql:// URL',
    parse: (v) => (/^postgres(ql)?:\/\//.test(v) ? v : undefined),
    help: 'PostgreSQL to use; unset: an embedded PostgreSQL in WALCAST_DATA_DIR',
  }),
  opt({
    key: 'host',
    env: 'HOST',
    flag: 'host',
    default: '127.0.0.1',
    allowed: 'a host name or IP address',
    parse: (v) => (v.length > 0 ? v : undefined),
    help: 'address the HTTP and WebSocket server listens on',
  }),
  opt({
    key: 'port',
    env: 'PORT',
    flag: 'port',
    default: 8080,
    allowed: 'an integer from 0 to 65535',
    parse: int(0, 65535),
    help: 'port of the HTTP and WebSocket server (0: any free port)',
  }),
  opt({
    key: 'slot',
    env: 'WALCAST_SLOT',
    flag: 'slot',
    default: 'walcast',
    allowed: 'a lower-case identifier ([a-z_][a-z0-9_]*, at most 63 characters)',
    parse: ident,
    help: 'name of the logical replication slot',
  }),
  opt({
    key: 'publication',
    env: 'WALCAST_PUBLICATION',
    flag: 'publication',
    default: 'realtime_events',
    allowed: 'a lower-case identifier ([a-z_][a-z0-9_]*, at most 63 characters)',
    parse: ident,
    help: 'publication whose tables are streamed',
  }),
  opt({
    key: 'logLevel',
    env: 'WALCAST_LOG_LEVEL',
    flag: 'log-level',
    default: 'info',
    allowed: LOG_LEVELS.join(', '),
    parse: (v) => ((LOG_LEVELS as readonly string[]).includes(v) ? (v as LogLevel) : undefined),
    help: 'log level',
  }),
  opt({
    key: 'logFormat',
    env: 'WALCAST_LOG_FORMAT',
    flag: 'log-format',
    default: 'auto',
    allowed: LOG_FORMATS.join(', '),
    parse: (v) => ((LOG_FORMATS as readonly string[]).includes(v) ? (v as LogFormat) : undefined),
    help: 'log lines on stdout: pretty (readable), json, or auto (pretty on a terminal, JSON otherwise)',
  }),
  opt({
    key: 'dataDir',
    env: 'WALCAST_DATA_DIR',
    flag: 'data-dir',
    default: '.walcast',
    allowed: 'a directory path',
    parse: (v) => (v.length > 0 ? v : undefined),
    help: 'embedded mode: where the embedded PostgreSQL keeps its data',
  }),
  opt({
    key: 'embeddedPort',
    env: 'WALCAST_EMBEDDED_PORT',
    flag: 'embedded-port',
    default: 54329,
    allowed: 'an integer from 1 to 65535',
    parse: int(1, 65535),
    help: "embedded mode: the embedded PostgreSQL's port on 127.0.0.1",
  }),
  opt({
    key: 'example',
    env: 'WALCAST_EXAMPLE',
    flag: 'example',
    default: undefined,
    allowed: 'true or false',
    parse: bool,
    help: 'install the example tables (default: true in embedded mode, false with DATABASE_URL)',
  }),
  opt({
    key: 'maxSubscriptions',
    env: 'WALCAST_MAX_SUBSCRIPTIONS',
    flag: 'max-subscriptions',
    default: 100,
    allowed: 'an integer from 1 to 100000',
    parse: int(1, 100_000),
    help: 'subscriptions one connection may hold',
  }),
  opt({
    key: 'maxFrameBytes',
    env: 'WALCAST_MAX_FRAME_BYTES',
    flag: 'max-frame-bytes',
    default: 65_536,
    allowed: 'an integer from 1024 to 16777216',
    parse: int(1024, 16 * 1024 * 1024),
    help: 'largest frame a client may send; larger closes with 1009',
  }),
  opt({
    key: 'sendQueueBytes',
    env: 'WALCAST_SEND_QUEUE_BYTES',
    flag: 'send-queue-bytes',
    default: 1_048_576,
    allowed: 'an integer from 65536 to 1073741824',
    parse: int(65_536, 1024 ** 3),
    help: 'bytes queued for one slow client before it is closed with 4008',
  }),
  opt({
    key: 'slowConsumerMs',
    env: 'WALCAST_SLOW_CONSUMER_MS',
    flag: 'slow-consumer-ms',
    default: 2000,
    allowed: 'an integer from 100 to 60000',
    parse: int(100, 60_000),
    help: 'a client whose queue stays over half of WALCAST_SEND_QUEUE_BYTES this long is closed with 4008; meanwhile the relay stops reading the replication stream',
  }),
  opt({
    key: 'maxEventBytes',
    env: 'WALCAST_MAX_EVENT_BYTES',
    flag: 'max-event-bytes',
    default: 16 * 1024 * 1024,
    allowed: 'an integer from 65536 to 268435456',
    parse: int(65_536, 256 * 1024 * 1024),
    help: 'largest event sent to clients (its JSON, in bytes); a larger one is replaced by an event_too_large error naming its table, channel and position',
  }),
  opt({
    key: 'heartbeatMs',
    env: 'WALCAST_HEARTBEAT_MS',
    flag: 'heartbeat-ms',
    default: 15_000,
    allowed: 'an integer from 100 to 3600000',
    parse: int(100, 3_600_000),
    help: 'ping interval; a client silent for two intervals is dropped',
  }),
  opt({
    key: 'ttlSchedule',
    env: 'WALCAST_TTL_SCHEDULE',
    flag: 'ttl-schedule',
    default: '*/10 * * * * *',
    allowed: 'a cron expression (node-cron, seconds field optional)',
    parse: (v) => (validateCron(v) ? v : undefined),
    help: 'when the TTL job prunes expired rows',
  }),
  opt({
    key: 'recoverySeconds',
    env: 'WALCAST_RECOVERY_SECONDS',
    flag: 'recovery-seconds',
    default: 300,
    allowed: 'an integer from 0 to 86400',
    parse: int(0, 86_400),
    help: 'recovery window by age: clients resume with `since` within it; the slot keeps this much WAL',
  }),
  opt({
    key: 'recoveryEvents',
    env: 'WALCAST_RECOVERY_EVENTS',
    flag: 'recovery-events',
    default: 10_000,
    allowed: 'an integer from 0 to 10000000',
    parse: int(0, 10_000_000),
    help: 'recovery window by count: events kept per channel (0: no resume)',
  }),
  opt({
    key: 'recoveryRebuildBytes',
    env: 'WALCAST_RECOVERY_REBUILD_BYTES',
    flag: 'recovery-rebuild-bytes',
    default: 0,
    allowed: 'an integer from 0 to 1099511627776',
    parse: int(0, 1024 ** 4),
    help: 'the most WAL held back for the recovery window, and re-read by a restarted relay before live rows flow (0: no bound)',
  }),
  opt({
    key: 'liveSlotBytes',
    env: 'WALCAST_LIVE_SLOT_BYTES',
    flag: 'live-slot-bytes',
    default: 16 * 1024 * 1024,
    allowed: 'an integer from 0 to 1099511627776',
    parse: int(0, 1024 ** 4),
    help: 'a restarted relay with at least this much WAL to re-read serves live rows from a temporary slot meanwhile (0: never)',
  }),
  opt({
    key: 'rebuildPercent',
    env: 'WALCAST_REBUILD_PERCENT',
    flag: 'rebuild-percent',
    default: 50,
    allowed: 'an integer from 1 to 100',
    parse: int(1, 100),
    help: 'while a temporary slot serves live rows, the re-read of the recovery window may take this percent of the time (100: not paced)',
  }),
  opt({
    key: 'recoveryMaxBytes',
    env: 'WALCAST_RECOVERY_MAX_BYTES',
    flag: 'recovery-max-bytes',
    default: 64 * 1024 * 1024,
    allowed: 'an integer from 0 to 17179869184',
    parse: int(0, 16 * 1024 ** 3),
    help: 'recovery window by memory: bytes of events kept in all',
  }),
  opt({
    key: 'jwtSecret',
    env: 'WALCAST_JWT_SECRET',
    flag: 'jwt-secret',
    default: undefined,
    allowed: 'a secret of at least 32 characters other than whitespace',
    parse: usableSecret,
    help: 'verify client tokens as HS256 JWTs with this secret',
    secret: true,
  }),
  opt({
    key: 'jwtPublicKey',
    env: 'WALCAST_JWT_PUBLIC_KEY',
    flag: 'jwt-public-key',
    default: undefined,
    allowed: 'a PEM public key (-----BEGIN PUBLIC KEY-----, RSA or P-256; \\n may stand for newlines)',
    parse: pem,
    help: 'verify client tokens as RS256/ES256 JWTs with this public key',
  }),
  opt({
    key: 'jwksUrl',
    env: 'WALCAST_JWKS_URL',
    flag: 'jwks-url',
    default: undefined,
    allowed: 'an http:// or https:// URL',
    parse: httpUrl,
    help: 'verify client tokens (RS256/ES256) with the keys this JWKS URL serves',
  }),
  opt({
    key: 'jwtIssuer',
    env: 'WALCAST_JWT_ISSUER',
    flag: 'jwt-issuer',
    default: undefined,
    allowed: 'a string',
    parse: (v) => v,
    help: 'tokens must carry this iss claim',
  }),
  opt({
    key: 'jwtAudience',
    env: 'WALCAST_JWT_AUDIENCE',
    flag: 'jwt-audience',
    default: undefined,
    allowed: 'a string',
    parse: (v) => v,
    help: 'tokens must carry this aud claim',
  }),
  opt({
    key: 'insecure',
    env: 'WALCAST_INSECURE',
    flag: 'insecure',
    default: false,
    allowed: 'true or false',
    parse: bool,
    help: 'allow serving without a JWT key on a non-loopback address (anyone may read and publish)',
    boolean: true,
  }),
  opt({
    key: 'allowedOrigins',
    env: 'WALCAST_ALLOWED_ORIGINS',
    flag: 'allowed-origins',
    default: undefined,
    allowed: 'a comma-separated list of origins (https://app.example.com) or *',
    parse: origins,
    help: 'browser Origins allowed to connect (unset: any with a key configured, loopback pages only without)',
  }),
  opt({
    key: 'publish',
    env: 'WALCAST_PUBLISH',
    flag: 'publish',
    default: undefined,
    allowed: 'token, open or off',
    parse: (v) => (['token', 'open', 'off'].includes(v) ? (v as 'token' | 'open' | 'off') : undefined),
    help: 'who may publish rows over WebSocket (unset: token with a key configured, open without)',
  }),
  opt({
    key: 'authTimeoutMs',
    env: 'WALCAST_AUTH_TIMEOUT_MS',
    flag: 'auth-timeout-ms',
    default: 10_000,
    allowed: 'an integer from 100 to 600000',
    parse: int(100, 600_000),
    help: 'with a key configured, time to send a token before the connection is closed (4002)',
  }),
  opt({
    key: 'rateLimit',
    env: 'WALCAST_RATE_LIMIT',
    flag: 'rate-limit',
    default: 100,
    allowed: 'an integer from 1 to 1000000',
    parse: int(1, 1_000_000),
    help: 'messages per second one connection may send (bursts of twice that)',
  }),
  opt({
    key: 'subjectRateLimit',
    env: 'WALCAST_SUBJECT_RATE_LIMIT',
    flag: 'subject-rate-limit',
    default: 300,
    allowed: 'an integer from 1 to 1000000',
    parse: int(1, 1_000_000),
    help: 'messages per second all connections of one token subject may send (bursts of twice that)',
  }),
  opt({
    key: 'maxConnectionsPerIp',
    env: 'WALCAST_MAX_CONNECTIONS_PER_IP',
    flag: 'max-connections-per-ip',
    default: 1000,
    allowed: 'an integer from 1 to 1000000',
    parse: int(1, 1_000_000),
    help: 'WebSocket connections one client address may hold',
  }),
  opt({
    key: 'maxConnections',
    env: 'WALCAST_MAX_CONNECTIONS',
    flag: 'max-connections',
    default: 20_000,
    allowed: 'an integer from 1 to 1000000',
    parse: int(1, 1_000_000),
    help: 'TCP connections (WebSocket and HTTP) the relay holds in all; more are closed at once. Keep it under the descriptor limit (ulimit -n)',
  }),
  opt({
    key: 'httpTimeoutMs',
    env: 'WALCAST_HTTP_TIMEOUT_MS',
    flag: 'http-timeout-ms',
    default: 10_000,
    allowed: 'an integer from 500 to 600000',
    parse: int(500, 600_000),
    help: 'time to receive a whole HTTP request (408 after it), and longest an HTTP connection may sit with nothing read or written',
  }),
  opt({
    key: 'snapshotsPerConnection',
    env: 'WALCAST_SNAPSHOTS_PER_CONNECTION',
    flag: 'snapshots-per-connection',
    default: 2,
    allowed: 'an integer from 1 to 1000',
    parse: int(1, 1000),
    help: 'snapshot reads one connection may have waiting or running; more get snapshot_busy',
  }),
  opt({
    key: 'snapshotsPerSubject',
    env: 'WALCAST_SNAPSHOTS_PER_SUBJECT',
    flag: 'snapshots-per-subject',
    default: 8,
    allowed: 'an integer from 1 to 100000',
    parse: int(1, 100_000),
    help: 'snapshot reads all connections of one token sub may have waiting or running; more get snapshot_busy',
  }),
  opt({
    key: 'snapshotQueue',
    env: 'WALCAST_SNAPSHOT_QUEUE',
    flag: 'snapshot-queue',
    default: 64,
    allowed: 'an integer from 0 to 100000',
    parse: int(0, 100_000),
    help: 'snapshot reads waiting for one of the 2 snapshot connections; more get snapshot_busy',
  }),
  opt({
    key: 'snapshotTimeoutMs',
    env: 'WALCAST_SNAPSHOT_TIMEOUT_MS',
    flag: 'snapshot-timeout-ms',
    default: 5000,
    allowed: 'an integer from 100 to 600000',
    parse: int(100, 600_000),
    help: 'statement_timeout of a snapshot read; a slower one fails with snapshot_failed',
  }),
  opt({
    key: 'replayMaxBytes',
    env: 'WALCAST_REPLAY_MAX_BYTES',
    flag: 'replay-max-bytes',
    default: 1_048_576,
    allowed: 'an integer from 1024 to 67108864',
    parse: int(1024, 64 * 1024 * 1024),
    help: 'bytes of events in one HTTP replay response; past it the response ends with more:true and the position to continue from',
  }),
  opt({
    key: 'replaysPerIp',
    env: 'WALCAST_REPLAYS_PER_IP',
    flag: 'replays-per-ip',
    default: 4,
    allowed: 'an integer from 1 to 10000',
    parse: int(1, 10_000),
    help: 'HTTP replay responses one client address may have in flight; more get 429',
  }),
  opt({
    key: 'shutdownSeconds',
    env: 'WALCAST_SHUTDOWN_SECONDS',
    flag: 'shutdown-seconds',
    default: 10,
    allowed: 'an integer from 1 to 3600',
    parse: int(1, 3600),
    help: 'graceful shutdown deadline; past it the process exits with status 1',
  }),
  opt({
    key: 'watchdogMs',
    env: 'WALCAST_WATCHDOG_MS',
    flag: 'watchdog-ms',
    default: 10_000,
    allowed: 'an integer from 100 to 3600000',
    parse: int(100, 3_600_000),
    help: 'how often the slot watchdog checks the slot and emits a heartbeat',
  }),
  opt({
    key: 'lagWarnSeconds',
    env: 'WALCAST_LAG_WARN_SECONDS',
    flag: 'lag-warn-seconds',
    default: 30,
    allowed: 'an integer from 1 to 86400',
    parse: int(1, 86_400),
    help: 'replication lag (seconds) above which a warning is logged and /readyz is 503',
  }),
  opt({
    key: 'lagWarnBytes',
    env: 'WALCAST_LAG_WARN_BYTES',
    flag: 'lag-warn-bytes',
    default: 1024 ** 3,
    allowed: 'an integer from 1 to 1099511627776',
    parse: int(1, 1024 ** 4),
    help: 'replication lag (bytes of WAL) above which a warning is logged and /readyz is 503',
  }),
  opt({
    key: 'mqttPort',
    env: 'WALCAST_MQTT_PORT',
    flag: 'mqtt-port',
    default: undefined,
    shown: '1883',
    allowed: 'an integer from 0 to 65535, or off',
    parse: (v) => (v === 'off' ? 'off' : int(0, 65535)(v)),
    help: 'MQTT over TCP on HOST (0: any free port; off: none). The default 1883, if taken, is given up with a warning; an explicit port that cannot be bound stops start-up',
  }),
  opt({
    key: 'mqttRetainedLimit',
    env: 'WALCAST_MQTT_RETAINED_LIMIT',
    flag: 'mqtt-retained-limit',
    default: 1000,
    allowed: 'an integer from 1 to 100000',
    parse: int(1, 100_000),
    help: 'most current rows an MQTT subscription gets as retained messages (the newest)',
  }),
  opt({
    key: 'presenceLeaseMs',
    env: 'WALCAST_PRESENCE_LEASE_MS',
    flag: 'presence-lease-ms',
    default: 30_000,
    allowed: 'an integer from 300 to 3600000',
    parse: int(300, 3_600_000),
    help: "how long a relay's Supabase presences outlive it (renewed every third of it): a killed relay's presences leave within 4/3 of this",
  }),
  opt({
    key: 'standbyPollMs',
    env: 'WALCAST_STANDBY_POLL_MS',
    flag: 'standby-poll-ms',
    default: 500,
    allowed: 'an integer from 50 to 60000',
    parse: int(50, 60_000),
    help: 'a standby relay tries to take over the slot this often',
  }),
  // [sinks]
  opt({
    key: 'natsUrl',
    env: 'WALCAST_NATS_URL',
    flag: 'nats-url',
    default: undefined,
    allowed: 'nats:// or tls:// URLs, comma-separated',
    parse: (v) => (v.split(',').every((u) => /^(nats|tls):\/\/\S+$/.test(u.trim())) ? v : undefined),
    help: 'publish every event to JetStream on this NATS server (docs/streams.md); unset: no JetStream sink',
  }),
  opt({
    key: 'natsStream',
    env: 'WALCAST_NATS_STREAM',
    flag: 'nats-stream',
    default: 'walcast',
    allowed: 'a JetStream stream name (letters, digits, - and _)',
    parse: (v) => (/^[A-Za-z0-9_-]{1,64}$/.test(v) ? v : undefined),
    help: 'the JetStream stream events go to (created if missing)',
  }),
  opt({
    key: 'natsToken',
    env: 'WALCAST_NATS_TOKEN',
    flag: 'nats-token',
    default: undefined,
    allowed: 'a token',
    parse: (v) => v,
    help: 'NATS token authentication',
    secret: true,
  }),
  opt({
    key: 'natsUser',
    env: 'WALCAST_NATS_USER',
    flag: 'nats-user',
    default: undefined,
    allowed: 'a user name',
    parse: (v) => v,
    help: 'NATS user (with WALCAST_NATS_PASSWORD)',
  }),
  opt({
    key: 'natsPassword',
    env: 'WALCAST_NATS_PASSWORD',
    flag: 'nats-password',
    default: undefined,
    allowed: 'a password',
    parse: (v) => v,
    help: 'NATS password',
    secret: true,
  }),
  opt({
    key: 'natsCreds',
    env: 'WALCAST_NATS_CREDS',
    flag: 'nats-creds',
    default: undefined,
    allowed: 'a path to a .creds file',
    parse: (v) => v,
    help: 'NATS credentials file (JWT and NKey seed)',
  }),
  opt({
    key: 'natsCa',
    env: 'WALCAST_NATS_CA',
    flag: 'nats-ca',
    default: undefined,
    allowed: 'a path to a PEM file',
    parse: (v) => v,
    help: 'CA certificate(s) to verify the NATS server with (TLS)',
  }),
  opt({
    key: 'natsMaxAgeSeconds',
    env: 'WALCAST_NATS_MAX_AGE_SECONDS',
    flag: 'nats-max-age-seconds',
    default: 604_800,
    allowed: 'an integer from 60 to 315360000',
    parse: int(60, 315_360_000),
    help: 'max_age of a stream walcast creates (an existing stream keeps its own)',
  }),
  opt({
    key: 'natsBufferBytes',
    env: 'WALCAST_NATS_BUFFER_BYTES',
    flag: 'nats-buffer-bytes',
    default: 64 * 1024 * 1024,
    allowed: 'an integer from 65536 to 17179869184',
    parse: int(65_536, 16 * 1024 ** 3),
    help: 'bytes of events held for JetStream; beyond it the sink re-reads them from the slot later',
  }),
  // [edge]
  opt({
    key: 'publishDatabaseUrl',
    env: 'WALCAST_PUBLISH_DATABASE_URL',
    flag: 'publish-database-url',
    default: undefined,
    allowed: 'a postgres:// or postgresql:// URL',
    parse: (v) => (/^postgres(ql)?:\/\//.test(v) ? v : undefined),
    help: 'walcast edge: the primary that publishes from its clients INSERT into (a role that may insert into the registered tables); unset: publishing on the edge is refused (docs/scaling.md)',
  }),
  opt({
    key: 'webhookBatchEvents',
    env: 'WALCAST_WEBHOOK_BATCH_EVENTS',
    flag: 'webhook-batch-events',
    default: 100,
    allowed: 'an integer from 1 to 10000',
    parse: int(1, 10_000),
    help: 'events in one webhook request, at most',
  }),
  opt({
    key: 'webhookBatchBytes',
    env: 'WALCAST_WEBHOOK_BATCH_BYTES',
    flag: 'webhook-batch-bytes',
    default: 1024 * 1024,
    allowed: 'an integer from 1024 to 67108864',
    parse: int(1024, 64 * 1024 * 1024),
    help: 'bytes of events in one webhook request; a batch closes once it reaches this',
  }),
  opt({
    key: 'webhookMaxAttempts',
    env: 'WALCAST_WEBHOOK_MAX_ATTEMPTS',
    flag: 'webhook-max-attempts',
    default: 10,
    allowed: 'an integer from 1 to 1000',
    parse: int(1, 1000),
    help: 'attempts of a webhook batch before it goes to walcast.webhook_dead_letters',
  }),
  opt({
    key: 'webhookTimeoutMs',
    env: 'WALCAST_WEBHOOK_TIMEOUT_MS',
    flag: 'webhook-timeout-ms',
    default: 10_000,
    allowed: 'an integer from 100 to 300000',
    parse: int(100, 300_000),
    help: 'a webhook request without a response by then counts as failed',
  }),
  opt({
    key: 'webhookRetryMs',
    env: 'WALCAST_WEBHOOK_RETRY_MS',
    flag: 'webhook-retry-ms',
    default: 1000,
    allowed: 'an integer from 10 to 600000',
    parse: int(10, 600_000),
    help: 'first webhook retry delay ceiling; it doubles per attempt up to 5 minutes (full jitter; Retry-After honoured)',
  }),
  opt({
    key: 'webhookBufferBytes',
    env: 'WALCAST_WEBHOOK_BUFFER_BYTES',
    flag: 'webhook-buffer-bytes',
    default: 16 * 1024 * 1024,
    allowed: 'an integer from 65536 to 17179869184',
    parse: int(65_536, 16 * 1024 ** 3),
    help: 'bytes of events held per webhook; beyond it they are re-read from the slot later',
  }),
] as const;

type LimitKey =
  | 'maxConnections'
  | 'httpTimeoutMs'
  | 'snapshotsPerConnection'
  | 'snapshotsPerSubject'
  | 'snapshotQueue'
  | 'snapshotTimeoutMs'
  | 'replayMaxBytes'
  | 'replaysPerIp';

/** A resource limit: the configured value, or its default when the caller left it out. */
export function limit(config: Partial<Config>, key: LimitKey): number {
  return config[key] ?? (OPTIONS.find((o) => o.key === key)!.default as number);
}

/** Read the configuration from flags (first) and the environment. */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv): Config {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: Object.fromEntries(
        OPTIONS.map((o) => [o.flag, { type: 'boolean' in o ? ('boolean' as const) : ('string' as const) }]),
      ),
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new WalcastError('config_invalid', {
      detail: `${(err as Error).message}; run with --help to list the options`,
    });
  }
  const config = {} as Record<keyof Config, unknown>;
  for (const o of OPTIONS) {
    const fromFlag = values[o.flag];
    const raw = typeof fromFlag === 'string' ? fromFlag : fromFlag === true ? 'true' : env[o.env];
    if (raw === undefined || raw === '') {
      config[o.key] = o.default;
      continue;
    }
    const parsed = (o.parse as Parser<unknown>)(raw);
    if (parsed === undefined) {
      throw new WalcastError('config_invalid', {
        detail: `${o.env} (--${o.flag}) must be ${o.allowed}; got ${'secret' in o ? `${raw.length} characters` : JSON.stringify(raw)}`,
      });
    }
    config[o.key] = parsed;
  }
  return config as Config;
}

export function helpText(): string {
  const rows = OPTIONS.map(
    (o) =>
      `  --${o.flag.padEnd(18)} ${o.env.padEnd(26)} ${o.help} (default: ${'shown' in o ? o.shown : (o.default ?? 'unset')})`,
  );
  return ['Usage: walcast start [options]', '', 'Options (flag, environment variable):', ...rows].join('\n');
}
