// The channels joined on this relay's Supabase door: join, leave, token
// refresh and expiry, presence, and the index the router's events are
// matched against (deliver.ts). A join's bindings are in the index BEFORE
// its ok reply is queued, so a row committed after the client saw
// SUBSCRIBED is delivered (upstream's race, realtime-js #525, cannot happen).
import { randomUUID } from 'node:crypto';
import type { Gate } from '../auth/gate.ts';
import type { Grants } from '../auth/grants.ts';
import type { Registration } from '../db/registry.ts';
import { WalcastError } from '../errors.ts';
import { BindingIndex, type Binding } from './bindings.ts';
import type { Catalog } from './catalog.ts';
import type { SupabaseConnection } from './connection.ts';
import { errorReply, PHX, push, reply, system } from './frames.ts';
import { filterText } from './filters.ts';
import { bindingsOf, type BindingSpec } from './join.ts';
import { presenceTooLarge, type PresenceStore, type Tracked } from './presence.ts';
import type { PhxMessage } from './serializer.ts';
import { resumeRequest, type ResumeRequest } from './resume.ts';
import { replayRequest, type ReplayRequest } from './replay.ts';

export interface Joined {
  conn: SupabaseConnection;
  topic: string;
  /** The topic without `realtime:`: the name broadcasts and presence are authorised on. */
  subTopic: string;
  joinRef: string | null;
  grants: Grants;
  bindings: Binding<Joined>[];
  self: boolean;
  ack: boolean;
  presenceKey: string;
  /** What this channel tracks, once committed (presence.ts). */
  tracked: Tracked | null;
  /** May it receive (and take part in) the topic's broadcasts and presence? */
  topicAllowed: boolean;
  /** Joined with config.private: the join needed the topic granted, and track needs it in publish_channels. */
  private: boolean;
  /** Joined with the resume extension: its frames carry walcast_position (resume.ts). */
  positions: boolean;
  /** What its frames depend on besides the binding ids: channels alike share a frame (deliver.ts). */
  frameKey: string;
  /**
   * Which row its bindings were last collected for, and their ids: one in
   * `firstId`, or, when `multi`, several in `ids` (deliver.ts).
   */
  round: number;
  firstId: number;
  multi: boolean;
  ids: number[];
  expiry?: NodeJS.Timeout;
}

/** setTimeout's longest delay. */
const MAX_DELAY_MS = 2 ** 31 - 1;

export interface ChannelsOptions {
  gate: Gate;
  catalog: Catalog;
  registrations: () => Registration[];
  /** The first channel joined and the last one left: the door takes router events only in between. */
  onActive: (active: boolean) => void;
  /** Send a resuming channel what it missed (resume.ts). */
  replay: (j: Joined, since: string) => void;
  /** Send a private channel the broadcasts its join asked to replay (replay.ts). */
  replayBroadcasts: (j: Joined, r: ReplayRequest) => void;
  /** Presence over every relay on the database. */
  presence: PresenceStore;
  /** A presence write or read failed (logged by the door). */
  onPresenceError: (err: unknown, topic: string) => void;
}

export class Channels {
  readonly index = new BindingIndex<Joined>();
  readonly topics = new Map<string, Set<Joined>>();
  private count = 0;

  constructor(private readonly opts: ChannelsOptions) {}

  get size(): number {
    return this.count;
  }

  async join(conn: SupabaseConnection, msg: PhxMessage): Promise<void> {
    const config = (msg.payload.config ?? {}) as Record<string, unknown>;
    const old = conn.joined.get(msg.topic);
    if (old) this.leave(old);
    let grants = conn.grants;
    let specs: BindingSpec[];
    let replay: ReplayRequest | null;
    try {
      if (typeof msg.payload.access_token === 'string') grants = await this.verify(msg.payload.access_token);
      const refused =
        config.private === true && this.privateRefusal(msg.topic.replace(/^realtime:/, ''), grants, 'join');
      if (refused) throw refused;
      replay = replayRequest(config);
      specs = await bindingsOf(config.postgres_changes, this.context(grants));
    } catch (err) {
      if (!(err instanceof WalcastError)) throw err;
      if (err.code === 'supabase_filter_unsupported') conn.send(system(conn.vsn, msg.topic, 'error', reasonOf(err)));
      conn.send(errorReply(conn.vsn, msg, reasonOf(err)));
      return;
    }
    if (!conn.open) return;
    // From here to the end, one turn of the event loop: no change falls between the replay, the index and the reply.
    const resume = resumeRequest(config);
    const j = this.add(conn, msg, config, grants, specs, resume);
    conn.send(reply(conn.vsn, msg, 'ok', { postgres_changes: specs.map((s) => s.echo) }));
    if (specs.length > 0) conn.send(system(conn.vsn, msg.topic, 'ok', 'Subscribed to PostgreSQL'));
    // Upstream tells an opted-in channel once its replication connection is up; here it is up while the door serves.
    if (isRecord(config.broadcast) && config.broadcast.replication_ready === true)
      conn.send(system(conn.vsn, msg.topic, 'ok', 'Replication connection established', 'system'));
    if (resume?.since) this.opts.replay(j, resume.since);
    if (replay && j.topicAllowed) this.opts.replayBroadcasts(j, replay);
    if (j.topicAllowed) void this.sendState(j);
  }

