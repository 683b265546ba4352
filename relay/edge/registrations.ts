// What an edge knows of the database, read through its DATABASE_URL (a
// read-only role or a read replica): the registered tables (for `tables`
// filters, snapshots and publishing) and the slot's epoch. The slot relay
// learns registration changes from its replication stream; an edge has
// none, so it reads walcast.tables again every REFRESH_MS.
import type pg from 'pg';
import { drizzle } from 'drizzle-orm/node-postgres';
import type { Logger } from '../log.ts';
import { loadRegistrations, type Registration } from '../db/registry.ts';
import { fullName, toFullName } from '../table-names.ts';

/** How often an edge reads walcast.tables again: a new registration takes effect on edges within this. */
export const REFRESH_MS = 5000;

export class EdgeRegistrations {
  private list: Registration[] = [];
  private names = new Set<string>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly pool: pg.Pool,
    private readonly slot: string,
    private readonly logger: Logger,
  ) {}

  /** Read them once (start-up fails if the database cannot be read) and then every REFRESH_MS. */
  async start(): Promise<void> {
    await this.load();
    this.timer = setInterval(
      () => void this.load().catch((err) => this.logger.warn({ err }, 'reading walcast.tables failed')),
      REFRESH_MS,
    );
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  registrations(): Registration[] {
    return this.list;
  }

  hasTable(name: string): boolean {
    return this.names.has(toFullName(name));
  }

  /** The slot's current epoch (walcast.slots), or undefined when no slot relay has run. */
  async epoch(): Promise<string | undefined> {
    const { rows } = await this.pool.query<{ epoch: string }>('SELECT epoch FROM walcast.slots WHERE slot_name = $1', [
      this.slot,
    ]);
    return rows[0]?.epoch;
  }

  private async load(): Promise<void> {
    const list = await loadRegistrations(drizzle(this.pool));
    this.list = list;
    this.names = new Set(list.map(fullName));
  }
}
