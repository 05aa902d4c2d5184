/**
 * A fake Discord for tests: REST v10, gateway v10 and a CDN on one loopback port (node:http + ws).
 *
 * It speaks enough of Discord's protocol for the REAL discord.js 14 client to log in, receive guilds,
 * interactions and messages, defer/edit/delete/follow up interaction replies, send channel messages with
 * multipart uploads, and (de)register application commands. Everything the bot sends is recorded with
 * multipart bodies parsed, so tests assert on what a Discord user would have seen.
 *
 * Fault injection: `failNext()` answers the next matching REST call with a 429 (or any status), and
 * `dropConnections()` closes the gateway socket with a resumable code so the client must RESUME.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

/** One REST request the bot made, body parsed (JSON or multipart `payload_json` + files). */
export interface RecordedRequest {
  readonly method: string;
  /** Decoded path below `/api/v10`, e.g. `/webhooks/1/tok/messages/@original`. */
  readonly path: string;
  readonly query: URLSearchParams;
  readonly body: unknown;
  readonly files: readonly RecordedFile[];
  readonly status: number;
}

/** A file uploaded in a multipart request. */
export interface RecordedFile {
  readonly field: string;
  readonly name: string;
  readonly contentType: string;
  readonly data: Buffer;
}

/** A user as the fake knows it. */
export interface FakeUser {
  readonly id: string;
  readonly username: string;
  readonly bot?: boolean;
}

/** A guild with channels and roles. */
export interface FakeGuild {
  readonly id: string;
  readonly name: string;
  readonly channels: readonly { id: string; name: string }[];
  readonly roles: readonly { id: string; name: string; permissions: string }[];
}

/** A message stored by the fake (sent by the bot or injected by a test). */
export type FakeMessage = Record<string, unknown> & { id: string; channel_id: string };

interface FailRule {
  readonly method: string;
  readonly path: RegExp;
  readonly status: number;
  readonly retryAfterS: number;
  remaining: number;
}

interface Session {
  readonly id: string;
  seq: number;
  socket: WebSocket | undefined;
  readonly shard: [number, number];
}

/** Discord permission bits used in tests. */
export const Perm = {
  ADMINISTRATOR: 1n << 3n,
  MANAGE_GUILD: 1n << 5n,
  SEND_MESSAGES: 1n << 11n,
  USE_APPLICATION_COMMANDS: 1n << 31n,
} as const;

/** Default member permissions (send messages + use application commands). */
export const MEMBER_PERMS = (Perm.SEND_MESSAGES | Perm.USE_APPLICATION_COMMANDS).toString();
/** Permissions of a moderator (adds Manage Guild). */
export const MODERATOR_PERMS = (Perm.SEND_MESSAGES | Perm.USE_APPLICATION_COMMANDS | Perm.MANAGE_GUILD).toString();

let snowflakeCounter = 0n;
/** A fresh, increasing snowflake-shaped id. */
export function snowflake(): string {
  snowflakeCounter += 1n;
  return ((BigInt(Date.now() - 1420070400000) << 22n) | (snowflakeCounter & 0x3fffffn)).toString();
}