  /**
   * presence_state from the table, after the ok reply. Diffs that reach the
   * channel before it are held by realtime-js until the state arrives.
   */
  private async sendState(j: Joined): Promise<void> {
    try {
      const state = await this.opts.presence.state(j.subTopic);
      if (j.conn.joined.get(j.topic) === j) j.conn.send(push(j.conn.vsn, j.topic, 'presence_state', state, j.joinRef));
    } catch (err) {
      this.opts.onPresenceError(err, j.subTopic);
      if (j.conn.joined.get(j.topic) === j) j.conn.send(system(j.conn.vsn, j.topic, 'error', presenceFailed(err)));
    }
  }

  private add(
    conn: SupabaseConnection,
    msg: PhxMessage,
    config: Record<string, unknown>,
    grants: Grants,
    specs: BindingSpec[],
    resume: ResumeRequest | null,
  ): Joined {
    const broadcast = (config.broadcast ?? {}) as Record<string, unknown>;
    const presence = (config.presence ?? {}) as Record<string, unknown>;
    const subTopic = msg.topic.replace(/^realtime:/, '');
    const j: Joined = {
      conn,
      topic: msg.topic,
      subTopic,
      joinRef: msg.join_ref ?? msg.ref,
      grants,
      bindings: [],
      self: broadcast.self === true,
      ack: broadcast.ack === true,
      presenceKey: typeof presence.key === 'string' && presence.key !== '' ? presence.key : randomUUID(),
      tracked: null,
      topicAllowed: !this.opts.gate.authRequired || grants.canSubscribe(subTopic),
      private: config.private === true,
      positions: resume !== null,
      frameKey: `${conn.vsn}\u0000${msg.topic}\u0000${resume !== null}\u0000`,
      round: 0,
      firstId: 0,
      multi: false,
      ids: [],
    };
    for (const s of specs) {
      const b: Binding<Joined> = {
        id: s.echo.id,
        event: s.event,
        table: s.table,
        filter: s.filter,
        kind: s.kind,
        also: s.also,
        checkRows: s.checkRows,
        soloKey: j.frameKey + s.echo.id,
        owner: j,
      };
      j.bindings.push(b);
      this.index.add(b);
    }
    conn.joined.set(msg.topic, j);
    let set = this.topics.get(msg.topic);
    if (!set) this.topics.set(msg.topic, (set = new Set()));
    set.add(j);
    if (this.count++ === 0) this.opts.onActive(true);
    this.armExpiry(j);
    return j;
  }

  /** phx_leave, a rejoin, a closed socket, an expired token: out of the index, presence left. */
  leave(j: Joined): void {
    if (j.conn.joined.get(j.topic) !== j) return;
    j.conn.joined.delete(j.topic);
    clearTimeout(j.expiry);
    for (const b of j.bindings) this.index.remove(b);
    const set = this.topics.get(j.topic);
    set?.delete(j);
    if (set?.size === 0) this.topics.delete(j.topic);
    if (j.tracked) void this.untrackQuietly(j);
    if (--this.count === 0) this.opts.onActive(false);
  }

  /** Close a channel from the server's side (phx_close), with a system message saying why. */
  close(j: Joined, why: string): void {
    j.conn.send(system(j.conn.vsn, j.topic, 'error', why));
    j.conn.send(push(j.conn.vsn, j.topic, PHX.close, {}, j.joinRef));
    this.leave(j);
  }

  /** access_token on a joined topic: new grants; a refused token, or one that no longer allows a binding, closes it. */
  async refresh(j: Joined, msg: PhxMessage): Promise<void> {
    const token = msg.payload.access_token;
    if (typeof token !== 'string') return;
    try {
      const grants = await this.verify(token);
      // Re-check what the channel reads with the new grants (a narrower token may no longer allow it).
      const specs = j.bindings.map((b) => ({ event: b.event, ...echoOf(b) }));
      await bindingsOf(specs, this.context(grants));
      j.grants = grants;
      const refused = j.private && this.privateRefusal(j.subTopic, grants, 'join');
      if (refused) throw refused;
      j.topicAllowed = !this.opts.gate.authRequired || grants.canSubscribe(j.subTopic);
      this.armExpiry(j);
      if (msg.ref !== null) j.conn.send(reply(j.conn.vsn, msg, 'ok'));
    } catch (err) {
      if (!(err instanceof WalcastError)) throw err;
      this.close(j, reasonOf(err));
    }
  }

