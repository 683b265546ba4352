// Event positions: opaque strings to clients, unique per event, that sort in
// commit order under plain string comparison. The layout is
//   <commit LSN, 16 hex digits>-<index in the transaction, 8 hex digits>-<epoch>
// The commit LSN orders transactions (pgoutput sends them in commit order);
// the index, counted from 1, orders changes inside one. Index 0 never names
// an event: "<lsn>-00000000-<epoch>" is a point in the stream before that LSN.
// The epoch names the slot's incarnation (walcast.slots): a slot dropped,
// recreated or invalidated gets a new one, and positions of another epoch
// cannot be resumed. Snapshot rows carry their subscription's starting point
// with a "~<n>" suffix, which sorts after it and before any later event.

import { hex16ToLsn, lsnToHex16, type Lsn } from './lsn.ts';

export interface PositionParts {
  commitLsn: Lsn;
  index: number;
  epoch: string;
  /** Set for snapshot rows: their number in the snapshot. */
  snapshotRow?: number;
}

const POSITION_RE = /^([0-9A-F]{16})-([0-9A-F]{8})-([0-9a-z]{1,16})(?:~(\d{1,9}))?$/;

export function formatPosition(commitLsn: Lsn, index: number, epoch: string): string {
  return `${lsnToHex16(commitLsn)}-${index.toString(16).toUpperCase().padStart(8, '0')}-${epoch}`;
}

/** The stream point just before any event of a transaction committing at or after `lsn`. */
export function streamPoint(lsn: Lsn, epoch: string): string {
  return formatPosition(lsn, 0, epoch);
}

export function snapshotPosition(base: string, row: number): string {
  return `${base}~${row.toString().padStart(6, '0')}`;
}

export function parsePosition(text: string): PositionParts | undefined {
  const m = POSITION_RE.exec(text);
  if (!m) return undefined;
  const parts: PositionParts = { commitLsn: hex16ToLsn(m[1]!), index: parseInt(m[2]!, 16), epoch: m[3]! };
  if (m[4] !== undefined) parts.snapshotRow = Number(m[4]);
  return parts;
}

export function maxPosition(a: string, b: string): string {
  return a > b ? a : b;
}

/** Sortable key of the `part`th message (0-based) of the change at (commit LSN, index). */
export function orderKey(commitLsn: Lsn, index: number, part = 0): string {
  return `${lsnToHex16(commitLsn)}-${index.toString(16).toUpperCase().padStart(8, '0')}-${part}`;
}
