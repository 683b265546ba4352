// Every postgres_changes binding of every joined channel, indexed so that a
// row finds its subscribers without a scan: bindings with an `eq` (or `in`)
// filter are keyed by (table, column, value) and looked up with the row's
// value; only the others (no filter, neq, lt, like, is, not.…) are checked one by one, and
// only those of the row's table. Pure.
import { isKeyed, matches, textOf, type Conjunct, type Filter, type ValueKind } from './filters.ts';

export type ChangeEvent = '*' | 'INSERT' | 'UPDATE' | 'DELETE';

export interface Binding<Owner> {
  /** What the client matches frames with (echoed in the join reply, listed in `ids`). */
  id: number;
  event: ChangeEvent;
  /** The table's short name (table-names.ts), or '*' for every registered table. */
  table: string;
  /** The filter the index keys on (an eq/in one when there is one), or the first. */
  filter: Filter | null;
  /** How the filter's column compares. */
  kind: ValueKind;
  /** The binding's other filters (joined by commas, ANDed), checked once `filter` matched. */
  also?: Conjunct[];
  /** Rows must pass the owner's grants one by one (join.ts). */
  checkRows: boolean;
  /** Its frame's cache key when it is the only binding of its channel a row matches (deliver.ts). */
  soloKey: string;
  owner: Owner;
}

interface TableIndex<Owner> {
  /** column → value → bindings with eq or in on it. */
  keyed: Map<string, Map<string, Set<Binding<Owner>>>>;
  /** Checked against every row of the table. */
  scanned: Set<Binding<Owner>>;
}

export class BindingIndex<Owner> {
  private readonly tables = new Map<string, TableIndex<Owner>>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Could a row of `table` match anything at all? */
  watches(table: string): boolean {
    return this.tables.has(table) || this.tables.has('*');
  }

  add(b: Binding<Owner>): void {
    const t = this.table(b.table);
    this.count++;
    if (!isKeyed(b.filter)) {
      t.scanned.add(b);
      return;
    }
    const filter = b.filter;
    let byValue = t.keyed.get(filter.column);
    if (!byValue) t.keyed.set(filter.column, (byValue = new Map()));
    for (const v of filter.values) {
      let set = byValue.get(v);
      if (!set) byValue.set(v, (set = new Set()));
      set.add(b);
    }
  }

  remove(b: Binding<Owner>): void {
    const t = this.tables.get(b.table);
    if (!t) return;
    let removed = t.scanned.delete(b);
    const byValue = b.filter ? t.keyed.get(b.filter.column) : undefined;
    if (byValue && b.filter) {
      for (const v of b.filter.values) {
        const set = byValue.get(v);
        if (set?.delete(b)) removed = true;
        if (set?.size === 0) byValue.delete(v);
      }
      if (byValue.size === 0) t.keyed.delete(b.filter.column);
    }
    if (removed) this.count--;
    if (t.scanned.size === 0 && t.keyed.size === 0) this.tables.delete(b.table);
  }

  /** Every binding of `table` (and of '*') whose filter `row` passes, for a change of type `type`. */
  match(table: string, type: Exclude<ChangeEvent, '*'>, row: Record<string, unknown>): Binding<Owner>[] {
    const out: Binding<Owner>[] = [];
    this.collect(this.tables.get(table), type, row, out);
    if (table !== '*') this.collect(this.tables.get('*'), type, row, out);
    return out;
  }

  private collect(
    t: TableIndex<Owner> | undefined,
    type: Exclude<ChangeEvent, '*'>,
    row: Record<string, unknown>,
    out: Binding<Owner>[],
  ): void {
    if (!t) return;
    for (const [column, byValue] of t.keyed) {
      const text = textOf(row[column]);
      if (text === null) continue;
      const set = byValue.get(text);
      if (set) for (const b of set) if ((b.event === '*' || b.event === type) && alsoPasses(b, row)) out.push(b);
    }
    for (const b of t.scanned) {
      if (b.event !== '*' && b.event !== type) continue;
      if (passesFilters(b, row)) out.push(b);
    }
  }

  private table(name: string): TableIndex<Owner> {
    let t = this.tables.get(name);
    if (!t) this.tables.set(name, (t = { keyed: new Map(), scanned: new Set() }));
    return t;
  }
}

/** Does `row` pass every filter of the binding? */
export function passesFilters<Owner>(b: Binding<Owner>, row: Record<string, unknown>): boolean {
  return (!b.filter || matches(b.filter, b.kind, row[b.filter.column])) && alsoPasses(b, row);
}

function alsoPasses<Owner>(b: Binding<Owner>, row: Record<string, unknown>): boolean {
  return !b.also || b.also.every((c) => matches(c.filter, c.kind, row[c.filter.column]));
}

/** A binding's id from what defines it, as upstream derives it from the binding's parameters: equal bindings share it. */
export function bindingId(
  event: string,
  schema: string,
  table: string | undefined,
  filter: string | undefined,
): number {
  const text = `${event}\u0000${schema}\u0000${table ?? ''}\u0000${filter ?? ''}`;
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // A positive 27-bit integer, like :erlang.phash2's default range.
  return (h >>> 0) % 2 ** 27;
}
