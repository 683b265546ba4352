// The SDK as an application gets it from the package ("exports"): built into
// dist/client/ (what `npm pack` runs), imported by plain Node without tsx,
// type-checked by a consumer's own tsc, and receiving a row from a real relay.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { relayFixture } from '../helpers/relay.ts';
import type { Relay } from '../../relay/relay.ts';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');

const fx = relayFixture();
const { db } = fx;
let relay: Relay;
let app: string;
before(async () => {
  relay = await fx.relay();
  await run(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/build-client.ts')], { cwd: ROOT });
  // An application with walcast in its node_modules (as `npm install` would link a local package).
  app = await mkdtemp(join(tmpdir(), 'walcast-app-'));
  await mkdir(join(app, 'node_modules'));
  await symlink(ROOT, join(app, 'node_modules/walcast'), 'dir');
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'app', type: 'module', private: true }));
});
after(async () => {
  if (app) await rm(app, { recursive: true, force: true });
});

test('plain Node imports walcast/client/node and receives a row from a relay', async () => {
  await writeFile(
    join(app, 'main.mjs'),
    `
import { createClient } from 'walcast/client/node';
import { parseClientMessage } from 'walcast/client/protocol';
if (!parseClientMessage('{"type":"ping"}').ok) throw new Error('protocol entry');
const rt = createClient(process.argv[2]);
const sub = rt.subscribe('pkg', {}, (e) => { console.log(e.op, e.row.body); rt.close(); });
await sub.ready;
console.log('subscribed');
`,
  );
  const child = execFile(process.execPath, [join(app, 'main.mjs'), relay.url], { cwd: app, timeout: 20_000 });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', r));
  while (!out.includes('subscribed') && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
  await db.query(`insert into chat_messages (channel_id, sender, body) values ('pkg', 'app', 'from the package')`);
  assert.equal(await exited, 0, out);
  assert.match(out, /^subscribed\ninsert from the package\n$/);
});

test("a consumer's tsc gets the SDK's types from walcast/client", async () => {
  await writeFile(
    join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        target: 'ES2022',
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        lib: ['ES2022', 'DOM'],
        types: [],
      },
      files: ['consumer.ts'],
    }),
  );
  await writeFile(
    join(app, 'consumer.ts'),
    `
import { createClient, type StatusEvent } from 'walcast/client';
const rt = createClient('http://127.0.0.1:8080');
rt.on('status', (s: StatusEvent) => s.status);
// @ts-expect-error: a channel is a string (the types are real, not any)
rt.subscribe(42, {}, () => {});
`,
  );
  const tsc = join(ROOT, 'node_modules/typescript/lib/tsc.js');
  const result = await run(process.execPath, [tsc, '-p', join(app, 'tsconfig.json')], { cwd: app }).then(
    () => ({ code: 0, out: '' }),
    (err: { code: number; stdout: string }) => ({ code: err.code, out: err.stdout }),
  );
  assert.equal(result.code, 0, result.out);
});
