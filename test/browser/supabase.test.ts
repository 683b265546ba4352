// supabase-js in Chromium against the relay's Supabase door: the real
// client bundled with esbuild (as an app bundles it), using the browser's
// own WebSocket. Two pages: postgres_changes from a SQL insert, a broadcast
// between them, and presence.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { build } from 'esbuild';
import { chromium, type Browser, type Page } from 'playwright-core';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.ts';
import { startTestRelay } from '../helpers/relay.ts';
import type { Relay } from '../../relay/relay.ts';

/** What the page's script sees: the bundle's global and what the test keeps on window. */
interface Channel {
  on(
    type: string,
    filter: object,
    cb: (p: { new: { body: string }; payload: { from: string }; key: string }) => void,
  ): Channel;
  subscribe(cb: (status: string, err?: Error) => void): Channel;
  track(meta: object): Promise<unknown>;
  send(msg: object): Promise<unknown>;
}
interface AppWindow {
  supabase: { createClient(url: string, key: string): { channel(name: string, opts: object): Channel } };
  log: [string, string][];
  channel: Channel;
}

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
let db: TestDatabase;
let relay: Relay;
let browser: Browser;
let bundle: string;

before(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install -y chromium, or set CHROMIUM_PATH`);
  const out = await build({
    stdin: { contents: "export { createClient } from '@supabase/supabase-js';", resolveDir: process.cwd() },
    bundle: true,
    format: 'iife',
    globalName: 'supabase',
    platform: 'browser',
    write: false,
    logLevel: 'silent',
  });
  bundle = out.outputFiles[0]!.text;
  db = await createTestDatabase();
  relay = await startTestRelay(db.url);
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
});
after(async () => {
  await browser?.close();
  await relay?.stop();
  await db?.drop();
});

/** A page of the relay's origin with the bundle as its script; `window.app` subscribes as an app would. */
async function open(name: string): Promise<Page> {
  const page = await browser.newPage();
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(err.message));
  page.on('console', (m) => process.env.WALCAST_TEST_LOG && console.error(name, m.text()));
  // A document the relay itself serves, so the page has the relay's (loopback) origin as an app served beside it
  // would (a page fulfilled by the test would be a "public" origin to Chromium's local network checks).
  await page.goto(`${relay.url}/healthz`);
  await page.addScriptTag({ content: bundle });
  await page.evaluate(
    ([url, who]) => {
      const w = window as unknown as AppWindow;
      const sb = w.supabase.createClient(url, 'anon');
      w.log = [];
      w.channel = sb
        .channel('browser-room', { config: { broadcast: { self: false }, presence: { key: who } } })
        .on(
          'postgres_changes',
          { event: 'INSERT', schema: 'public', table: 'chat_messages', filter: 'channel_id=eq.browser-room' },
          (p) => w.log.push(['row', p.new.body]),
        )
        .on('broadcast', { event: 'wave' }, (m) => w.log.push(['wave', m.payload.from]))
        .on('presence', { event: 'join' }, (p) => w.log.push(['join', p.key]));
      return new Promise<void>((resolve, reject) =>
        w.channel.subscribe((status, err) => {
          if (status === 'SUBSCRIBED') resolve();
          else if (status !== 'CLOSED') reject(new Error(`${status} ${err?.message}`));
        }),
      );
    },
    [relay.url, name] as const,
  );
  assert.deepEqual(problems, [], `no script errors in ${name}'s page`);
  return page;
}

const logOf = (page: Page) => page.evaluate(() => (window as unknown as AppWindow).log);

async function until(page: Page, entry: [string, string]): Promise<void> {
  await page.waitForFunction(
    ([kind, value]) => (window as unknown as AppWindow).log.some((e) => e[0] === kind && e[1] === value),
    entry,
    { timeout: 15_000 },
  );
}

test('supabase-js in Chromium: a SQL insert as postgres_changes, a broadcast between pages, presence joins', async () => {
  const ada = await open('ada');
  const bob = await open('bob');
  await db.query(`insert into chat_messages (channel_id, sender, body) values ('browser-room', 'psql', 'from SQL')`);
  await until(ada, ['row', 'from SQL']);
  await until(bob, ['row', 'from SQL']);
  await ada.evaluate(() => (window as unknown as AppWindow).channel.track({ online: true }));
  await until(bob, ['join', 'ada']);
  await ada.evaluate(() =>
    (window as unknown as AppWindow).channel.send({ type: 'broadcast', event: 'wave', payload: { from: 'ada' } }),
  );
  await until(bob, ['wave', 'ada']);
  // ada has self: false; a marker row after her wave shows her own did not come back.
  await db.query(`insert into chat_messages (channel_id, sender, body) values ('browser-room', 'psql', 'marker')`);
  await until(ada, ['row', 'marker']);
  assert.deepEqual(
    (await logOf(ada)).filter((e) => e[0] !== 'join'),
    [
      ['row', 'from SQL'],
      ['row', 'marker'],
    ],
  );
});
