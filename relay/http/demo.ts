// The demo at `/`: a chat room with presence and a live event log
// (demo/index.html, demo.css, demo.js), and the small application routes it
// writes through. The routes do what any application server would: plain
// INSERTs and UPSERTs with Drizzle. walcast streams the rows; it never sees
// these requests. Registered only when the example tables are installed.
// The write routes bypass walcast's publish checks (no token, no grants), so
// they exist only in open mode with publishing open: with a JWT key, or with
// WALCAST_PUBLISH=off, they are not there (404) and the page is read-only.
//
//   POST   /demo/messages            {room, name, body}     insert into chat_messages
//   PUT    /demo/presence            {room, user, name}     upsert presence (a heartbeat)
//   DELETE /demo/presence?room=&user=                      delete presence (the page left)
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import type { FastifyPluginAsync } from 'fastify';
import type pg from 'pg';
import { and, eq, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { chatMessages, presence } from '../db/schema.ts';
import { MAX_CHANNEL_LENGTH } from '../../client/protocol.ts';
import { packageUrl } from '../paths.ts';

const DEMO_DIR = packageUrl('demo/');
const FILES = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/demo.css': ['demo.css', 'text/css; charset=utf-8'],
  '/demo.js': ['demo.js', 'text/javascript; charset=utf-8'],
  // The same chat over MQTT with mqtt.js (docs/mqtt.md).
  '/mqtt-demo': ['mqtt.html', 'text/html; charset=utf-8'],
  '/mqtt-demo.js': ['mqtt-demo.js', 'text/javascript; charset=utf-8'],
} as const;
/** mqtt.js's browser build, for /mqtt-demo (mqtt is a development dependency: served when installed). */
const MQTT_BROWSER_BUILD = packageUrl('node_modules/mqtt/dist/mqtt.esm.js');

const room = { type: 'string', minLength: 1, maxLength: MAX_CHANNEL_LENGTH } as const;
const name = { type: 'string', minLength: 1, maxLength: 40 } as const;
const user = { type: 'string', minLength: 1, maxLength: 64 } as const;

export interface DemoOptions {
  pool: pg.Pool;
  /** Register the write routes: only in open mode with publishing open. */
  writes: boolean;
}

export const demoRoutes: FastifyPluginAsync<DemoOptions> = async (app, { pool, writes }) => {
  for (const [path, [file, type]] of Object.entries(FILES)) {
    // Read once: the demo is three small files.
    const body = await readFile(new URL(file, DEMO_DIR), 'utf8');
    app.get(path, async (_req, reply) => reply.type(type).header('cache-control', 'no-cache').send(body));
  }
  if (existsSync(MQTT_BROWSER_BUILD)) {
    const mqttJs = await readFile(MQTT_BROWSER_BUILD, 'utf8');
    app.get('/vendor/mqtt.esm.js', async (_req, reply) => reply.type('text/javascript; charset=utf-8').send(mqttJs));
  }
  if (writes) await app.register(demoWrites, { pool });
};

const demoWrites: FastifyPluginAsync<{ pool: pg.Pool }> = async (app, { pool }) => {
  const db = drizzle(pool);

  app.post<{ Body: { room: string; name: string; body: string } }>(
    '/demo/messages',
    {
      schema: {
        body: {
          type: 'object',
          required: ['room', 'name', 'body'],
          properties: { room, name, body: { type: 'string', minLength: 1, maxLength: 2000 } },
        },
      },
    },
    async (req, reply) => {
      const [row] = await db
        .insert(chatMessages)
        .values({ channelId: req.body.room, sender: req.body.name, body: req.body.body })
        .returning({ id: chatMessages.id });
      return reply.code(201).send({ id: String(row!.id) });
    },
  );

  app.put<{ Body: { room: string; user: string; name: string } }>(
    '/demo/presence',
    {
      schema: { body: { type: 'object', required: ['room', 'user', 'name'], properties: { room, user, name } } },
    },
    async (req, reply) => {
      const { room: channelId, user: userId, name: userName } = req.body;
      await db
        .insert(presence)
        .values({ channelId, userId, name: userName, status: 'online' })
        .onConflictDoUpdate({
          target: [presence.channelId, presence.userId],
          set: { name: userName, status: 'online', updatedAt: sql`now()` },
        });
      return reply.code(204).send();
    },
  );

  app.delete<{ Querystring: { room: string; user: string } }>(
    '/demo/presence',
    {
      schema: { querystring: { type: 'object', required: ['room', 'user'], properties: { room, user } } },
    },
    async (req, reply) => {
      await db.delete(presence).where(and(eq(presence.channelId, req.query.room), eq(presence.userId, req.query.user)));
      return reply.code(204).send();
    },
  );
};
