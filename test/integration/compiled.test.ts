// The relay as the package and the Docker image run it: compiled JavaScript
// (npm run build), started by bin/walcast.js from a directory laid out like
// an installed package (package.json, bin/, dist/, sql/, demo/; no sources).
// A loader hook refuses tsx, esbuild and any .ts file, so the test fails if
// anything at run time still needs them: start-up, migrations, /client.js,
// the demo, a row to a subscriber, and a graceful stop.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { uniqueName } from '../helpers/postgres.ts';
import { relayFixture } from '../helpers/relay.ts';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');

const HOOKS = `
export async function resolve(specifier, context, next) {
  if (/^(tsx|esbuild)(\\/|$)/.test(specifier) || /\\.ts$/.test(specifier)) {
    throw new Error('the compiled relay loaded ' + specifier + ' at run time');
  }
  return next(specifier, context);
}`;
const REGISTER = `import { register } from 'node:module';\nregister('./hooks.mjs', import.meta.url);\n`;

const fx = relayFixture();
const { db } = fx;
let pkg: string;
before(async () => {
  pkg = await mkdtemp(join(tmpdir(), 'walcast-pkg-'));
  await run(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/build.ts'), join(pkg, 'dist')], { cwd: ROOT });
  for (const dir of ['bin', 'sql', 'demo']) await cp(join(ROOT, dir), join(pkg, dir), { recursive: true });
  await cp(join(ROOT, 'package.json'), join(pkg, 'package.json'));
  // The production dependencies, as npm would install them (the development ones are blocked by the hook).
  await symlink(join(ROOT, 'node_modules'), join(pkg, 'node_modules'), 'dir');
  await writeFile(join(pkg, 'hooks.mjs'), HOOKS);
  await writeFile(join(pkg, 'register.mjs'), REGISTER);
});
after(async () => {
  if (pkg) await rm(pkg, { recursive: true, force: true });
});

test('the compiled package runs with no TypeScript loader and no esbuild', async () => {
  const env = { DATABASE_URL: db.url, WALCAST_SLOT: uniqueName('walcast_slot'), WALCAST_EXAMPLE: 'true' };
  const command = ['--import', join(pkg, 'register.mjs'), join(pkg, 'bin/walcast.js')];
  const relay = await fx.spawn([], env, 60_000, command);
  try {
    const bundle = await fetch(`${relay.url}/client.js`);
    assert.equal(bundle.status, 200);
    assert.match(await bundle.text(), /createClient/);
    assert.equal((await fetch(`${relay.url}/`)).status, 200, 'the demo page');
    const client = await fx.client(relay);
    assert.equal((await client.subscribe('compiled')).type, 'subscribed');
    await db.query(`insert into chat_messages (channel_id, sender, body) values ('compiled', 'a', 'from dist')`);
    const [event] = await client.waitForEvents(1);
    assert.equal(event!.row.body, 'from dist');
    client.close();
  } finally {
    relay.child.kill('SIGTERM');
  }
  assert.equal(await relay.exited, 0, relay.output());
  assert.doesNotMatch(relay.output(), /loaded .* at run time/);
});
