// The real supabase-js client against a relay's Supabase door, and a
// collector for what its channels receive.
import { createClient, type RealtimeChannel, type SupabaseClient } from '@supabase/supabase-js';
import { WebSocket } from 'ws';
import { after } from 'node:test';

export type Vsn = '1.0.0' | '2.0.0';

export interface ClientOptions {
  vsn?: Vsn;
  heartbeatIntervalMs?: number;
  accessToken?: () => Promise<string | null>;
}

/** supabase-js pointed at `relayUrl` (the relay's http://host:port), as an app points it at its project URL. */
export function supabaseClient(relayUrl: string, anonKey: string, opts: ClientOptions = {}): SupabaseClient {
  const realtime: Record<string, unknown> = { transport: WebSocket, vsn: opts.vsn ?? '2.0.0' };
  if (opts.heartbeatIntervalMs) realtime.heartbeatIntervalMs = opts.heartbeatIntervalMs;
  return createClient(relayUrl, anonKey, {
    realtime,
    auth: { persistSession: false, autoRefreshToken: false },
    ...(opts.accessToken ? { accessToken: opts.accessToken } : {}),
  });
}

/** Subscribe and wait for SUBSCRIBED; rejects with the status and error otherwise. */
export function subscribed(channel: RealtimeChannel, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no SUBSCRIBED in time')), timeoutMs);
    channel.subscribe((status, err) => {
      if (status === 'SUBSCRIBED') {
        clearTimeout(timer);
        resolve();
      } else if (status === 'CHANNEL_ERROR' || status === 'TIMED_OUT') {
        clearTimeout(timer);
        reject(Object.assign(new Error(`${status}: ${err?.message ?? ''}`), { status }));
      }
    });
  });
}

/** Values pushed by callbacks, awaited by tests. */
export class Inbox<T> {
  readonly items: T[] = [];
  private waiters: (() => void)[] = [];

  push = (item: T): void => {
    this.items.push(item);
    for (const w of this.waiters.splice(0)) w();
  };

  async until(check: (items: T[]) => boolean, what: string, timeoutMs = 10_000): Promise<T[]> {
    const deadline = Date.now() + timeoutMs;
    while (!check(this.items)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.items).slice(0, 1500)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.items;
  }
}

/** A postgres_changes payload as it is on the wire (and the other frames' payloads, read loosely). */
export interface ChangePayload {
  ids: number[];
  data: { record: Record<string, unknown> };
  walcast_position: string;
}

/** What a raw client's channel listens to: one postgres_changes binding. */
export interface PhoenixBinding {
  event: string;
  table: string;
  filter: string;
}

/**
 * A raw Phoenix client (JSON objects: vsn 1.0.0, or no vsn), as a client
 * using the resume extension speaks it: one channel, `realtime:resume`, with
 * one binding (by default INSERTs of presence rows of channel res-1).
 */
export async function phoenix(
  url: string,
  query = 'apikey=anon&vsn=1.0.0',
  binding: PhoenixBinding = { event: 'INSERT', table: 'presence', filter: 'channel_id=eq.res-1' },
) {
  const ws = new WebSocket(`${url.replace('http', 'ws')}/realtime/v1/websocket?${query}`);
  const frames = new Inbox<{ topic: string; event: string; payload: ChangePayload; ref: string | null }>();
  ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
  await new Promise((r, j) => ws.once('open', r).once('error', j));
  const join = (walcast: object) =>
    ws.send(
      JSON.stringify({
        topic: 'realtime:resume',
        event: 'phx_join',
        ref: '1',
        join_ref: '1',
        payload: { config: { postgres_changes: [{ schema: 'public', ...binding }], walcast } },
      }),
    );
  const changes = () => frames.items.filter((f) => f.event === 'postgres_changes').map((f) => f.payload);
  return { ws, frames, join, changes };
}

/** A maker of open-mode supabase-js clients whose channels are all removed when the test file ends. */
export function openClients(): (url: string, vsn: Vsn) => SupabaseClient {
  const made: SupabaseClient[] = [];
  after(async () => {
    for (const c of made) await c.removeAllChannels();
  });
  return (url, vsn) => {
    const c = supabaseClient(url, 'anon-key-unused-in-open-mode', { vsn });
    made.push(c);
    return c;
  };
}
