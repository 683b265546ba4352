#!/usr/bin/env node
// The package's `walcast` command. Installed, or in the Docker image, it runs
// the compiled relay (dist/relay/, built by `npm run build`, which `npm pack`
// runs): plain Node, no TypeScript loader. In a checkout of the repository,
// where the TypeScript sources and the development dependencies are, it runs
// the sources through tsx, so an edit needs no build step.
import { existsSync } from 'node:fs';

async function loader() {
  if (!existsSync(new URL('../relay/main.ts', import.meta.url))) return undefined;
  try {
    return await import('tsx/esm/api');
  } catch {
    return undefined; // sources without the development dependencies: the build, if there is one
  }
}

const tsx = await loader();
if (tsx) {
  tsx.register();
  await import('../relay/main.ts');
} else {
  await import('../dist/relay/main.js');
}
