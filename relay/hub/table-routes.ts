// Which tables are registered and how each relation's rows are routed
// (by its channel column, as a change of the registry itself, or not at
// all), cached per relation OID until a Relation message or a change of
// walcast.tables says otherwise; a table that cannot be routed is warned
// about once.
import type { Logger } from '../log.ts';
import type { PgoutputMessage, Relation } from '../replication/decoder.ts';
import { registrationFromRow, type Registration } from '../db/registry.ts';
import { fullName, toFullName } from '../table-names.ts';

export type Route =
  | { kind: 'table'; channelColumn: string; omitted: string[] | undefined }
  | { kind: 'registry' }
  | { kind: 'none' };

export class TableRoutes {
  private readonly registrations = new Map<string, Registration>();
  private readonly routes = new Map<number, Route>();
  private readonly warned = new Set<string>();

  constructor(private readonly logger: Logger) {}

  set(regs: Registration[]): void {
    this.registrations.clear();
    for (const r of regs) this.registrations.set(fullName(r), r);
    this.routes.clear();
  }

  list(): Registration[] {
    return [...this.registrations.values()];
  }

  /** Is `name` ("chat_messages" or "schema.table") a registered table? */
  has(name: string): boolean {
    return this.registrations.has(toFullName(name));
  }

  /** A Relation message: the relation's columns may have changed. */
  forget(oid: number): void {
    this.routes.delete(oid);
  }

  route(relation: Relation): Route {
    let route = this.routes.get(relation.oid);
    if (route) return route;
    if (relation.schema === 'walcast' && relation.name === 'tables') route = { kind: 'registry' };
    else {
      const reg = this.registrations.get(fullName({ schema: relation.schema, table: relation.name }));
      if (reg && relation.columns.some((c) => c.name === reg.channelColumn)) {
        route = {
          kind: 'table',
          channelColumn: reg.channelColumn,
          omitted: reg.omitted.length ? reg.omitted : undefined,
        };
      } else {
        route = { kind: 'none' };
        this.warnOnce(
          `unreg:${relation.shortName}`,
          { table: relation.shortName },
          reg
            ? `table ${relation.shortName} has no column ${reg.channelColumn}; its rows are not routed. Run select walcast.register_table('${relation.shortName}', channel_column => '<column>')`
            : `table ${relation.shortName} is in the publication but not registered; its rows are not routed. Run select walcast.register_table('${relation.shortName}', channel_column => '<column>')`,
        );
      }
    }
    this.routes.set(relation.oid, route);
    return route;
  }

  /** walcast.tables changed: registrations take effect in stream order, without a restart. */
  registryChange(msg: Extract<PgoutputMessage, { tag: 'insert' | 'update' | 'delete' }>): void {
    const prior = msg.tag === 'insert' ? undefined : (msg.old ?? msg.key);
    if (prior) this.registrations.delete(`${prior.values.schema_name}.${prior.values.table_name}`);
    if (msg.tag !== 'delete') {
      const reg = registrationFromRow(msg.new.values);
      if (reg) this.registrations.set(fullName(reg), reg);
    }
    this.routes.clear();
    this.warned.clear();
    this.logger.info({ op: msg.tag }, 'table registrations changed');
  }

  warnOnce(key: string, fields: object, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.logger.warn(fields, message);
  }
}
