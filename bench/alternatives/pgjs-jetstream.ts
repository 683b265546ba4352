// The pipeline a Node user would write instead of walcast's sink: postgres.js
// `sql.subscribe` (a temporary slot, acknowledged on receipt: at-most-once)
// publishing each change to JetStream, not waiting for one acknowledgement
// before the next publish. Used by bench/scenarios/streams.ts.
import postgres from 'postgres';
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';

export interface Pipeline {
  /** Changes JetStream acknowledged. */
  acked(): number;
  stop(): Promise<void>;
}

export async function startPgjsPipeline(databaseUrl: string, natsUrl: string, publication: string): Promise<Pipeline> {
  const sql = postgres(databaseUrl, { publications: publication, max: 1, onnotice: () => {} });
  const nc = await connect({ servers: natsUrl });
  const js = jetstream(nc);
  let acked = 0;
  let n = 0;
  const { unsubscribe } = await sql.subscribe('insert:chat_messages', (row) => {
    const event = { table: 'chat_messages', op: 'insert', row };
    void js
      .publish(`walcast.chat_messages.${String(row?.channel_id)}`, JSON.stringify(event), { msgID: `pgjs-${n++}` })
      .then(() => acked++);
  });
  return {
    acked: () => acked,
    async stop() {
      unsubscribe();
      await sql.end({ timeout: 1 });
      await nc.drain();
    },
  };
}
