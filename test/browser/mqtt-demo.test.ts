// The chat demo over MQTT (/mqtt-demo) in Chromium with mqtt.js over
// ws://…/mqtt: two pages see each other's messages and presence, a row
// inserted with SQL, and a page that leaves deletes its presence row.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.ts';
import { startTestRelay } from '../helpers/relay.ts';
import type { Relay } from '../../relay/relay.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const WAIT = { timeout: 15_000 };
let db: TestDatabase;
let relay: Relay;
let browser: Browser;

before(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install -y chromium, or set CHROMIUM_PATH`);
  db = await createTestDatabase();
  relay = await startTestRelay(db.url);
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
});
after(async () => {
  await browser?.close();
  await relay?.stop();
  await db?.drop();
});

async function open(name: string): Promise<Page> {
  const page = await browser.newPage();
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(err.message));
  await page.goto(`${relay.url}/mqtt-demo?room=mq-lobby&name=${name}`);
  await page.locator('#status[data-status="open"]').waitFor(WAIT);
  assert.deepEqual(problems, [], `no script errors in ${name}'s page`);
  return page;
}

test('two pages chat over MQTT: messages, presence, a SQL insert, and leaving', async () => {
  await db.query(`insert into chat_messages (channel_id, sender, body) values ('mq-lobby', 'psql', 'history')`);
  const ada = await open('ada');
  const bob = await open('bob');
  await bob.locator('#messages li', { hasText: 'history' }).waitFor(WAIT);
  await ada.locator('#presence li', { hasText: 'bob' }).waitFor(WAIT);
  await bob.locator('#presence li', { hasText: 'ada' }).waitFor(WAIT);
  await ada.fill('#compose input[name=body]', 'hello over mqtt');
  await ada.click('#compose button');
  await bob.locator('#messages li', { hasText: 'hello over mqtt' }).waitFor(WAIT);
  await db.query(`insert into chat_messages (channel_id, sender, body) values ('mq-lobby', 'psql', 'from SQL')`);
  await ada.locator('#messages li', { hasText: 'from SQL' }).waitFor(WAIT);
  assert.deepEqual(await bob.locator('#messages li .body').allTextContents(), [
    'history',
    'hello over mqtt',
    'from SQL',
  ]);
  assert.deepEqual(await db.query(`select sender, body from chat_messages where body = 'hello over mqtt'`), [
    { sender: 'ada', body: 'hello over mqtt' },
  ]);
  await bob.close({ runBeforeUnload: true });
  await ada.locator('#presence li', { hasText: 'bob' }).waitFor({ state: 'detached', ...WAIT });
  // The delete reached ada's page after its commit, but PostgreSQL may send a
  // commit to the slot a moment before other sessions see it (the WAL record
  // is flushed before the transaction leaves the proc array): read until the
  // row is gone, for at most WAIT, rather than once.
  const members = async () => db.query(`select user_id from presence where channel_id = 'mq-lobby' order by user_id`);
  const deadline = Date.now() + WAIT.timeout;
  let rows = await members();
  while (rows.length > 1 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    rows = await members();
  }
  assert.deepEqual(rows, [{ user_id: 'ada' }]);
});
