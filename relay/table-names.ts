// Table names, in the two forms walcast uses, and nowhere else:
//   shortName  bare in `public`, `schema.table` elsewhere: what clients see and
//              write (an event's `table`, a subscribe's `tables`, a publish's
//              `table`, a token's `publish` list).
//   fullName   always `schema.table`: a label for logs and metrics.
// Neither is quoted: they are labels, not SQL.

export interface TableRef {
  schema: string;
  table: string;
}

export function shortName(t: TableRef): string {
  return t.schema === 'public' ? t.table : `${t.schema}.${t.table}`;
}

export function fullName(t: TableRef): string {
  return `${t.schema}.${t.table}`;
}

/** A name as a client wrote it, in short form: `public.orders` → `orders`. */
export function toShortName(name: string): string {
  return name.startsWith('public.') ? name.slice('public.'.length) : name;
}

/** A name as a client wrote it, in full form: `orders` → `public.orders`. */
export function toFullName(name: string): string {
  return name.includes('.') ? name : `public.${name}`;
}