function nowIso(): string {
  return new Date().toISOString();
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** The fake server. Create with {@link startFakeDiscord}. */
export class FakeDiscord {
  readonly applicationId = snowflake();
  readonly botUser: FakeUser = { id: this.applicationId, username: 'solescope', bot: true };
  readonly token = `fake-${randomBytes(12).toString('hex')}`;
  readonly requests: RecordedRequest[] = [];
  readonly guilds: FakeGuild[] = [];
  /** Registered application commands: key `global` or a guild id. */
  readonly commands = new Map<string, Record<string, unknown>[]>();
  readonly messages = new Map<string, FakeMessage>();
  /** CDN files by path (e.g. `/attachments/1/2/shoe.png`). */
  readonly cdnFiles = new Map<string, { data: Buffer; contentType: string }>();
  /** Gateway counters, for resume tests. */
  readonly gateway = { identifies: 0, resumes: 0, heartbeats: 0, shards: [] as [number, number][] };
  private readonly interactionOriginals = new Map<string, FakeMessage>();
  private readonly failRules: FailRule[] = [];
  private readonly sessions = new Map<string, Session>();
  private readonly waiters = new Set<() => void>();
  private readonly wss = new WebSocketServer({ noServer: true });
  private port = 0;

  constructor(private readonly server: Server) {}

  /** `http://127.0.0.1:PORT` */
  get origin(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** REST base for discord.js (`rest.api`), i.e. DISCORD_API_URL. */
  get apiUrl(): string {
    return `${this.origin}/api`;
  }

  /** CDN base, i.e. DISCORD_CDN_URL. */
  get cdnUrl(): string {
    return `${this.origin}/cdn`;
  }

  /** @internal */
  async listen(): Promise<void> {
    this.server.on('request', (req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        res.statusCode = 500;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ message: String(err), code: 0 }));
      });
    });
    this.server.on('upgrade', (req, socket, head) => {
      if (!(req.url ?? '').startsWith('/gateway')) {
        socket.destroy();
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.onSocket(ws));
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  /** Stop the server and drop every connection. */
  async close(): Promise<void> {
    for (const client of this.wss.clients) client.terminate();
    this.wss.close();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---------------------------------------------------------------- test helpers

  /** Add a guild (call before the bot logs in, or dispatch GUILD_CREATE yourself). */
  addGuild(name = 'Sneakerheads'): FakeGuild {
    const id = snowflake();
    const guild: FakeGuild = {
      id,
      name,
      channels: [{ id: snowflake(), name: 'general' }, { id: snowflake(), name: 'mod-log' }],
      roles: [
        { id, name: '@everyone', permissions: MEMBER_PERMS },
        { id: snowflake(), name: 'Sneaker Mods', permissions: MEMBER_PERMS },
      ],
    };
    this.guilds.push(guild);
    return guild;
  }

  /** Serve `data` on the fake CDN; returns its URL. */
  addCdnFile(name: string, data: Buffer, contentType = 'image/png'): string {
    const path = `/attachments/${snowflake()}/${snowflake()}/${name}`;
    this.cdnFiles.set(path, { data, contentType });
    return `${this.cdnUrl}${path}`;
  }

  /** Answer the next `times` calls matching method + path with `status` (429 by default). */
  failNext(method: string, path: RegExp, options: { status?: number; retryAfterS?: number; times?: number } = {}): void {
    this.failRules.push({ method, path, status: options.status ?? 429, retryAfterS: options.retryAfterS ?? 0.2, remaining: options.times ?? 1 });
  }

  /** Send a dispatch event to every connected session (or one shard). */
  dispatch(t: string, d: unknown, shard?: number): void {
    for (const session of this.sessions.values()) {
      if (shard !== undefined && session.shard[0] !== shard) continue;
      this.sendDispatch(session, t, d);
    }
  }

  /** Close every gateway socket with a resumable close code; the client must RESUME. */
  dropConnections(code = 4000): void {
    for (const session of this.sessions.values()) session.socket?.close(code, 'fake: dropped');
  }

  /** Number of sessions with an open socket. */
  get connectedSessions(): number {
    return [...this.sessions.values()].filter((s) => s.socket && s.socket.readyState === s.socket.OPEN).length;
  }

  /** Wait until `predicate` returns a truthy value (checked after every request and every second tick). */
  async waitFor<T>(predicate: () => T | undefined | false | null, timeoutMs = 10_000, what = 'condition'): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = predicate();
      if (value) return value;
      if (Date.now() > deadline) throw new Error(`fake-discord: timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          this.waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, 50);
        this.waiters.add(done);
      });
    }
  }

  /** The shard a guild belongs to (Discord's formula: (guild_id >> 22) % shard_count). */
  shardOf(guild: FakeGuild, count: number): number {
    return Number((BigInt(guild.id) >> 22n) % BigInt(count));
  }

  /** Requests whose method and path match. */
  find(method: string, path: RegExp): RecordedRequest[] {
    return this.requests.filter((r) => r.method === method && path.test(r.path));
  }

  /** The current state of an interaction's original response (after defer + edits). */
  original(token: string): FakeMessage | undefined {
    return this.interactionOriginals.get(token);
  }

  /** Requests made for one interaction (callback, webhook edits, follow-ups). */
  interactionRequests(id: string, token: string): RecordedRequest[] {
    return this.requests.filter((r) => r.path.startsWith(`/interactions/${id}/${token}/`) || r.path.includes(`/webhooks/${this.applicationId}/${token}`));
  }

  /** Build a member payload. */
  member(user: FakeUser, options: { permissions?: string; roles?: string[] } = {}): Record<string, unknown> {
    return {
      user: this.userJson(user),
      roles: options.roles ?? [],
      permissions: options.permissions ?? MEMBER_PERMS,
      joined_at: nowIso(),
      deaf: false,
      mute: false,
      flags: 0,
      pending: false,
      nick: null,
      avatar: null,
    };
  }

  /**
   * Dispatch an INTERACTION_CREATE. `guild` undefined means a DM. Returns id and token so tests can
   * follow the interaction's requests.
   */
  interact(options: {
    type: 2 | 3 | 4;
    user: FakeUser;
    guild?: FakeGuild | undefined;
    channelId?: string;
    permissions?: string;
    roles?: string[];
    data: Record<string, unknown>;
    message?: FakeMessage;
    raw?: (payload: Record<string, unknown>) => Record<string, unknown>;
  }): { id: string; token: string } {
    const id = snowflake();
    const token = `itok-${randomBytes(16).toString('hex')}`;
    const guild = options.guild;
    const channelId = options.channelId ?? guild?.channels[0]?.id ?? snowflake();
    let payload: Record<string, unknown> = {
      id,
      application_id: this.applicationId,
      type: options.type,
      token,
      version: 1,
      data: options.data,
      channel_id: channelId,
      channel: guild ? { id: channelId, type: 0, guild_id: guild.id, name: 'general' } : { id: channelId, type: 1, recipients: [this.userJson(options.user)] },
      locale: 'en-US',
      app_permissions: MODERATOR_PERMS,
      entitlements: [],
      authorizing_integration_owners: { '0': guild?.id ?? '0' },
      context: guild ? 0 : 1,
      attachment_size_limit: 26214400,
      ...(guild
        ? { guild_id: guild.id, guild_locale: 'en-US', guild: { id: guild.id, locale: 'en-US', features: [] }, member: this.member(options.user, { ...(options.permissions ? { permissions: options.permissions } : {}), ...(options.roles ? { roles: options.roles } : {}) }) }
        : { user: this.userJson(options.user) }),
      ...(options.message ? { message: options.message } : {}),
    };
    if (options.raw) payload = options.raw(payload);
    this.dispatch('INTERACTION_CREATE', payload);
    return { id, token };
  }

  /** Dispatch a MESSAGE_CREATE from `user` in a guild channel. Returns the stored message. */
  postMessage(options: {
    user: FakeUser;
    guild: FakeGuild;
    channelId?: string;
    content: string;
    attachments?: { name: string; url: string; contentType?: string; size: number }[];
    mentionBot?: boolean;
    replyTo?: FakeMessage;
    roles?: string[];
  }): FakeMessage {
    const channelId = options.channelId ?? options.guild.channels[0]?.id ?? '0';
    const message: FakeMessage = {
      id: snowflake(),
      channel_id: channelId,
      guild_id: options.guild.id,
      author: this.userJson(options.user),
      member: { roles: options.roles ?? [], joined_at: nowIso(), deaf: false, mute: false, flags: 0 },
      content: options.content,
      timestamp: nowIso(),
      edited_timestamp: null,
      tts: false,
      mention_everyone: false,
      mentions: options.mentionBot ? [this.userJson(this.botUser)] : [],
      mention_roles: [],
      attachments: (options.attachments ?? []).map((a) => ({
        id: snowflake(),
        filename: a.name,
        size: a.size,
        url: a.url,
        proxy_url: a.url,
        ...(a.contentType ? { content_type: a.contentType } : {}),
      })),
      embeds: [],
      pinned: false,
      type: options.replyTo ? 19 : 0,
      flags: 0,
      components: [],
      ...(options.replyTo
        ? { message_reference: { type: 0, message_id: options.replyTo.id, channel_id: options.replyTo.channel_id, guild_id: options.guild.id }, referenced_message: options.replyTo }
        : {}),
    };
    this.messages.set(message.id, message);
    this.dispatch('MESSAGE_CREATE', message);
    return message;
  }

  /** Messages the bot created in a channel (POST /channels/{id}/messages), in order. */
  botMessages(channelId: string): FakeMessage[] {
    return [...this.messages.values()].filter((m) => m.channel_id === channelId && (m.author as { id?: string } | undefined)?.id === this.botUser.id);
  }

  userJson(user: FakeUser): Record<string, unknown> {
    return { id: user.id, username: user.username, discriminator: '0', global_name: user.username, avatar: null, bot: user.bot ?? false, flags: 0 };
  }

  // ---------------------------------------------------------------- gateway

  private sendDispatch(session: Session, t: string, d: unknown): void {
    session.seq += 1;
    if (session.socket && session.socket.readyState === session.socket.OPEN) session.socket.send(JSON.stringify({ op: 0, t, s: session.seq, d }));
  }

  private onSocket(ws: WebSocket): void {
    ws.send(JSON.stringify({ op: 10, d: { heartbeat_interval: 41_250 }, s: null, t: null }));
    let session: Session | undefined;
    ws.on('message', (raw) => {
      let msg: { op: number; d: Record<string, unknown> | number | null };
      try {
        msg = JSON.parse(String(raw)) as typeof msg;
      } catch {
        ws.close(4002, 'decode error');
        return;
      }
      const d = (msg.d ?? {}) as Record<string, unknown>;
      switch (msg.op) {
        case 1:
          this.gateway.heartbeats += 1;
          ws.send(JSON.stringify({ op: 11, d: null, s: null, t: null }));
          break;
        case 2: {
          if (d.token !== this.token) {
            ws.close(4004, 'Authentication failed.');
            return;
          }
          this.gateway.identifies += 1;
          const shard = (Array.isArray(d.shard) ? d.shard : [0, 1]) as [number, number];
          this.gateway.shards.push(shard);
          session = { id: randomBytes(8).toString('hex'), seq: 0, socket: ws, shard };
          this.sessions.set(session.id, session);
          const mine = this.guilds.filter((g) => Number((BigInt(g.id) >> 22n) % BigInt(shard[1])) === shard[0]);
          this.sendDispatch(session, 'READY', {
            v: 10,
            user: { ...this.userJson(this.botUser), verified: true, mfa_enabled: false },
            guilds: mine.map((g) => ({ id: g.id, unavailable: true })),
            session_id: session.id,
            resume_gateway_url: `ws://127.0.0.1:${this.port}/gateway`,
            shard,
            application: { id: this.applicationId, flags: 0 },
            private_channels: [],
            relationships: [],
            presences: [],
            guild_join_requests: [],
            user_settings: {},
            geo_ordered_rtc_regions: [],
            _trace: ['fake-discord'],
          });
          for (const guild of mine) this.sendDispatch(session, 'GUILD_CREATE', this.guildJson(guild));
          break;
        }
        case 6: {
          const found = this.sessions.get(String(d.session_id));
          if (!found || d.token !== this.token) {
            ws.send(JSON.stringify({ op: 9, d: false, s: null, t: null }));
            return;
          }
          this.gateway.resumes += 1;
          session = found;
          session.socket = ws;
          this.sendDispatch(session, 'RESUMED', { _trace: ['fake-discord'] });
          break;
        }
        default:
          // presence updates, request guild members...: accepted and ignored
          break;
      }
      this.wake();
    });
    ws.on('close', () => {
      if (session && session.socket === ws) session.socket = undefined;
      this.wake();
    });
  }

  private guildJson(guild: FakeGuild): Record<string, unknown> {
    return {
      id: guild.id,
      name: guild.name,
      icon: null,
      splash: null,
      discovery_splash: null,
      owner_id: snowflake(),
      afk_channel_id: null,
      afk_timeout: 300,
      verification_level: 0,
      default_message_notifications: 0,
      explicit_content_filter: 0,
      roles: guild.roles.map((r, i) => ({ id: r.id, name: r.name, permissions: r.permissions, position: i, color: 0, hoist: false, managed: false, mentionable: false, flags: 0 })),
      emojis: [],
      stickers: [],
      features: [],
      mfa_level: 0,
      system_channel_id: null,
      system_channel_flags: 0,
      rules_channel_id: null,
      vanity_url_code: null,
      description: null,
      banner: null,
      premium_tier: 0,
      preferred_locale: 'en-US',
      public_updates_channel_id: null,
      nsfw_level: 0,
      premium_progress_bar_enabled: false,
      joined_at: nowIso(),
      large: false,
      unavailable: false,
      member_count: 2,
      voice_states: [],
      members: [],
      channels: guild.channels.map((c, i) => ({ id: c.id, type: 0, name: c.name, position: i, guild_id: guild.id, permission_overwrites: [], nsfw: false, parent_id: null, topic: null, last_message_id: null, rate_limit_per_user: 0 })),
      threads: [],
      presences: [],
      stage_instances: [],
      guild_scheduled_events: [],
      soundboard_sounds: [],
    };
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  // ---------------------------------------------------------------- REST + CDN

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.origin);
    const raw = await readBody(req);
    if (url.pathname.startsWith('/cdn/')) {
      const file = this.cdnFiles.get(url.pathname.slice('/cdn'.length));
      if (!file) {
        res.statusCode = 404;
        res.setHeader('content-type', 'text/plain');
        res.end('This content is no longer available.');
        return;
      }
      res.statusCode = 200;
      res.setHeader('content-type', file.contentType);
      res.setHeader('content-length', String(file.data.length));
      res.end(file.data);
      return;
    }
    if (!url.pathname.startsWith('/api/v10/')) {
      this.json(res, 404, { message: '404: Not Found', code: 0 });
      return;
    }
    const path = decodeURIComponent(url.pathname.slice('/api/v10'.length));
    const method = req.method ?? 'GET';
    const { body, files } = await this.parseBody(req, raw);
    const status = this.route(method, path, url.searchParams, body, files, res, req);
    this.requests.push({ method, path, query: url.searchParams, body, files, status });
    this.wake();
  }

  private async parseBody(req: IncomingMessage, raw: Buffer): Promise<{ body: unknown; files: RecordedFile[] }> {
    const type = req.headers['content-type'] ?? '';
    if (raw.length === 0) return { body: undefined, files: [] };
    if (type.startsWith('multipart/form-data')) {
      const form = await new Request('http://x/', { method: 'POST', headers: { 'content-type': type }, body: raw }).formData();
      const files: RecordedFile[] = [];
      let body: unknown;
      for (const [field, value] of form.entries()) {
        if (typeof value === 'string') {
          if (field === 'payload_json') body = JSON.parse(value);
        } else {
          files.push({ field, name: value.name, contentType: value.type, data: Buffer.from(await value.arrayBuffer()) });
        }
      }
      return { body, files };
    }
    if (type.includes('json')) return { body: JSON.parse(raw.toString('utf8')), files: [] };
    return { body: raw.toString('utf8'), files: [] };
  }

  private json(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): number {
    res.statusCode = status;
    for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
    if (status === 204) {
      // A 204 with content-type: application/json crashes discord.js (it parses the empty body).
      res.end();
      return status;
    }
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(value));
    return status;
  }

  private messageFrom(channelId: string, body: Record<string, unknown>, files: readonly RecordedFile[], extra: Record<string, unknown> = {}): FakeMessage {
    const id = snowflake();
    const attachments = files.map((f, i) => {
      const cdnPath = `/attachments/${channelId}/${id}/${f.name}`;
      this.cdnFiles.set(cdnPath, { data: f.data, contentType: f.contentType || 'application/octet-stream' });
      return { id: String(i), filename: f.name, size: f.data.length, url: `${this.cdnUrl}${cdnPath}`, proxy_url: `${this.cdnUrl}${cdnPath}`, content_type: f.contentType };
    });
    return {
      id,
      channel_id: channelId,
      author: this.userJson(this.botUser),
      content: typeof body.content === 'string' ? body.content : '',
      embeds: Array.isArray(body.embeds) ? body.embeds : [],
      components: Array.isArray(body.components) ? body.components : [],
      attachments,
      timestamp: nowIso(),
      edited_timestamp: null,
      flags: typeof body.flags === 'number' ? body.flags : 0,
      tts: false,
      mention_everyone: false,
      mentions: [],
      mention_roles: [],
      pinned: false,
      type: 0,
      ...extra,
    };
  }

  private applyEdit(message: FakeMessage, body: Record<string, unknown>, files: readonly RecordedFile[]): FakeMessage {
    const next: FakeMessage = { ...message, edited_timestamp: nowIso() };
    for (const key of ['content', 'embeds', 'components'] as const) if (key in body) next[key] = body[key] ?? (key === 'content' ? '' : []);
    if (files.length > 0 || 'attachments' in body) {
      const kept = Array.isArray(body.attachments) ? (message.attachments as { id: string }[]).filter((a) => (body.attachments as { id: string }[]).some((b) => b.id === a.id)) : [];
      const added = this.messageFrom(message.channel_id, {}, files).attachments as unknown[];
      next.attachments = [...kept, ...added];
    }
    // Editing the original clears the "loading" flag of a deferred response.
    next.flags = (Number(message.flags ?? 0) & ~128) | (typeof body.flags === 'number' ? body.flags : 0);
    return next;
  }

  private route(
    method: string,
    path: string,
    query: URLSearchParams,
    body: unknown,
    files: readonly RecordedFile[],
    res: ServerResponse,
    req: IncomingMessage,
  ): number {
    const rule = this.failRules.find((r) => r.remaining > 0 && r.method === method && r.path.test(path));
    if (rule) {
      rule.remaining -= 1;
      if (rule.status === 429) {
        return this.json(
          res,
          429,
          { message: 'You are being rate limited.', retry_after: rule.retryAfterS, global: false },
          { 'retry-after': String(rule.retryAfterS), 'x-ratelimit-scope': 'user', 'x-ratelimit-limit': '5', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset-after': String(rule.retryAfterS), 'x-ratelimit-bucket': 'fake-bucket' },
        );
      }
      return this.json(res, rule.status, { message: 'fake failure', code: 0 });
    }
    const auth = req.headers.authorization ?? '';
    const isWebhook = path.startsWith('/webhooks/') || path.startsWith('/interactions/');
    if (!isWebhook && auth !== `Bot ${this.token}`) return this.json(res, 401, { message: '401: Unauthorized', code: 0 });
    const b = (body ?? {}) as Record<string, unknown>;
    let m: RegExpMatchArray | null;

    if (method === 'GET' && path === '/gateway/bot') {
      return this.json(res, 200, {
        url: `ws://127.0.0.1:${this.port}/gateway`,
        shards: 1,
        session_start_limit: { total: 1000, remaining: 999, reset_after: 14_400_000, max_concurrency: 1 },
      });
    }
    if (method === 'GET' && path === '/users/@me') return this.json(res, 200, this.userJson(this.botUser));
    if (method === 'GET' && path === '/applications/@me') return this.json(res, 200, { id: this.applicationId, name: 'solescope', flags: 0, bot_public: true });

    // Application commands (global and guild).
    if ((m = path.match(/^\/applications\/(\d+)(?:\/guilds\/(\d+))?\/commands(?:\/(\d+))?$/))) {
      if (m[1] !== this.applicationId) return this.json(res, 404, { message: 'Unknown Application', code: 10002 });
      const key = m[2] ?? 'global';
      const list = this.commands.get(key) ?? [];
      this.commands.set(key, list);
      const cmdId = m[3];
      if (method === 'GET' && !cmdId) return this.json(res, 200, list);
      if (method === 'PUT' && !cmdId) {
        const next = (Array.isArray(body) ? body : []).map((c: Record<string, unknown>) => this.storeCommand(c, key, list.find((o) => o.name === c.name)?.id as string | undefined));
        this.commands.set(key, next);
        return this.json(res, 200, next);
      }
      if (method === 'POST' && !cmdId) {
        const existing = list.findIndex((o) => o.name === b.name);
        const stored = this.storeCommand(b, key, existing >= 0 ? (list[existing]?.id as string) : undefined);
        if (existing >= 0) list[existing] = stored;
        else list.push(stored);
        return this.json(res, existing >= 0 ? 200 : 201, stored);
      }
      const idx = list.findIndex((o) => o.id === cmdId);
      if (idx < 0) return this.json(res, 404, { message: 'Unknown application command', code: 10063 });
      if (method === 'GET') return this.json(res, 200, list[idx]);
      if (method === 'PATCH') {
        list[idx] = this.storeCommand({ ...list[idx], ...b }, key, cmdId);
        return this.json(res, 200, list[idx]);
      }
      if (method === 'DELETE') {
        list.splice(idx, 1);
        return this.json(res, 204, undefined);
      }
    }

    // Interaction callback: defer (5), reply (4), deferred update (6), update (7), autocomplete (8).
    if (method === 'POST' && (m = path.match(/^\/interactions\/(\d+)\/([^/]+)\/callback$/))) {
      const token = m[2] ?? '';
      if (this.interactionOriginals.has(token) && Number(b.type) !== 8) return this.json(res, 400, { message: 'Interaction has already been acknowledged.', code: 40060 });
      const data = (b.data ?? {}) as Record<string, unknown>;
      const type = Number(b.type);
      if (type === 4 || type === 5) {
        const flags = Number(data.flags ?? 0) | (type === 5 ? 128 : 0);
        this.interactionOriginals.set(token, this.messageFrom('0', data, files, { flags, interaction_token: token }));
      } else if (type === 6 || type === 7 || type === 8) {
        this.interactionOriginals.set(token, this.messageFrom('0', type === 7 ? data : {}, files, { flags: 0, interaction_token: token, callback_type: type }));
      }
      if (query.get('with_response') === 'true') {
        return this.json(res, 200, { interaction: { id: m[1], type: 2 }, resource: { type, message: this.interactionOriginals.get(token) } });
      }
      return this.json(res, 204, undefined);
    }

    // Webhook-based interaction responses.
    if ((m = path.match(/^\/webhooks\/(\d+)\/([^/]+)\/messages\/(@original|\d+)$/))) {
      const token = m[2] ?? '';
      const target = m[3] === '@original' ? this.interactionOriginals.get(token) : this.messages.get(m[3] ?? '');
      if (!target) return this.json(res, 404, { message: 'Unknown Message', code: 10008 });
      if (method === 'GET') return this.json(res, 200, target);
      if (method === 'PATCH') {
        const next = this.applyEdit(target, b, files);
        if (m[3] === '@original') this.interactionOriginals.set(token, next);
        else this.messages.set(next.id, next);
        return this.json(res, 200, next);
      }
      if (method === 'DELETE') {
        if (m[3] === '@original') this.interactionOriginals.set(token, { ...target, deleted: true });
        else this.messages.delete(target.id);
        return this.json(res, 204, undefined);
      }
    }
    if (method === 'POST' && (m = path.match(/^\/webhooks\/(\d+)\/([^/]+)$/))) {
      const token = m[2] ?? '';
      const msg = this.messageFrom('0', b, files, { webhook_id: m[1], interaction_token: token });
      this.messages.set(msg.id, msg);
      return this.json(res, 200, msg);
    }

    // Channel messages.
    if ((m = path.match(/^\/channels\/(\d+)\/messages$/)) && method === 'POST') {
      const msg = this.messageFrom(m[1] ?? '0', b, files, b.message_reference ? { message_reference: b.message_reference, type: 19 } : {});
      this.messages.set(msg.id, msg);
      return this.json(res, 200, msg);
    }
    if ((m = path.match(/^\/channels\/(\d+)\/messages\/(\d+)$/)) && method === 'GET') {
      const msg = this.messages.get(m[2] ?? '');
      return msg ? this.json(res, 200, msg) : this.json(res, 404, { message: 'Unknown Message', code: 10008 });
    }
    if (method === 'POST' && /^\/channels\/\d+\/typing$/.test(path)) return this.json(res, 204, undefined);

    return this.json(res, 404, { message: `fake-discord: no route for ${method} ${path}`, code: 0 });
  }

  private storeCommand(c: Record<string, unknown>, key: string, id?: string): Record<string, unknown> {
    return {
      ...c,
      id: id ?? snowflake(),
      application_id: this.applicationId,
      version: snowflake(),
      type: c.type ?? 1,
      ...(key !== 'global' ? { guild_id: key } : {}),
      default_member_permissions: c.default_member_permissions ?? null,
      nsfw: c.nsfw ?? false,
    };
  }
}

/** Start a fake Discord on a random loopback port. */
export async function startFakeDiscord(): Promise<FakeDiscord> {
  const fake = new FakeDiscord(createServer());
  await fake.listen();
  return fake;
}
