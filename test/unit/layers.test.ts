// The rooms of docs/architecture.md: which folder of relay/ may import which.
// A new import across folders either fits the table there or changes it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** Top-level modules of relay/ any folder may import. */
const SHARED = ['relay/errors.ts', 'relay/log.ts', 'relay/table-names.ts', 'relay/paths.ts'];
const ALLOWED: Record<string, string[]> = {
  replication: [],
  options: ['relay/config.ts'],
  db: ['replication'],
  hub: ['replication', 'db', 'client'],
  auth: ['client', 'relay/config.ts'],
  publish: ['auth', 'db', 'client'],
  ws: ['hub', 'db', 'auth', 'publish', 'replication', 'client'],
  http: ['hub', 'db', 'auth', 'replication', 'sinks', 'client'],
  jobs: ['db', 'replication'],
  sinks: ['hub', 'auth', 'replication', 'client', 'relay/config.ts'],
  mqtt: ['hub', 'db', 'auth', 'publish', 'replication', 'ws', 'client', 'relay/config.ts'],
  supabase: ['hub', 'db', 'auth', 'ws', 'client'],
  standby: ['relay/relay.ts', 'db', 'auth', 'replication'],
  ingest: ['sinks', 'client'],
  edge: [
    'relay/relay.ts',
    'relay/config.ts',
    'relay/metrics.ts',
    'hub',
    'db',
    'auth',
    'publish',
    'ws',
    'mqtt',
    'supabase',
    'http',
    'sinks',
    'replication',
    'client',
  ],
};

/** Where an import lands: a folder of relay/, `client`, or a top-level module of relay/. */
function room(path: string): string {
  const rel = relative(ROOT, path);
  if (rel.startsWith('client/')) return 'client';
  const parts = rel.split('/');
  return parts.length > 2 ? parts[1]! : rel;
}

test('each folder of relay/ imports only the folders docs/architecture.md allows', () => {
  const wrong: string[] = [];
  for (const [folder, allowed] of Object.entries(ALLOWED)) {
    const dir = join(ROOT, 'relay', folder);
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
      const text = readFileSync(join(dir, file), 'utf8');
      for (const m of text.matchAll(/from '(\.[^']+)'/g)) {
        const target = room(resolve(dir, m[1]!));
        if (target === folder || SHARED.includes(target) || allowed.includes(target)) continue;
        wrong.push(`relay/${folder}/${file} imports ${m[1]} (${target})`);
      }
    }
  }
  assert.deepEqual(wrong, []);
});

test('every folder of relay/ has a row in the table', () => {
  const folders = readdirSync(join(ROOT, 'relay'), { withFileTypes: true }).filter((d) => d.isDirectory());
  const doc = readFileSync(join(ROOT, 'docs/architecture.md'), 'utf8');
  for (const d of folders) {
    // cli and assemble (relay.ts's phases) may import anything, like relay.ts.
    if (d.name === 'cli' || d.name === 'assemble') continue;
    assert.ok(d.name in ALLOWED, `relay/${d.name}/ is in ALLOWED`);
    assert.match(doc, new RegExp(`\\|\\s*\`relay/${d.name}/\`\\s*\\|`), `relay/${d.name}/ is in docs/architecture.md`);
  }
});
