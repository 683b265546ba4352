// Drizzle definitions of the tables sql/ creates, so TypeScript code (the
// relay, an application server) reads and writes them with types. The SQL
// files are the source of truth; keep these in step with them.
import {
  bigint,
  customType,
  index,
  integer,
  interval,
  jsonb,
  pgSchema,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core';

/** node-postgres reads bytea as a Buffer and writes a Buffer as bytea. */
const bytea = customType<{ data: Buffer; driverData: Buffer }>({
  dataType: () => 'bytea',
});

// Generic in the name, so that row types keep the column's literal name.
const timestamptz = <N extends string>(name: N) => timestamp(name, { withTimezone: true, mode: 'date' });

// ---- the walcast schema (sql/001_walcast.sql, relay/db/migrate.ts) ----

export const walcastSchema = pgSchema('walcast');

/** Registered tables: what the relay publishes and prunes. */
export const walcastTables = walcastSchema.table(
  'tables',
  {
    schemaName: text('schema_name').notNull(),
    tableName: text('table_name').notNull(),
    channelColumn: text('channel_column').notNull(),
    /** Interval as PostgreSQL prints it, e.g. `7 days`, `00:02:00`. */
    ttl: interval('ttl'),
    timeColumn: text('time_column'),
    registeredAt: timestamptz('registered_at').notNull().defaultNow(),
    /** 'events' or 'state' (sql/002_delivery.sql): what a snapshot sends. */
    kind: text('kind').$type<'events' | 'state'>().notNull().default('events'),
    /** Generated columns the publication does not send (sql/004_generated_columns.sql). */
    omittedColumns: text('omitted_columns').array().notNull().default([]),
  },
  (t) => [primaryKey({ columns: [t.schemaName, t.tableName] })],
);

export const walcastConfig = walcastSchema.table('config', {
  key: text('key').primaryKey(),
  value: text('value').notNull(),
});

/** The slots walcast created and their epochs (sql/002_delivery.sql). */
export const walcastSlots = walcastSchema.table('slots', {
  slotName: text('slot_name').primaryKey(),
  epoch: text('epoch').notNull(),
  createdAt: timestamptz('created_at').notNull().defaultNow(),
});

export const walcastMigrations = walcastSchema.table('migrations', {
  name: text('name').primaryKey(),
  appliedAt: timestamptz('applied_at').defaultNow(),
});

export type WalcastTableRow = typeof walcastTables.$inferSelect;

// ---- the example tables (sql/example/001_example.sql) ----

export const chatMessages = pgTable(
  'chat_messages',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    channelId: text('channel_id').notNull(),
    sender: text('sender').notNull(),
    body: text('body').notNull(),
    createdAt: timestamptz('created_at').notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('chat_messages_channel_id_id_key').on(t.channelId, t.id),
    index('chat_messages_created_at_idx').on(t.createdAt),
  ],
);

export const presence = pgTable(
  'presence',
  {
    channelId: text('channel_id').notNull(),
    userId: text('user_id').notNull(),
    name: text('name').notNull().default(''),
    status: text('status').notNull().default('online'),
    meta: jsonb('meta').$type<Record<string, unknown>>().notNull().default({}),
    updatedAt: timestamptz('updated_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.channelId, t.userId] })],
);

export const callState = pgTable(
  'call_state',
  {
    sessionId: text('session_id').notNull(),
    key: text('key').notNull(),
    value: jsonb('value').$type<unknown>().notNull(),
    updatedAt: timestamptz('updated_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.sessionId, t.key] })],
);

export const videoFrames = pgTable(
  'video_frames',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    toId: text('to_id').notNull(),
    fromId: text('from_id').notNull().default(''),
    seq: integer('seq').notNull().default(0),
    payload: bytea('payload').notNull(),
    createdAt: timestamptz('created_at').notNull().defaultNow(),
  },
  (t) => [uniqueIndex('video_frames_to_id_id_key').on(t.toId, t.id)],
);

export type ChatMessage = typeof chatMessages.$inferSelect;
export type NewChatMessage = typeof chatMessages.$inferInsert;
export type Presence = typeof presence.$inferSelect;
export type NewPresence = typeof presence.$inferInsert;
export type CallState = typeof callState.$inferSelect;
export type NewCallState = typeof callState.$inferInsert;
export type VideoFrame = typeof videoFrames.$inferSelect;
export type NewVideoFrame = typeof videoFrames.$inferInsert;
