// Publish messages: a client's row becomes one INSERT with bound parameters
// into a registered table (an upsert on the primary key for state tables).
// Checked in order: the token may publish to the table; the row names only
// client-settable columns; numerics are of a sane length; it matches the
// table's JSON Schema (stored or derived); claim-bound columns get the
// token's values; the row's channel is one the token may publish on; then,
// inside the write's transaction (statement.ts), the channel of the row an
// upsert replaces and the channel the row actually lands in. The reply goes
// after the transaction committed; a failure maps its SQLSTATE to a stable
// code. Every front door (WebSocket, MQTT) publishes through this class.
import pg from 'pg';
import { drizzle } from 'drizzle-orm/node-postgres';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import {
  withId,
  type ErrorCode,
  type ErrorMessage,
  type PublishMessage,
  type PublishedMessage,
  type ValidationIssue,
} from '../../client/protocol.ts';
import type { Registration } from '../db/registry.ts';
import { fullName, toShortName } from '../table-names.ts';
import type { Logger } from '../log.ts';
import type { Grants } from '../auth/grants.ts';
import { deriveSchema, readShape, type TableShape } from './columns.ts';
import { failureOf } from './failures.ts';
import { Refused, writeRow } from './statement.ts';
import { numericIssue } from './numeric.ts';

/** Publishes one connection may have waiting for the database. */
export const MAX_PENDING_PUBLISHES = 16;
/** A table's columns are read again after this long, so ALTER TABLE reaches publishing without a restart. */
export const PLAN_MAX_AGE_MS = 30_000;
const MAX_ISSUES = 20;

interface Plan {
  reg: Registration;
  shape: TableShape;
  validate: ValidateFunction;
  readAt: number;
}

export interface PublishCounters {
  published: number;
  invalid: number;
  forbidden: number;
  failed: number;
}

export interface PublisherOptions {
  databaseUrl: string;
  logger: Logger;
  /** The registration of a table as clients name it ("chat_messages", "app.orders"). */
  registration(name: string): Registration | undefined;
}

type Reply = PublishedMessage | ErrorMessage;

export class Publisher {
  readonly counters: PublishCounters = { published: 0, invalid: 0, forbidden: 0, failed: 0 };
  private readonly pool: pg.Pool;
  private readonly db;
  // A registration is replaced when walcast.tables changes, so its plan is too.
  private readonly plans = new WeakMap<Registration, Promise<Plan>>();
  private readonly pending = new WeakMap<object, number>();

  constructor(private readonly opts: PublisherOptions) {
    this.pool = new pg.Pool({ connectionString: opts.databaseUrl, max: 4 });
    this.pool.on('error', (err) => opts.logger.warn({ err }, 'idle publish connection failed'));
    this.db = drizzle(this.pool);
  }

  /** Handle `msg` from connection `conn` holding `grants`; resolves to the reply. */
  async publish(conn: object, grants: Grants, msg: PublishMessage): Promise<Reply> {
    const pending = this.pending.get(conn) ?? 0;
    if (pending >= MAX_PENDING_PUBLISHES) {
      return this.error(
        msg,
        'rate_limited',
        `at most ${MAX_PENDING_PUBLISHES} publishes may wait for the database per connection`,
      );
    }
    this.pending.set(conn, pending + 1);
    try {
      return await this.run(grants, msg);
    } finally {
      this.pending.set(conn, (this.pending.get(conn) ?? 1) - 1);
    }
  }

  private async run(grants: Grants, msg: PublishMessage): Promise<Reply> {
    const name = toShortName(msg.table);
    const reg = this.opts.registration(name);
    if (!reg) return this.error(msg, 'unknown_table', `table ${clip(msg.table)} is not registered with walcast`);
    if (!grants.canPublishTo(name)) {
      this.counters.forbidden++;
      return this.error(msg, 'forbidden', `this connection may not publish to ${name}`);
    }
    let plan: Plan;
    try {
      plan = await this.plan(reg);
    } catch (err) {
      this.counters.failed++;
      this.opts.logger.error(
        { err, table: name },
        'cannot prepare publishing to a table (its row schema may not compile)',
      );
      return this.error(msg, 'publish_failed', `publishing to ${name} is not possible now; it has been logged`);
    }
    const issues = this.check(plan, grants, msg.row);
    if (issues.length > 0) {
      this.counters.invalid++;
      this.opts.logger.info(
        { table: name, sub: grants.sub, errors: issues.slice(0, 5) },
        'published row rejected by validation',
      );
      return {
        ...this.error(msg, 'invalid_row', `the row does not match the schema of ${name}`),
        errors: issues.slice(0, MAX_ISSUES),
      };
    }
    const row = this.bind(plan, grants, msg.row);
    if (typeof row === 'string') {
      this.counters.forbidden++;
      return this.error(msg, 'forbidden', row);
    }
    try {
      await this.db.transaction((tx) => writeRow(tx, reg, plan.shape, row, grants));
    } catch (err) {
      if (err instanceof Refused) {
        this.counters.forbidden++;
        return this.error(msg, 'forbidden', err.message);
      }
      const failure = failureOf(err);
      if (failure.code === 'publish_failed') {
        this.counters.failed++;
        this.opts.logger.error({ err, table: name }, 'publish insert failed');
      }
      return this.error(msg, failure.code, failure.message);
    }
    this.counters.published++;
    return withId<PublishedMessage>({ type: 'published', table: name }, msg.id);
  }

