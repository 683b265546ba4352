// MQTT ingest on the active relay: reads walcast.brokers and walcast.flows
// every CATALOG_POLL_MS and makes the running brokers and flows match. A
// broker whose own settings (URL, credentials, client id, clean) are
// unchanged keeps its connection while its flows come and go: its
// subscriptions are added and removed on the live connection. Only the
// active relay runs this (a standby calls startRelay once it holds the slot
// lock), so a standby never ingests twice. Dead letters are logged at most
// once per flow per DEAD_LETTER_LOG_MS, with how many were not. A broker's
// error (unreachable, refusing the credentials) and a flow's (cannot run,
// subscription refused) are logged once each time they change, and written
// to walcast.broker_status and walcast.flow_stats for `walcast flows`.
import { ReasonCodes } from 'mqtt';
import pg from 'pg';
import type { Logger } from '../log.ts';
import { WalcastError } from '../errors.ts';
import { readCatalog, type BrokerDef, type BrokenFlow, type Flow } from './catalog.ts';
import { BrokerPipeline, type FlowCounters } from './pipeline.ts';

export const CATALOG_POLL_MS = 1000;
export const DEAD_LETTER_LOG_MS = 10_000;
/** Dedup keys older than this are deleted (a redelivery comes within minutes; a day is ample). */
export const DEDUP_RETENTION = '1 day';
const PRUNE_MS = 60_000;

export interface BrokerSummary {
  name: string;
  state: string;
  flows: number;
  unacked: number;
  reason?: string;
}

export interface FlowSummary {
  name: string;
  broker: string;
  /**
   * subscribing: waiting for the broker's SUBACK (or for the broker); refused: the broker refused the
   * subscription (its ACL), tried again every 30 s; failed: the relay cannot run it (its table is gone).
   */
  state: 'running' | 'subscribing' | 'refused' | 'failed';
  reason?: string;
}

