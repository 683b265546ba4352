// The demo in a real browser: Debian's Chromium, headless, driven by
// playwright-core. Two pages in one room see each other's messages and
// presence, a row INSERTed with plain SQL, and both recover when the relay
// restarts. A page that leaves takes its presence with it.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { chromium, type Browser, type Page } from 'playwright-core';
import { relayFixture } from '../helpers/relay.ts';
import type { Relay } from '../../relay/relay.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = new URL('../../test-artifacts/', import.meta.url);
const WAIT = { timeout: 15_000 };

const fx = relayFixture();
const { db } = fx;
let relay: Relay;
let browser: Browser;

before(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium not found at ${CHROMIUM}: the browser tests need Debian's chromium package ` +
        '(apt-get install -y chromium; .ci/run installs it), or CHROMIUM_PATH set to a Chromium binary',
    );
  }
  relay = await fx.relay();
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
});

fx.cleanup(() => browser?.close());

async function open(name: string): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1100, height: 820 } });
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(err.message));
  await page.goto(`${relay.url}/?room=lobby&name=${name}`);
  await page.locator('#status[data-status="open"]').waitFor(WAIT);
  assert.deepEqual(problems, [], `no script errors in ${name}'s page`);
  return page;
}

const message = (page: Page, text: string) => page.locator('#messages li', { hasText: text });
const member = (page: Page, name: string) => page.locator('#presence li', { hasText: name });

async function send(page: Page, text: string): Promise<void> {
  await page.fill('#compose input[name=body]', text);
  await page.click('#compose button');
}

test('two pages in one room: messages, presence, SQL inserts, a relay restart, and leaving', async () => {
  const ada = await open('ada');
  const bob = await open('bob');

  await member(ada, 'bob').waitFor(WAIT);
  await member(bob, 'ada').waitFor(WAIT);

  await send(ada, 'hello from ada');
  await message(bob, 'hello from ada').waitFor(WAIT);
  await message(ada, 'hello from ada').waitFor(WAIT);

  await db.query(`insert into chat_messages (channel_id, sender, body) values ('lobby', 'psql', 'straight from SQL')`);
  await message(ada, 'straight from SQL').waitFor(WAIT);
  await message(bob, 'straight from SQL').waitFor(WAIT);

  // A member whose row is older than the presence TTL (a page that vanished) is not shown.
  await db.query(
    `insert into presence (channel_id, user_id, name, updated_at) values ('lobby', 'ghost', 'ghost', now() - interval '3 minutes')`,
  );
  await db.query(`insert into chat_messages (channel_id, sender, body) values ('lobby', 'psql', 'after the ghost')`);
  for (const page of [ada, bob]) {
    await message(page, 'after the ghost').waitFor(WAIT);
    assert.equal(await member(page, 'ghost').count(), 0, 'a stale presence row is not a member');
  }

  // The relay goes away; a row committed meanwhile must reach both pages once it is back.
  await relay.stop();
  await ada.locator('#status:not([data-status="open"])').waitFor(WAIT);
  await bob.locator('#status:not([data-status="open"])').waitFor(WAIT);
  await db.query(
    `insert into chat_messages (channel_id, sender, body) values ('lobby', 'psql', 'while the relay was down')`,
  );
  relay = await fx.relay({ slot: relay.slot, port: relay.port });
  for (const page of [ada, bob]) {
    await page.locator('#status[data-status="open"]').waitFor(WAIT);
    await message(page, 'while the relay was down').waitFor(WAIT);
  }
  await send(bob, 'bob after the restart');
  await message(ada, 'bob after the restart').waitFor(WAIT);

  for (const page of [ada, bob]) {
    const bodies = await page.locator('#messages li .body').allTextContents();
    assert.deepEqual(
      bodies,
      ['hello from ada', 'straight from SQL', 'after the ghost', 'while the relay was down', 'bob after the restart'],
      'each message once, in order',
    );
  }
  assert.equal((await ada.locator('#log li').count()) > 0, true, 'the event log shows what arrived');

  // A late joiner through the form gets the room's history and who is here from the snapshot.
  const cy = await browser.newPage();
  await cy.goto(relay.url);
  await cy.fill('#join input[name=name]', 'cy');
  await cy.fill('#join input[name=room]', 'lobby');
  await cy.click('#join button');
  await message(cy, 'bob after the restart').waitFor(WAIT);
  await member(cy, 'ada').waitFor(WAIT);
  await member(cy, 'bob').waitFor(WAIT);
  assert.equal(await member(cy, 'ghost').count(), 0, 'nor in a snapshot');
  assert.equal(new URL(cy.url()).search, '?room=lobby&name=cy', 'the URL joins directly next time');
  await cy.close();

  await mkdir(ARTIFACTS, { recursive: true });
  await ada.screenshot({ path: new URL('demo.png', ARTIFACTS).pathname, fullPage: true });

  // Bob and cy leave: each page deletes its presence row on the way out.
  await bob.close();
  await member(ada, 'bob').waitFor({ state: 'detached', ...WAIT });
  await member(ada, 'cy').waitFor({ state: 'detached', ...WAIT });
  const rows = await db.query<{ name: string }>(`select name from presence where channel_id = 'lobby' order by name`);
  assert.deepEqual(
    rows.map((r) => r.name),
    ['ada', 'ghost'],
    'the ghost waits for the TTL job',
  );

  // TRUNCATE empties the room's list; a message after it is then the only one.
  await db.query('truncate chat_messages');
  await db.query(`insert into chat_messages (channel_id, sender, body) values ('lobby', 'psql', 'after the truncate')`);
  await message(ada, 'after the truncate').waitFor(WAIT);
  assert.deepEqual(
    await ada.locator('#messages li .body').allTextContents(),
    ['after the truncate'],
    'the truncate cleared the list',
  );
});