  private async plan(reg: Registration): Promise<Plan> {
    const cached = this.plans.get(reg);
    if (cached) {
      const plan = await cached;
      if (Date.now() - plan.readAt < PLAN_MAX_AGE_MS) return plan;
      if (this.plans.get(reg) === cached) this.plans.delete(reg);
    }
    let next = this.plans.get(reg);
    if (!next) {
      next = (async () => {
        const shape = await readShape(this.pool, reg);
        if (shape.columns.size === 0) throw new Error(`table ${fullName(reg)} has no columns or no longer exists`);
        return { reg, shape, validate: compile(shape.rowSchema ?? deriveSchema(shape)), readAt: Date.now() };
      })();
      this.plans.set(reg, next);
      next.catch(() => this.plans.delete(reg));
    }
    return next;
  }

  /** Columns the client may not name, then the schema. */
  private check(plan: Plan, grants: Grants, row: Record<string, unknown>): ValidationIssue[] {
    const issues: ValidationIssue[] = [];
    for (const key of Object.keys(row)) {
      const column = plan.shape.columns.get(key);
      const path = pointer(key);
      if (!column) issues.push({ path: clip(path), message: 'is not a column of the table' });
      else if (column.serverOwned) issues.push({ path, message: 'is set by the server' });
      else if (grants.token && plan.shape.claimColumns.has(key)) {
        issues.push({ path, message: `is set from the token's ${plan.shape.claimColumns.get(key)} claim` });
      }
    }
    if (issues.length > 0) return issues;
    // Whatever the schema says: a numeric that PostgreSQL would expand into pages of digits is refused.
    for (const [key, value] of Object.entries(row)) {
      const column = plan.shape.columns.get(key)!;
      const issue = numericIssue(column.element ?? column.type, value);
      if (issue) issues.push({ path: pointer(key), message: issue });
    }
    if (issues.length > 0) return issues;
    if (plan.validate(row)) return [];
    return (plan.validate.errors ?? []).map((e) => ({
      path: clip(e.instancePath),
      message: clip(e.message ?? 'is invalid'),
    }));
  }

  /** The row with claim-bound columns filled, or why it may not be published. */
  private bind(plan: Plan, grants: Grants, row: Record<string, unknown>): Record<string, unknown> | string {
    const out = { ...row };
    if (grants.token) {
      for (const [column, claim] of plan.shape.claimColumns) {
        const value = grants.claims[claim];
        if (value === undefined || (typeof value === 'object' && value !== null))
          return `the token has no usable ${claim} claim for column ${column}`;
        out[column] = value;
      }
    }
    const channel = out[plan.reg.channelColumn];
    if ((typeof channel === 'string' || typeof channel === 'number') && !grants.canPublishOn(String(channel))) {
      return `this connection may not publish on channel ${clip(String(channel))}`;
    }
    return out;
  }

  private error(msg: PublishMessage, code: ErrorCode, message: string): ErrorMessage {
    return withId<ErrorMessage>({ type: 'error', code, message }, msg.id);
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}

/**
 * One Ajv per schema: Ajv caches every schema it compiled (and refuses a
 * second schema with the same $id), so a shared instance would grow with
 * each reload of a table's plan.
 */
function compile(schema: object): ValidateFunction {
  const ajv = new Ajv({ allErrors: true, strict: false });
  (addFormats as unknown as (ajv: Ajv) => void)(ajv);
  return ajv.compile(schema);
}

/** A JSON Pointer to the row's property `key`. */
function pointer(key: string): string {
  return `/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`;
}

function clip(text: string): string {
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}
