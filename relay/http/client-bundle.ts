// GET /client.js: the client SDK (client/index.ts) as one browser ES module,
// bundled by esbuild. It is built once per process, when the first relay
// starts, and served from memory: `import { createClient } from '/client.js'`.
import type { FastifyPluginAsync } from 'fastify';
import { build } from 'esbuild';

const ENTRY = new URL('../../client/index.ts', import.meta.url).pathname;

let bundle: Promise<string> | undefined;

/** The bundled SDK; the first call builds it, later calls share the result. */
export function clientBundle(): Promise<string> {
  bundle ??= build({
    entryPoints: [ENTRY],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2020',
    write: false,
    legalComments: 'none',
    banner: { js: '// walcast client SDK: see docs/sdk.md' },
  }).then((r) => r.outputFiles[0]!.text);
  // A failed build is retried on the next request rather than cached.
  bundle.catch(() => (bundle = undefined));
  return bundle;
}

export const clientBundleRoutes: FastifyPluginAsync = async (app) => {
  void clientBundle().catch((err: unknown) => app.log.error({ err }, 'building /client.js failed'));
  app.get('/client.js', async (_req, reply) => {
    const js = await clientBundle();
    return reply.type('text/javascript; charset=utf-8').header('cache-control', 'no-cache').send(js);
  });
};
