// Files walcast reads at run time (sql/, demo/, the client bundle), found
// from the package root, so the same code works from the TypeScript sources
// (relay/…) and compiled (dist/relay/…, one level deeper).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
  return dir;
}

export const PACKAGE_ROOT = packageRoot();

/** A path under the package root, as a directory URL when it ends with '/'. */
export function packageUrl(path: string): URL {
  return new URL(path, pathToFileURL(`${PACKAGE_ROOT}/`));
}

/** True when this code runs compiled (dist/), false from the TypeScript sources. */
export const COMPILED = import.meta.url.endsWith('.js');
