// Runs a relay as the active one or as a standby, over its whole life:
//
//   start ──lock free──▶ active ──lock lost──▶ (relay stopped) ──▶ standby
//     └───lock held elsewhere──▶ standby ──lock taken──▶ active (promoted)
//   any ──stop()──▶ stopped (graceful: relay.stop(), then the lock released)
//
// The lock is released only after the relay stopped streaming, so the next
// relay finds the slot free (ensureSlot waits up to 10 s for it anyway).
import type { Logger } from '../log.ts';
import { formatLsn } from '../replication/lsn.ts';
import { startRelay, type Relay, type RelayConfig } from '../relay.ts';
import { asStartupError } from '../db/connect-error.ts';
import { tryLeadership, waitForLeadership, type Leadership, type LeadershipOptions } from './leadership.ts';
import { startStandbyServer, type StandbyServer } from './server.ts';
import { securitySettings } from '../auth/settings.ts';

export interface RunnerHooks {
  /** Listening as a standby (no WebSocket until promoted). */
  onStandby?(server: StandbyServer): void;
  /** Streaming; `promoted` when it was a standby before. */
  onActive?(relay: Relay, promoted: boolean): void;
}

export class RelayRunner {
  relay: Relay | undefined;
  role: 'starting' | 'standby' | 'active' | 'stopped' = 'starting';
  private port: number;
  private stopped = false;
  private wake: () => void = () => {};
  private readonly stopSignal = new Promise<void>((resolve) => (this.wake = resolve));
  private running: Promise<void> | undefined;

  constructor(
    private readonly config: RelayConfig,
    private readonly logger: Logger,
    private readonly hooks: RunnerHooks = {},
  ) {
    this.port = config.port;
  }

  /** Resolves when stopped; rejects when the relay cannot start (a start-up error). */
  run(): Promise<void> {
    return (this.running ??= this.loop());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake();
    await this.running?.catch(() => {});
    this.role = 'stopped';
  }

  private get lockOptions(): LeadershipOptions {
    const c = this.config;
    return { databaseUrl: c.databaseUrl, slot: c.slot, pollMs: c.standbyPollMs, logger: this.logger };
  }

  private async loop(): Promise<void> {
    // A configuration the relay would refuse (auth_required, a bad key) must
    // stop start-up now, not wait as a standby and fail at every promotion.
    securitySettings(this.config);
    let first = true;
    while (!this.stopped) {
      const got = await this.acquire(first);
      first = false;
      if (!got) return;
      const { leadership, promoted } = got;
      if (this.stopped) {
        await leadership.release();
        return;
      }
      let relay: Relay;
      try {
        relay = await startRelay({ ...this.config, port: this.port }, this.logger);
      } catch (err) {
        await leadership.release();
        // A start-up error ends the process; after a takeover (the slot may
        // still be held by a relay PostgreSQL has not yet seen die), wait as
        // a standby and try again.
        if (!promoted) throw err;
        this.logger.error({ err, slot: this.config.slot }, 'taking over the slot failed; waiting as a standby again');
        continue;
      }
      this.relay = relay;
      this.port = relay.port;
      this.role = 'active';
      if (promoted)
        this.logger.info(
          { slot: relay.slot, lsn: formatLsn(relay.confirmedLsn) },
          'standby promoted: streaming the slot from its confirmed position',
        );
      this.hooks.onActive?.(relay, promoted);
      const lost = await Promise.race([leadership.lost, this.stopSignal.then(() => undefined)]);
      if (lost !== undefined)
        this.logger.error(
          { slot: relay.slot, reason: lost },
          'lost the slot lock: stopping the relay, then waiting as a standby',
        );
      await relay.stop();
      this.relay = undefined;
      await leadership.release();
    }
  }

  /** The lock, now or after waiting as a standby; undefined when stopped first. */
  private async acquire(first: boolean): Promise<{ leadership: Leadership; promoted: boolean } | undefined> {
    let now: Leadership | undefined;
    // After losing the lock, give the other relay the first turn: it polls
    // every pollMs, so three of them leave it time to take over.
    if (first) {
      try {
        now = await tryLeadership(this.lockOptions);
      } catch (err) {
        throw asStartupError(err, this.config.databaseUrl);
      }
    }
    if (now) return { leadership: now, promoted: false };
    const standby = await startStandbyServer({
      host: this.config.host,
      port: this.port,
      slot: this.config.slot,
      logger: this.logger,
    });
    this.port = standby.port;
    this.role = 'standby';
    this.logger.info(
      { slot: this.config.slot, port: standby.port },
      'standby: another relay holds the slot; waiting to take over',
    );
    this.hooks.onStandby?.(standby);
    try {
      const leadership = await waitForLeadership(
        this.lockOptions,
        () => this.stopped,
        first ? 0 : 3 * this.config.standbyPollMs,
      );
      return leadership && { leadership, promoted: true };
    } finally {
      await standby.close();
    }
  }
}
