// `npm run build` (and `npm pack` through "prepack"): everything the package
// and the Docker image run, in dist/, so that neither needs tsx or esbuild:
//   dist/relay/           the relay, compiled by tsc (tsconfig.build.json)
//   dist/client/          the SDK's package entries with declarations (build-client.ts)
//   dist/client.bundle.js the SDK as one browser module, served at /client.js
// `tsx scripts/build.ts DIR` builds into DIR instead (test/integration/compiled.test.ts).
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { CLIENT_BUNDLE_FILE, CLIENT_BUNDLE_OPTIONS } from '../relay/http/client-bundle.ts';

const root = resolve(import.meta.dirname, '..');
const out = resolve(process.argv[2] ?? join(root, 'dist'));
const tsc = join(root, 'node_modules/typescript/lib/tsc.js');
rmSync(join(out, 'relay'), { recursive: true, force: true });
execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json'), '--outDir', out], { stdio: 'inherit' });
// After the relay: it rebuilds client/ with the declarations.
execFileSync(process.execPath, ['--import', 'tsx', join(root, 'scripts/build-client.ts'), join(out, 'client')], {
  stdio: 'inherit',
});
const bundle = join(out, CLIENT_BUNDLE_FILE.replace(/^dist\//, ''));
await build({ ...CLIENT_BUNDLE_OPTIONS, entryPoints: [...CLIENT_BUNDLE_OPTIONS.entryPoints], outfile: bundle });
console.log(`built ${out}`);
