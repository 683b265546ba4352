// GET /client.js: the client SDK (client/index.ts) as one browser ES module.
// Compiled (the package, the Docker image) it is the file `npm run build`
// bundled ahead (dist/client.bundle.js), so esbuild is not needed at run
// time; from the TypeScript sources it is bundled by esbuild when the first
// relay starts, so edits to client/ show at once. Either way it is read once
// per process and served from memory: `import { createClient } from '/client.js'`.
import { readFile } from 'node:fs/promises';
import type { FastifyPluginAsync } from 'fastify';
import { COMPILED, PACKAGE_ROOT } from '../paths.ts';

/** Where `npm run build` writes the bundle, relative to the package root. */
export const CLIENT_BUNDLE_FILE = 'dist/client.bundle.js';

/** esbuild options for the bundle: the build script and the development path share them. */
export const CLIENT_BUNDLE_OPTIONS = {
  entryPoints: [`${PACKAGE_ROOT}/client/index.ts`],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2020',
  legalComments: 'none',
  banner: { js: '// walcast client SDK: see docs/sdk.md' },
} as const;

let bundle: Promise<string> | undefined;

async function load(): Promise<string> {
  if (COMPILED) return readFile(`${PACKAGE_ROOT}/${CLIENT_BUNDLE_FILE}`, 'utf8');
  // A development dependency: imported only when running from the sources.
  const { build } = await import('esbuild');
  const result = await build({
    ...CLIENT_BUNDLE_OPTIONS,
    entryPoints: [...CLIENT_BUNDLE_OPTIONS.entryPoints],
    write: false,
  });
  return result.outputFiles[0]!.text;
}

/** The bundled SDK; the first call loads it, later calls share the result. */
function clientBundle(): Promise<string> {
  bundle ??= load();
  // A failed load is retried on the next request rather than cached.
  bundle.catch(() => (bundle = undefined));
  return bundle;
}

export const clientBundleRoutes: FastifyPluginAsync = async (app) => {
  void clientBundle().catch((err: unknown) => app.log.error({ err }, 'loading /client.js failed'));
  app.get('/client.js', async (_req, reply) => {
    const js = await clientBundle();
    return reply.type('text/javascript; charset=utf-8').header('cache-control', 'no-cache').send(js);
  });
};