  /** Track: the row and its diff committed, then ok; every relay's channels on the topic get the diff from the stream. */
  async track(j: Joined, msg: PhxMessage, payload: Record<string, unknown>): Promise<void> {
    if (!j.topicAllowed) return void j.conn.send(errorReply(j.conn.vsn, msg, forbidden(j)));
    const refused = j.private && this.privateRefusal(j.subTopic, j.grants, 'track presence on');
    if (refused) return void j.conn.send(errorReply(j.conn.vsn, msg, reasonOf(refused)));
    const tooLarge = presenceTooLarge(payload);
    if (tooLarge) return void j.conn.send(errorReply(j.conn.vsn, msg, tooLarge));
    let result: Tracked | string;
    try {
      result = await this.opts.presence.track(j.subTopic, j.presenceKey, payload, j.tracked);
    } catch (err) {
      this.opts.onPresenceError(err, j.subTopic);
      return void j.conn.send(errorReply(j.conn.vsn, msg, presenceFailed(err)));
    }
    if (typeof result === 'string') return void j.conn.send(errorReply(j.conn.vsn, msg, result));
    j.tracked = result;
    // The channel left (or its socket closed) while the row was written: it must not stay.
    if (j.conn.joined.get(j.topic) !== j) return void this.untrackQuietly(j);
    j.conn.send(reply(j.conn.vsn, msg, 'ok'));
  }

  async untrack(j: Joined, msg: PhxMessage): Promise<void> {
    await this.untrackQuietly(j);
    j.conn.send(reply(j.conn.vsn, msg, 'ok'));
  }

  /** Untrack on leave or close: a failure is logged, and the row leaves when its lease runs out (it is no longer renewed). */
  private async untrackQuietly(j: Joined): Promise<void> {
    const t = j.tracked;
    j.tracked = null;
    if (t) await this.opts.presence.untrack(t).catch((err: unknown) => this.opts.onPresenceError(err, j.subTopic));
  }

  /**
   * A private channel (config.private): upstream authorises it with RLS
   * policies on realtime.messages (SELECT to join, INSERT to send); here
   * the token's channels claim must grant the topic to join, and
   * publish_channels to track presence (broadcasts need it on any channel).
   */
  private privateRefusal(topic: string, grants: Grants, action: 'join' | 'track presence on'): WalcastError | null {
    if (!this.opts.gate.authRequired) return null;
    const joining = action === 'join';
    if (joining ? grants.canSubscribe(topic) : grants.canPublishOn(topic)) return null;
    const claim = joining ? 'channels' : 'publish_channels';
    return new WalcastError('supabase_private_forbidden', { action, topic, claim });
  }

  async verify(token: string): Promise<Grants> {
    try {
      return await this.opts.gate.grantsFor(token);
    } catch (err) {
      throw new WalcastError('supabase_invalid_token', { detail: (err as Error).message }, err);
    }
  }

  private context(grants: Grants) {
    const { gate, registrations, catalog } = this.opts;
    return { grants, authRequired: gate.authRequired, registrations, catalog };
  }

  /** A token that expires closes the channels it opened, as upstream does. */
  private armExpiry(j: Joined): void {
    clearTimeout(j.expiry);
    const at = j.grants.expiresAtMs;
    if (at === null) return;
    j.expiry = setTimeout(
      () => {
        if (Date.now() >= at) this.close(j, 'token expired: send a fresh access_token before it expires');
        else this.armExpiry(j);
      },
      Math.min(Math.max(0, at - Date.now()), MAX_DELAY_MS),
    );
    j.expiry.unref();
  }
}

function echoOf(b: Binding<Joined>): Record<string, unknown> {
  const echo: Record<string, unknown> = {};
  const table = b.table === '*' ? undefined : b.table;
  if (table) {
    const dot = table.indexOf('.');
    echo.schema = dot < 0 ? 'public' : table.slice(0, dot);
    echo.table = dot < 0 ? table : table.slice(dot + 1);
  } else echo.schema = '*';
  if (b.filter) echo.filter = [b.filter, ...(b.also ?? []).map((c) => c.filter)].map(filterText).join(',');
  return echo;
}

/** What a refused join or closed channel tells the client: the stable code, then the message with the fix. */
export function reasonOf(err: WalcastError): string {
  return `${err.code}: ${err.message}`;
}

function presenceFailed(err: unknown): string {
  return reasonOf(new WalcastError('supabase_presence_failed', { detail: (err as Error).message }));
}

function forbidden(j: Joined): string {
  return reasonOf(new WalcastError('supabase_forbidden', { what: `topic ${j.subTopic}` }));
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}
