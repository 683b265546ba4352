// One broker's ingest: its connection (broker.ts), its writer (writer.ts)
// and a Poster per `post` flow. A message goes to every flow of the broker
// whose filter matches its topic; it is acknowledged once each of them has
// it committed (a row, a duplicate, a dead letter) or posted. A message no
// flow matches any more (a flow just removed) is acknowledged at once.
import type pg from 'pg';
import type { Logger } from '../log.ts';
import { WalcastError } from '../errors.ts';
import { BrokerLink, type Inbound } from './broker.ts';
import type { BrokerDef, Flow } from './catalog.ts';
import { decode } from './decode.ts';
import { Poster } from './post.ts';
import { BatchWriter, type QueuedWrite } from './writer.ts';
import type { BatchResult } from './transaction.ts';

export interface FlowCounters {
  received: number;
  committed: number;
  duplicates: number;
  dead: Record<string, number>;
}

export interface PipelineHooks {
  pool: pg.Pool;
  logger: Logger;
  counters(flow: string): FlowCounters;
  deadLetter(flow: string, error: WalcastError): void;
  brokerState(pipeline: BrokerPipeline): void;
  subscribeRefused(pipeline: BrokerPipeline, filter: string, reason: number): void;
}

export class BrokerPipeline {
  readonly link: BrokerLink;
  readonly writer: BatchWriter;
  flows: Flow[] = [];
  private readonly posters = new Map<string, Poster>();

  constructor(
    readonly def: BrokerDef,
    password: string | undefined,
    private readonly hooks: PipelineHooks,
  ) {
    this.writer = new BatchWriter({
      pool: hooks.pool,
      logger: hooks.logger,
      broker: def.name,
      onCommitted: (items, result) => this.committed(items, result),
    });
    this.link = new BrokerLink(def, password);
    this.link.on('message', (msg) => this.route(msg));
    this.link.on('state', () => hooks.brokerState(this));
    this.link.on('subscribeRefused', (filter, reason) => hooks.subscribeRefused(this, filter, reason));
  }

  get error(): WalcastError | undefined {
    return this.link.error;
  }

  /** The broker's enabled flows, as the catalog has them now. */
  setFlows(flows: Flow[]): void {
    this.flows = flows;
    const filters = new Map<string, 0 | 1>();
    for (const f of flows) {
      const qos = Math.max(filters.get(f.filter.subscription) ?? 0, f.qos) as 0 | 1;
      filters.set(f.filter.subscription, qos);
      if (f.action === 'post') {
        const poster = this.posters.get(f.name);
        if (poster) poster.update(f);
        else this.posters.set(f.name, new Poster(f));
      }
    }
    for (const [name, poster] of this.posters) {
      if (flows.some((f) => f.name === name && f.action === 'post')) continue;
      poster.stop();
      this.posters.delete(name);
    }
    this.link.setSubscriptions(filters);
  }

  /** Lets the batches in flight commit (and their PUBACKs go), then disconnects. */
  async close(timeoutMs = 5000): Promise<void> {
    for (const p of this.posters.values()) p.stop();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.writer.drain(), new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    this.writer.stop();
    await this.link.close();
  }

  private route(msg: Inbound): void {
    const pending = new Pending(msg);
    for (const flow of this.flows) {
      const captures = flow.filter.match(msg.topic);
      if (!captures) continue;
      pending.left++;
      this.hooks.counters(flow.name).received++;
      const decoded = decode(flow, msg.topic, msg.payload, captures);
      const item: QueuedWrite = {
        flow,
        topic: msg.topic,
        payload: msg.payload,
        receivedAt: msg.receivedAt,
        decoded,
        pending,
      };
      const poster = this.posters.get(flow.name);
      if (poster && decoded.ok) {
        poster.push({
          topic: msg.topic,
          row: decoded.row,
          dedup: decoded.dedup,
          delivered: () => {
            this.hooks.counters(flow.name).committed++;
            this.writer.count(flow.name, 'committed');
            pending.done();
          },
          failed: (code, params) => this.writer.push({ ...item, decoded: { ok: false, code, params } }),
        });
      } else {
        this.writer.push(item);
      }
    }
    if (pending.left === 0) msg.ack();
  }

  private committed(items: QueuedWrite[], result: BatchResult): void {
    let name: string | undefined;
    let c: FlowCounters | undefined;
    for (let i = 0; i < items.length; i++) {
      const flow = items[i]!.flow.name;
      // A batch is mostly one flow's messages: its counters are looked up when the flow changes.
      if (flow !== name) {
        name = flow;
        c = this.hooks.counters(flow);
      }
      const outcome = result.outcomes[i];
      if (outcome === 'committed') c!.committed++;
      else if (outcome === 'duplicate') c!.duplicates++;
    }
    for (const d of result.dead) {
      const counters = this.hooks.counters(d.item.flow.name);
      counters.dead[d.code] = (counters.dead[d.code] ?? 0) + 1;
      this.hooks.deadLetter(d.item.flow.name, new WalcastError(d.code, d.params));
    }
  }
}

/**
 * A message on its way to the flows it matched: acknowledged once each of
 * them has it (committed, a duplicate, a dead letter, or posted). An object
 * per message, not closures (this runs tens of thousands of times a second).
 */
export class Pending {
  left = 0;

  constructor(private readonly msg: Inbound) {}

  done(): void {
    if (--this.left === 0) this.msg.ack();
  }
}
