// The temporary slot a restarted relay serves live rows from while the
// permanent slot re-reads the recovery window (handover.ts says who gets
// what). It is created on its own replication connection with
// CREATE_REPLICATION_SLOT … TEMPORARY, so PostgreSQL drops it when that
// session ends: on hand-over (stop()), on shutdown, and when the process
// dies. It starts at the server's current WAL (its consistent point) and
// is read with the same decoder as the permanent slot.
//
//   open() ──created──▶ streaming ──stop() / failure──▶ closed (slot gone)
//
// No reconnect: a temporary slot does not outlive its connection. When it
// cannot be created (no free slot or WAL sender, SQLSTATE 53400 / 53300, a
// transaction that keeps the slot from becoming consistent) or it fails, the
// relay goes on as without it: live rows wait for the re-read. It confirms
// only on itself (a status now and then, so the server keeps the
// connection): never on the permanent slot.
import { randomBytes } from 'node:crypto';
import { LogicalReplicationService } from 'pg-logical-replication';
import type { Client } from 'pg';
import type { Logger } from '../log.ts';
import { WalcastError, sqlState } from '../errors.ts';
import type { PgoutputMessage } from './decoder.ts';
import { TEXT_FORMAT_OPTIONS } from './values.ts';
import { parseLsn, type Lsn } from './lsn.ts';
import { HEARTBEAT_PREFIX } from './messages.ts';
import { WalcastPgoutputPlugin, serviceSocket } from './stream.ts';

export interface LiveSlotOptions {
  connectionString: string;
  /** The permanent slot's name: the temporary one is named after it. */
  slot: string;
  publication: string;
  logger: Logger;
  /** Every message after the slot's start, in WAL order; must not throw. */
  onMessage: (msg: PgoutputMessage) => void;
  /** A watchdog heartbeat came through: everything before `lsn` was read. */
  onHeartbeat: (lsn: Lsn) => void;
  /** The stream ended by itself (not by stop()): the relay goes on without it. */
  onFailure: (err: Error) => void;
  /**
   * How long creating the slot may take. PostgreSQL waits for the
   * transactions running at that moment to end; one left open would hold
   * the relay's start, so past this it starts without the slot.
   */
  createTimeoutMs?: number;
}

/** Creating the slot waits for running transactions: at most this long by default. */
export const LIVE_SLOT_CREATE_TIMEOUT_MS = 5000;

/** Creates the temporary slot on the replication connection, then streams it from its consistent point. */
class TemporaryPlugin extends WalcastPgoutputPlugin {
  constructor(
    publication: string,
    private readonly created: (lsn: Lsn) => void,
  ) {
    super({ publication });
  }

  override async start(client: Client, slotName: string): Promise<unknown> {
    const { rows } = await client.query<{ consistent_point: string }>(
      `CREATE_REPLICATION_SLOT "${slotName}" TEMPORARY LOGICAL pgoutput NOEXPORT_SNAPSHOT`,
    );
    const lsn = rows[0]!.consistent_point;
    this.created(parseLsn(lsn));
    return super.start(client, slotName, lsn);
  }
}

export class LiveSlot {
  private closed = false;

  private constructor(
    readonly name: string,
    /** Where the slot starts: events committing after it come from it. */
    readonly startLsn: Lsn,
    private readonly service: LogicalReplicationService,
  ) {}

  /** Create the slot and start streaming it; undefined (with a warning that says the fix) when it cannot be had. */
  static async open(opts: LiveSlotOptions): Promise<LiveSlot | undefined> {
    const name = `${opts.slot.slice(0, 40)}_live_${randomBytes(4).toString('hex')}`;
    const service = new LogicalReplicationService(
      { connectionString: opts.connectionString, options: TEXT_FORMAT_OPTIONS },
      // Its own status every 10 s keeps wal_sender_timeout from ending it.
      { acknowledge: { auto: false, timeoutSeconds: 10 } },
    );
    let live: LiveSlot | undefined;
    let created!: (lsn: Lsn) => void;
    let failed!: (err: Error) => void;
    const ready = new Promise<Lsn>((resolve, reject) => {
      created = resolve;
      failed = reject;
    });
    const end = (err: Error) => {
      if (!live) return failed(err);
      if (live.closed) return;
      live.closed = true;
      void service.destroy().catch(() => {});
      opts.onFailure(err);
    };
    service.on('data', (_lsn: string, msg: PgoutputMessage) => {
      if (!live || live.closed) return;
      if (msg.tag === 'message' && !msg.transactional && msg.prefix === HEARTBEAT_PREFIX) opts.onHeartbeat(msg.lsn);
      else opts.onMessage(msg);
    });
    service.on('error', (err: Error) => end(err));
    service
      .subscribe(
        new TemporaryPlugin(opts.publication, (lsn) => created(lsn)) as unknown as Parameters<
          LogicalReplicationService['subscribe']
        >[0],
        name,
      )
      .then(() => end(new Error('the server ended the temporary slot stream')))
      .catch((err: Error) => end(err));
    let timer: NodeJS.Timeout | undefined;
    const timeoutMs = opts.createTimeoutMs ?? LIVE_SLOT_CREATE_TIMEOUT_MS;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`not created within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      const startLsn = await Promise.race([ready, timeout]);
      live = new LiveSlot(name, startLsn, service);
      return live;
    } catch (err) {
      void service.destroy().catch(() => {});
      const state = sqlState(err);
      const detail = `${(err as Error).message}${state ? ` (SQLSTATE ${state})` : ''}`;
      const warning = new WalcastError('live_slot_unavailable', { detail }, err);
      opts.logger.warn({ err: warning, slot: name }, warning.message);
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  pause(): void {
    serviceSocket(this.service)?.pause();
  }

  resume(): void {
    serviceSocket(this.service)?.resume();
  }

  /** End the connection: PostgreSQL drops the temporary slot with its session. */
  async stop(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.service.destroy().catch(() => {});
  }
}
