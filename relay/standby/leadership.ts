// Which relay streams a slot: the one holding a session advisory lock keyed
// by the slot name, on a connection of its own. Another relay with the same
// slot is a standby: it tries the lock every `pollMs` and takes over when the
// holder's session ends (process killed, connection cut: PostgreSQL releases
// the lock with the session).
//
//   waiting ──pg_try_advisory_lock = true──▶ held ──connection lost──▶ regaining
//   regaining ──lock free again──▶ held;  ──another holds it / timeout──▶ lost
//
// A held lock is checked every `pollMs` (SELECT 1) so a silently dead
// connection is noticed; the relay must stop streaming when it is lost,
// because a standby may already be taking the slot.
import pg from 'pg';
import type { Logger } from '../log.ts';

// pg_advisory_lock(int4, int4): 'walc' in ASCII (as migrate.ts), then a hash
// of the slot name. Both relays hash on the same server, so they agree.
const LOCK_CLASS = 0x77616c63;
const LOCK_SQL = `SELECT pg_try_advisory_lock(${LOCK_CLASS}, hashtext('walcast.slot:' || $1)) AS ok`;

export interface LeadershipOptions {
  databaseUrl: string;
  slot: string;
  pollMs: number;
  logger: Logger;
}

export interface Leadership {
  /** Resolves with the reason when the lock's session ends while held. */
  lost: Promise<string>;
  /** Unlock and close the lock's connection. */
  release(): Promise<void>;
}

/** Try once: the held lock, or undefined when another session holds it. */
export async function tryLeadership(opts: LeadershipOptions): Promise<Leadership | undefined> {
  const client = await connect(opts);
  const held = await tryLock(client, opts).catch(async (err: unknown) => {
    await client.end().catch(() => {});
    throw err;
  });
  if (!held) await client.end().catch(() => {});
  return held;
}

/**
 * Wait for the lock: try every `pollMs`, on one connection, until it is
 * free. Connection errors are logged and retried on a new connection (the
 * database may be restarting). `cancelled` ends the wait with undefined; the
 * first try is after `initialDelayMs`.
 */
export async function waitForLeadership(
  opts: LeadershipOptions,
  cancelled: () => boolean,
  initialDelayMs = 0,
): Promise<Leadership | undefined> {
  let failures = 0;
  let client: pg.Client | undefined;
  if (initialDelayMs > 0) await new Promise((r) => setTimeout(r, initialDelayMs));
  while (!cancelled()) {
    try {
      client ??= await connect(opts);
      const held = await tryLock(client, opts);
      if (held) return held;
      failures = 0;
    } catch (err) {
      if (failures++ === 0) opts.logger.warn({ err, slot: opts.slot }, 'standby cannot reach PostgreSQL; retrying');
      await client?.end().catch(() => {});
      client = undefined;
    }
    await new Promise((r) => setTimeout(r, opts.pollMs));
  }
  await client?.end().catch(() => {});
  return undefined;
}

async function connect(opts: LeadershipOptions): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: opts.databaseUrl, application_name: `walcast lock ${opts.slot}` });
  client.on('error', () => {}); // reported through `lost`, or by the next query
  await client.connect();
  return client;
}

async function tryLock(client: pg.Client, opts: LeadershipOptions): Promise<Leadership | undefined> {
  const { rows } = await client.query<{ ok: boolean }>(LOCK_SQL, [opts.slot]);
  return rows[0]?.ok ? hold(client, opts) : undefined;
}

function hold(first: pg.Client, opts: LeadershipOptions): Leadership {
  let client = first;
  let released = false;
  let regaining = false;
  let onLost: (reason: string) => void = () => {};
  const lost = new Promise<string>((resolve) => (onLost = resolve));
  const lose = (reason: string) => {
    if (released) return;
    released = true;
    clearInterval(timer);
    void client.end().catch(() => {});
    onLost(reason);
  };
  const watch = (c: pg.Client) => {
    c.on('error', (err: Error) => void dropped(c, `the lock's database connection failed: ${err.message}`));
    c.on('end', () => void dropped(c, "the lock's database connection ended"));
  };
  // The lock's session ended, but that need not be the end of this relay: a
  // PostgreSQL restart ends every session. Give a standby its first turn
  // (three polls), then take the lock back if it is still free; the relay
  // stops only when another relay holds it, or the database stays out of
  // reach past REGAIN_MS (its clients are better served elsewhere).
  const dropped = async (c: pg.Client, reason: string) => {
    if (released || regaining || c !== client) return;
    regaining = true;
    void c.end().catch(() => {});
    opts.logger.warn({ slot: opts.slot, reason }, 'lost the slot lock connection; trying to take the lock back');
    const deadline = Date.now() + Math.max(REGAIN_MS, 5 * opts.pollMs);
    await sleep(3 * opts.pollMs);
    while (!released && Date.now() < deadline) {
      let next: pg.Client | undefined;
      try {
        next = await connect(opts);
        const { rows } = await next.query<{ ok: boolean }>(LOCK_SQL, [opts.slot]);
        if (!rows[0]?.ok) {
          await next.end().catch(() => {});
          return lose(`${reason}, and another relay took the slot`);
        }
        if (released) return void (await next.end().catch(() => {}));
        client = next;
        watch(next);
        regaining = false;
        opts.logger.info({ slot: opts.slot }, 'took the slot lock back');
        return;
      } catch {
        await next?.end().catch(() => {});
        await sleep(opts.pollMs);
      }
    }
    lose(`${reason}, and PostgreSQL stayed out of reach`);
  };
  watch(client);
  const timer = setInterval(
    () => {
      if (regaining) return;
      const c = client;
      c.query('SELECT 1').catch(
        (err: Error) => void dropped(c, `the lock's database connection failed: ${err.message}`),
      );
    },
    Math.max(opts.pollMs, 250),
  );
  timer.unref();
  return {
    lost,
    async release() {
      if (released) return;
      released = true;
      clearInterval(timer);
      // Ending the session releases the lock too; unlocking first frees it even if the end is slow.
      await client
        .query(`SELECT pg_advisory_unlock(${LOCK_CLASS}, hashtext('walcast.slot:' || $1))`, [opts.slot])
        .catch(() => {});
      await client.end().catch(() => {});
    },
  };
}

/** How long a relay whose lock connection dropped keeps trying to take it back. */
const REGAIN_MS = 15_000;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
