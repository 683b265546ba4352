// Row types of the wire from Drizzle table definitions, for typed events:
//
//   type ChatTables = Rows<{ chat_messages: typeof chatMessages }>;
//   rt.subscribe<ChatTables>('room-1', {}, (e) => e.row.body);
//
// Type-only (nothing is imported at run time, so browsers need no Drizzle).
// Rows on the wire use the database's column names and the protocol's JSON
// encodings (docs/protocol.md, "Row values"), not Drizzle's mapped values:
// timestamps, bigint, numeric and bytea arrive as strings.
import type { Column, Table } from 'drizzle-orm';

type StringOnTheWire =
  | 'PgBigInt53'
  | 'PgBigInt64'
  | 'PgBigSerial53'
  | 'PgBigSerial64'
  | 'PgNumeric'
  | 'PgNumericNumber'
  | 'PgNumericBigInt';

/** How one column's value arrives in an event's `row`. */
export type WireValue<C extends Column> = C['_']['columnType'] extends StringOnTheWire
  ? string
  : C['_']['data'] extends Date | bigint | Uint8Array
    ? string
    : C['_']['data'];

type Nullable<C extends Column> = C['_']['notNull'] extends true ? never : null;

type Columns<T extends Table> = T['_']['columns'][keyof T['_']['columns']];

/** A row of `T` as events carry it, keyed by column name (e.g. `channel_id`). */
export type Row<T extends Table> = {
  [C in Columns<T> as C['_']['name']]: WireValue<C> | Nullable<C>;
};

/** Row types by table name for Subscription<T>, from `{ name: typeof table }`. */
export type Rows<M extends Record<string, Table>> = { [K in keyof M]: Row<M[K]> };
