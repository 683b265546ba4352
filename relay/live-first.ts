// Live rows first after a restart: the wiring of replication/handover.ts
// (who gets what) and replication/live-slot.ts (the temporary slot). A
// relay that starts with at least WALCAST_LIVE_SLOT_BYTES of WAL to re-read
// opens a temporary slot before it listens, and a second dispatcher routes
// that slot's events to the live subscriptions only: no recovery window, no
// sinks, no confirmation. The permanent stream's dispatcher asks the
// hand-over who gets each event it re-reads; once it passes what the
// temporary stream delivered, the temporary slot is closed (PostgreSQL drops
// it with its session) and the permanent stream serves everyone. While the
// temporary slot serves, the permanent stream's re-read is paced
// (replication/pacer.ts) so that live rows do not queue behind it.
import type { Logger } from './log.ts';
import { WalcastError } from './errors.ts';
import type { Router } from './hub/router.ts';
import { RecoveryBuffer } from './hub/recovery.ts';
import { Dispatcher, type DispatcherOptions } from './hub/dispatcher.ts';
import type { Registration } from './db/registry.ts';
import { Handover } from './replication/handover.ts';
import { LiveSlot } from './replication/live-slot.ts';
import { formatLsn, type Lsn } from './replication/lsn.ts';
import type { PgoutputMessage } from './replication/decoder.ts';
import { RebuildPacer } from './replication/pacer.ts';

export interface LiveFirstOptions {
  connectionString: string;
  slot: string;
  publication: string;
  logger: Logger;
  router: Router;
  maxEventBytes: number;
  messageRoute: DispatcherOptions['messageRoute'];
  /** Below this much WAL to re-read no temporary slot is opened (0: never). */
  minBytes: number;
  /** Stop (true) or resume (false) reading the permanent stream: its re-read is paced while the temporary slot serves. */
  pace: (on: boolean) => void;
  /** The share of the time the paced re-read may take (WALCAST_REBUILD_PERCENT / 100); 1: not paced. */
  rebuildShare: number;
}

/** What a restarting relay is doing about live rows. */
export interface LiveFirstStatus {
  /** Live rows flow from the temporary slot while the window is re-read. */
  serving: boolean;
  /** The temporary slot's name, while it is open. */
  slot: string | undefined;
}

export class LiveFirst {
  private handover: Handover | undefined;
  private live: LiveSlot | undefined;
  private dispatcher: Dispatcher | undefined;
  /** What the temporary stream has delivered: commits and heartbeats (the watchdog's lag). */
  private liveLsn: Lsn = 0n;
  private readonly pacer: RebuildPacer;

  constructor(private readonly opts: LiveFirstOptions) {
    opts.router.frontier = () => this.handover?.frontier;
    this.pacer = new RebuildPacer({ hold: opts.pace, share: opts.rebuildShare });
  }

  /**
   * The permanent stream's message handler: `handle`, its time measured
   * while the temporary slot serves, so that the pacer holds the re-read to
   * its share (replication/pacer.ts).
   */
  paced(handle: (msg: PgoutputMessage) => void): (msg: PgoutputMessage) => void {
    return (msg) => {
      if (!this.pacer.active) return handle(msg);
      const t = performance.now();
      handle(msg);
      this.pacer.spent(performance.now() - t);
    };
  }

  /** For the permanent stream's dispatcher: who gets what it reads, and where new subscriptions start. */
  readonly permanent: NonNullable<DispatcherOptions['handover']> = {
    via: (position) => this.handover?.permanent(position),
    frontier: () => this.handover?.frontier,
  };

  /**
   * Open the temporary slot when the permanent stream has at least
   * `minBytes` to re-read from `startLsn` to `liveFrom`; without it (off, too
   * little, or it cannot be had: logged) the relay works as before.
   */
  async open(startLsn: Lsn, liveFrom: Lsn, epoch: string, registrations: Registration[]): Promise<void> {
    const { minBytes, logger, router } = this.opts;
    if (minBytes === 0 || liveFrom - startLsn < BigInt(minBytes)) return;
    let dispatcher: Dispatcher | undefined;
    const live = await LiveSlot.open({
      connectionString: this.opts.connectionString,
      slot: this.opts.slot,
      publication: this.opts.publication,
      logger,
      onMessage: (msg) => dispatcher?.handle(msg),
      onHeartbeat: (lsn) => this.progress(lsn),
      onFailure: (err) => {
        const detail = `the temporary slot failed: ${err.message}`;
        const warning = new WalcastError('live_slot_unavailable', { detail }, err);
        logger.warn({ err: warning, slot: live?.name }, warning.message);
        this.handover?.stall();
        // Live rows wait for the re-read again: it goes flat out.
        this.pacer.stop();
      },
    });
    if (!live) return;
    const handover = new Handover(live.startLsn, epoch, (frontier) => this.handOver(frontier));
    dispatcher = new Dispatcher({
      router,
      logger,
      // No window: only the permanent stream keeps events, in order.
      recovery: new RecoveryBuffer({ maxAgeMs: 0, maxPerChannel: 0, maxBytes: 0 }),
      epoch,
      startLsn: live.startLsn,
      liveFromLsn: live.startLsn,
      maxEventBytes: this.opts.maxEventBytes,
      messageRoute: this.opts.messageRoute,
      handover: { via: (position) => handover.temporary(position), frontier: () => undefined },
    });
    dispatcher.setRegistrations(registrations);
    this.dispatcher = dispatcher;
    dispatcher.on('delivered', (lsn) => this.progress(lsn));
    this.handover = handover;
    this.live = live;
    if (this.opts.rebuildShare < 1) this.pacer.start();
    logger.info(
      { slot: live.name, from: formatLsn(startLsn), liveFrom: formatLsn(liveFrom), lsn: formatLsn(live.startLsn) },
      'serving live rows from a temporary slot while the recovery window is re-read',
    );
  }

  /** The permanent stream delivered everything up to `lsn`: hand over once it is past the temporary one. */
  reached(lsn: Lsn): void {
    this.handover?.permanentReached(lsn);
  }

  get status(): LiveFirstStatus {
    return { serving: this.handover?.serving === true, slot: this.live?.name };
  }

  /** What live subscriptions have had, while the temporary slot serves them (else 0). */
  get position(): Lsn {
    return this.handover?.serving ? this.liveLsn : 0n;
  }

  /** Frames the temporary stream handed to subscribers (walcast_deliveries_total counts them too). */
  get deliveries(): number {
    return this.dispatcher?.counters.deliveries ?? 0;
  }

  pause(): void {
    this.live?.pause();
  }

  resume(): void {
    this.live?.resume();
  }

  /** The permanent slot was recreated: its positions start over, nothing to hand over. */
  abandon(): void {
    this.handover?.abandon();
  }

  async stop(): Promise<void> {
    this.pacer.stop();
    const live = this.live;
    this.live = undefined;
    await live?.stop();
  }

  private progress(lsn: Lsn): void {
    if (lsn > this.liveLsn) this.liveLsn = lsn;
  }

  private handOver(frontier: string): void {
    this.pacer.stop();
    const live = this.live;
    this.live = undefined;
    this.opts.logger.info(
      { slot: live?.name, upTo: frontier },
      'the permanent slot caught up: live rows come from it again; temporary slot closed',
    );
    void live?.stop();
  }
}
