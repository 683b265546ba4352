// Builds the SDK's package entry (package.json "exports", run by `npm pack`
// and `npm publish` through "prepack"): JavaScript and declarations for
// client/ into dist/client/, so that plain Node and tsc-compiled applications
// can import it (this repository runs the TypeScript sources through tsx).
// tsc rewrites the `.ts` import specifiers of the JavaScript it emits but not
// of the declarations, so those are rewritten here ('./sdk.js' resolves to
// sdk.d.ts for a consumer's TypeScript).
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
// Another directory may be given (scripts/build.ts passes its own).
const out = resolve(process.argv[2] ?? join(root, 'dist/client'));
rmSync(out, { recursive: true, force: true });
const tsc = join(root, 'node_modules/typescript/lib/tsc.js');
execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.client.json'), '--outDir', out], { stdio: 'inherit' });
for (const name of readdirSync(out)) {
  if (!name.endsWith('.d.ts')) continue;
  const file = join(out, name);
  const text = readFileSync(file, 'utf8');
  writeFileSync(file, text.replace(/(from\s+|import\()(['"])(\.\.?\/[^'"]+)\.ts\2/g, '$1$2$3.js$2'));
}
console.log(`built ${out}`);