export class Ingest {
  readonly pipelines = new Map<string, BrokerPipeline>();
  readonly counters = new Map<string, FlowCounters>();
  /** Brokers that cannot start (a missing env:VAR secret), with why. */
  private readonly blocked = new Map<string, { def: BrokerDef; error: WalcastError }>();
  private broken: BrokenFlow[] = [];
  private readonly pool: pg.Pool;
  private readonly logged = new Map<string, { at: number; suppressed: number }>();
  private readonly reported = new Map<string, string>();
  private timers: NodeJS.Timeout[] = [];
  private loading: Promise<void> | undefined;
  private statusWrites: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly opts: { databaseUrl: string; logger: Logger; env?: NodeJS.ProcessEnv }) {
    // Its own connections: batches hold one per broker, apart from the relay's queries.
    this.pool = new pg.Pool({ connectionString: opts.databaseUrl, max: 4 });
    this.pool.on('error', (err) => opts.logger.warn({ err }, 'idle ingest database connection failed'));
  }

  async start(): Promise<void> {
    await this.load();
    this.timers = [
      setInterval(() => void this.load(), CATALOG_POLL_MS),
      setInterval(() => void this.prune(), PRUNE_MS),
    ];
    for (const t of this.timers) t.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    await this.loading;
    await this.statusWrites;
    await Promise.all([...this.pipelines.values()].map((p) => p.close()));
    this.pipelines.clear();
    await this.pool.end();
  }

  counter(flow: string): FlowCounters {
    let c = this.counters.get(flow);
    if (!c) this.counters.set(flow, (c = { received: 0, committed: 0, duplicates: 0, dead: {} }));
    return c;
  }

  /** For /readyz: each broker's state, and the flows that do not run with why. */
  summary(): { brokers: BrokerSummary[]; flows: FlowSummary[] } {
    const brokers: BrokerSummary[] = [...this.pipelines.values()].map((p) => ({
      name: p.def.name,
      state: p.link.state,
      flows: p.flows.length,
      unacked: p.link.unacked,
      reason: p.link.state === 'connected' ? undefined : p.error?.message,
    }));
    for (const { def, error } of this.blocked.values()) {
      brokers.push({ name: def.name, state: 'failed', flows: 0, unacked: 0, reason: error.message });
    }
    const flows: FlowSummary[] = [...this.pipelines.values()].flatMap((p) =>
      p.flows.map((f): FlowSummary => {
        const refused = this.refusal(p, f);
        if (refused) return { name: f.name, broker: f.broker, state: 'refused', reason: refused.message };
        const running = p.link.granted.has(f.filter.subscription);
        return { name: f.name, broker: f.broker, state: running ? 'running' : 'subscribing' };
      }),
    );
    for (const b of this.broken)
      flows.push({ name: b.name, broker: b.broker, state: 'failed', reason: b.error.message });
    return { brokers, flows };
  }

  load(): Promise<void> {
    return (this.loading ??= this.sync()
      .then(() => {
        if (this.reported.delete('catalog'))
          this.opts.logger.info('reading walcast.brokers and walcast.flows works again');
      })
      .catch((err: unknown) => {
        // Once per distinct failure, not every second (a role without SELECT on them, a schema not migrated yet).
        const message = (err as Error).message;
        if (this.reported.get('catalog') === message) return;
        this.reported.set('catalog', message);
        this.opts.logger.warn({ err }, 'reading walcast.brokers and walcast.flows failed; retrying every second');
      })
      .finally(() => (this.loading = undefined)));
  }

  private async sync(): Promise<void> {
    const catalog = await readCatalog(this.pool);
    if (this.stopped) return;
    const wanted = new Map(catalog.brokers.map((b) => [b.name, b]));
    for (const [name, p] of this.pipelines) {
      const def = wanted.get(name);
      if (def && sameBroker(def, p.def)) continue;
      this.pipelines.delete(name);
      await p.close();
      this.opts.logger.info({ broker: name }, `ingest broker ${name} ${def ? 'changed: reconnecting' : 'removed'}`);
    }
    for (const name of this.blocked.keys()) if (!wanted.has(name)) this.blocked.delete(name);
    for (const def of catalog.brokers) if (!this.pipelines.has(def.name)) this.startBroker(def);
    const byBroker = new Map<string, Flow[]>();
    for (const f of catalog.flows) (byBroker.get(f.broker) ?? byBroker.set(f.broker, []).get(f.broker)!).push(f);
    for (const [name, p] of this.pipelines) p.setFlows(byBroker.get(name) ?? []);
    this.broken = catalog.broken;
    await this.reportFlows(catalog);
  }

  private startBroker(def: BrokerDef): void {
    const blocked = this.blocked.get(def.name);
    if (blocked && sameBroker(blocked.def, def)) return;
    this.blocked.delete(def.name);
    const env = this.opts.env ?? process.env;
    const variable = def.password?.startsWith('env:') ? def.password.slice(4) : undefined;
    if (variable !== undefined && env[variable] === undefined) {
      const error = new WalcastError('ingest_secret_missing', { broker: def.name, variable });
      this.blocked.set(def.name, { def, error });
      this.opts.logger.error({ broker: def.name, code: error.code }, error.message);
      void this.writeBrokerStatus(def.name, 'failed', error.message);
      return;
    }
    const password = variable !== undefined ? env[variable] : (def.password ?? undefined);
    const pipeline = new BrokerPipeline(def, password, {
      pool: this.pool,
      logger: this.opts.logger,
      counters: (flow) => this.counter(flow),
      deadLetter: (flow, error) => this.logDeadLetter(flow, error),
      brokerState: (p) => this.brokerState(p),
      // Reported (logged once, written to walcast.flow_stats) by the catalog read this starts.
      subscribeRefused: () => void this.load(),
    });
    this.pipelines.set(def.name, pipeline);
  }

  /** Why the broker refused the subscription of this flow's filter, while it does. */
  private refusal(p: BrokerPipeline, f: Flow): WalcastError | undefined {
    const refused = p.link.refused.get(f.filter.subscription);
    if (!refused) return undefined;
    const name = (ReasonCodes as Record<number, string>)[refused.reason];
    return new WalcastError('ingest_subscribe_refused', {
      broker: f.broker,
      filter: f.filter.subscription,
      flow: f.name,
      reason: `0x${refused.reason.toString(16)}${name ? ` ${name}` : ''}`,
    });
  }

  private brokerState(p: BrokerPipeline): void {
    const { state } = p.link;
    if (this.pipelines.get(p.def.name) !== p || state === 'closed') return;
    const error = state === 'connected' ? undefined : p.error;
    const line = `${state}:${error?.message ?? ''}`;
    if (this.reported.get(`broker:${p.def.name}`) === line) return;
    this.reported.set(`broker:${p.def.name}`, line);
    // Logged when the error changes, not at each state it passes through nor at each retry.
    const message = error?.message ?? '';
    if (this.reported.get(`broker-log:${p.def.name}`) !== message) {
      this.reported.set(`broker-log:${p.def.name}`, message);
      if (error) this.opts.logger.warn({ broker: p.def.name, state, code: error.code }, error.message);
      else this.opts.logger.info({ broker: p.def.name, url: p.def.url }, `ingest broker ${p.def.name} connected`);
    }
    void this.writeBrokerStatus(p.def.name, state, error?.message ?? null);
  }

  /** Written one after another: two writes on two connections could commit in the other order. */
  private writeBrokerStatus(broker: string, state: string, detail: string | null): Promise<void> {
    return (this.statusWrites = this.statusWrites.then(() => this.writeBrokerStatusNow(broker, state, detail)));
  }

  private async writeBrokerStatusNow(broker: string, state: string, detail: string | null): Promise<void> {
    await this.pool
      .query(
        `INSERT INTO walcast.broker_status (broker, state, detail) SELECT $1, $2, $3
         WHERE EXISTS (SELECT 1 FROM walcast.brokers WHERE name = $1)
         ON CONFLICT (broker) DO UPDATE SET state = excluded.state, detail = excluded.detail, updated_at = now()`,
        [broker, state, detail],
      )
      .catch((err: unknown) => this.opts.logger.debug({ err, broker }, 'writing walcast.broker_status failed'));
  }

  /**
   * Writes why a flow does not run to walcast.flow_stats (state 'failed' or 'refused', and error) and
   * clears it once it runs, logging each change once.
   */
  private async reportFlows(catalog: { flows: Flow[]; broken: BrokenFlow[] }): Promise<void> {
    const changes: [string, string | null, string | null][] = [];
    const report = (flow: string, state: 'failed' | 'refused' | null, error: WalcastError | undefined) => {
      // Undefined: the first time this relay sees it (a reason an earlier run wrote is cleared).
      const message = error?.message ?? '';
      if (this.reported.get(`flow:${flow}`) === message) return;
      const before = this.reported.get(`flow:${flow}`);
      this.reported.set(`flow:${flow}`, message);
      if (error) this.opts.logger.error({ flow, code: error.code }, error.message);
      else if (before) this.opts.logger.info({ flow }, `flow ${flow} runs again`);
      changes.push([flow, state, error?.message ?? null]);
    };
    for (const f of catalog.flows) {
      const pipeline = this.pipelines.get(f.broker);
      const refused = pipeline && this.refusal(pipeline, f);
      report(f.name, refused ? 'refused' : null, refused);
    }
    for (const b of catalog.broken) report(b.name, 'failed', b.error);
    if (changes.length === 0) return;
    await this.pool.query(
      `UPDATE walcast.flow_stats s SET state = u.state, error = u.error
       FROM unnest($1::text[], $2::text[], $3::text[]) AS u(flow, state, error)
       WHERE s.flow = u.flow`,
      [changes.map((c) => c[0]), changes.map((c) => c[1]), changes.map((c) => c[2])],
    );
  }

  private logDeadLetter(flow: string, error: WalcastError): void {
    const now = Date.now();
    const last = this.logged.get(flow);
    if (last && now - last.at < DEAD_LETTER_LOG_MS) {
      last.suppressed++;
      return;
    }
    this.logged.set(flow, { at: now, suppressed: 0 });
    const suppressed = last?.suppressed ?? 0;
    this.opts.logger.warn(
      { flow, code: error.code, suppressed },
      `${error.message} (dead letter in walcast.dead_letters${suppressed ? `; ${suppressed} more of this flow not logged` : ''})`,
    );
  }

  private async prune(): Promise<void> {
    await this.pool
      .query(`DELETE FROM walcast.ingest_dedup WHERE seen_at < now() - $1::interval`, [DEDUP_RETENTION])
      .catch((err: unknown) => this.opts.logger.warn({ err }, 'pruning walcast.ingest_dedup failed'));
  }
}

function sameBroker(a: BrokerDef, b: BrokerDef): boolean {
  return (
    a.url === b.url &&
    a.username === b.username &&
    a.password === b.password &&
    a.clientId === b.clientId &&
    a.clean === b.clean
  );
}
