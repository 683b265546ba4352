// Row types from the Drizzle schema (client/drizzle.ts) describe the wire:
// database column names and the protocol's JSON encodings. These checks are
// made by the typechecker (`npm test` runs tsc first); a wrong mapping fails
// it. The runtime test only makes the file a test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Row, Rows, TableEvent } from '../../client/index.ts';
import type { chatMessages, presence, videoFrames } from '../../relay/db/schema.ts';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const expect = <T extends true>(): T => true as T;

type Chat = Row<typeof chatMessages>;
expect<Equal<Chat, { id: string; channel_id: string; sender: string; body: string; created_at: string }>>();

type Presence = Row<typeof presence>;
expect<Equal<Presence['meta'], Record<string, unknown>>>();
expect<Equal<Presence['updated_at'], string>>();

type Frame = Row<typeof videoFrames>;
expect<Equal<Frame['payload'], string>>(); // bytea: base64
expect<Equal<Frame['seq'], number>>();

type Tables = Rows<{ chat_messages: typeof chatMessages; presence: typeof presence }>;
function narrow(e: TableEvent<Tables>): string {
  // A truncate has no row; checking the table narrows the row.
  if (e.op === 'truncate') return `${e.table} truncated`;
  if (e.table === 'chat_messages') return e.row.body;
  return e.row.user_id;
}

test('row types follow the wire (checked by tsc)', () => {
  const e = {
    type: 'event',
    channel: 'c',
    table: 'presence',
    op: 'insert',
    position: 'p',
    commit_time: 't',
    row: { user_id: 'u1' },
  };
  assert.equal(narrow(e as TableEvent<Tables>), 'u1');
});
