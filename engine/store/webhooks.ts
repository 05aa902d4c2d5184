/**
 * Inbound webhooks (resale monitors posting drops into a channel) and the events they received. The
 * store keeps only a hash of each webhook's token; the webhooks plugin makes and checks tokens.
 */
import { randomUUID } from 'node:crypto';
import { EngineError } from '../errors.ts';
import { clampLimit, mapDbError, requireText, textOrNull, type RepoContext } from './internal.ts';

/** A webhook to create. */
export interface CreateWebhookInput {
  /** Defaults to a random UUID. */
  readonly id?: string;
  /** Hash of the secret token (e.g. SHA-256 hex); never the token itself. */
  readonly tokenHash: string;
  readonly channelId: string;
  readonly guildId?: string;
  readonly name?: string;
  /** Routing rules (free-form JSON owned by the webhooks plugin). */
  readonly routes: unknown;
  readonly createdBy: string;
}

/** A stored webhook. */
export interface WebhookRow {
  readonly id: string;
  readonly tokenHash: string;
  readonly channelId: string;
  readonly guildId: string | null;
  readonly name: string | null;
  readonly routes: unknown;
  readonly createdBy: string;
  readonly createdAt: Date;
  readonly revokedAt: Date | null;
}

/** Webhooks: create/get/revoke/list. */
export class WebhooksRepository {
  constructor(private readonly ctx: RepoContext) {}

  /** Create a webhook; CONFLICT when the id is taken. */
  async create(input: CreateWebhookInput): Promise<WebhookRow> {
    const { codec } = this.ctx;
    const id = input.id === undefined ? randomUUID() : requireText(input.id, 'Webhook id', 100);
    try {
      const row = await this.ctx.db
        .insertInto('webhooks')
        .values({
          id,
          token_hash: requireText(input.tokenHash, 'Webhook tokenHash', 200),
          channel_id: requireText(input.channelId, 'Webhook channelId', 100),
          guild_id: textOrNull(input.guildId),
          name: textOrNull(input.name),
          routes: codec.json(input.routes ?? []),
          created_by: requireText(input.createdBy, 'Webhook createdBy', 200),
          created_at: codec.time(new Date()),
          revoked_at: null,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return this.toRow(row);
    } catch (err) {
      throw mapDbError(err, { conflict: `A webhook with id ${id} already exists.` });
    }
  }

  /** A webhook (revoked ones too; check `revokedAt`). */
  async get(id: string): Promise<WebhookRow | undefined> {
    const row = await this.ctx.db.selectFrom('webhooks').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? this.toRow(row) : undefined;
  }

  /** Revoke a webhook. True when it was active; false when already revoked; NOT_FOUND when unknown. */
  async revoke(id: string): Promise<boolean> {
    const result = await this.ctx.db
      .updateTable('webhooks')
      .set({ revoked_at: this.ctx.codec.time(new Date()) })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) > 0) return true;
    if (!(await this.get(id))) throw new EngineError('NOT_FOUND', `There is no webhook ${id}.`);
    return false;
  }

  /** Update routes/name/channel of a webhook. NOT_FOUND when unknown. */
  async update(id: string, patch: { routes?: unknown; name?: string; channelId?: string }): Promise<WebhookRow> {
    const set: { routes?: string; name?: string | null; channel_id?: string } = {};
    if (patch.routes !== undefined) set.routes = this.ctx.codec.json(patch.routes);
    if (patch.name !== undefined) set.name = textOrNull(patch.name);
    if (patch.channelId !== undefined) set.channel_id = requireText(patch.channelId, 'Webhook channelId', 100);
    if (Object.keys(set).length > 0) await this.ctx.db.updateTable('webhooks').set(set).where('id', '=', id).execute();
    const row = await this.get(id);
    if (!row) throw new EngineError('NOT_FOUND', `There is no webhook ${id}.`);
    return row;
  }

  /** Webhooks, oldest first; revoked ones only when asked. */
  async list(filter: { channelId?: string; guildId?: string; includeRevoked?: boolean } = {}): Promise<WebhookRow[]> {
    let q = this.ctx.db.selectFrom('webhooks').selectAll();
    if (filter.channelId !== undefined) q = q.where('channel_id', '=', filter.channelId);
    if (filter.guildId !== undefined) q = q.where('guild_id', '=', filter.guildId);
    if (!filter.includeRevoked) q = q.where('revoked_at', 'is', null);
    const rows = await q.orderBy('created_at').orderBy('id').execute();
    return rows.map((r) => this.toRow(r));
  }

  private toRow(row: {
    id: string;
    token_hash: string;
    channel_id: string;
    guild_id: string | null;
    name: string | null;
    routes: unknown;
    created_by: string;
    created_at: string | Date;
    revoked_at: string | Date | null;
  }): WebhookRow {
    const { codec } = this.ctx;
    return {
      id: row.id,
      tokenHash: row.token_hash,
      channelId: row.channel_id,
      guildId: row.guild_id,
      name: row.name,
      routes: codec.fromJson(row.routes),
      createdBy: row.created_by,
      createdAt: codec.fromTime(row.created_at),
      revokedAt: row.revoked_at === null ? null : codec.fromTime(row.revoked_at),
    };
  }
}

/** Status of a webhook event (free text beyond the known ones). */
export type WebhookEventStatus = 'received' | 'processed' | 'rejected' | 'failed' | (string & {});

/** An event to record. */
export interface AddWebhookEventInput {
  readonly webhookId: string;
  readonly payload: unknown;
  readonly parsed?: unknown;
  readonly status: WebhookEventStatus;
  readonly reason?: string;
  readonly result?: unknown;
  /** Defaults to now. */
  readonly receivedAt?: Date;
}

/** A stored webhook event. */
export interface WebhookEventRow {
  readonly id: number;
  readonly webhookId: string;
  readonly receivedAt: Date;
  readonly payload: unknown;
  readonly parsed: unknown;
  readonly status: string;
  readonly reason: string | null;
  readonly result: unknown;
}

/** Webhook events: add/update/get/list. */
export class WebhookEventsRepository {
  constructor(private readonly ctx: RepoContext) {}

  /** Record an event. NOT_FOUND when the webhook does not exist. */
  async add(input: AddWebhookEventInput): Promise<WebhookEventRow> {
    const { codec } = this.ctx;
    try {
      const row = await this.ctx.db
        .insertInto('webhook_events')
        .values({
          webhook_id: input.webhookId,
          received_at: codec.time(input.receivedAt ?? new Date()),
          payload: codec.json(input.payload),
          parsed: codec.jsonOrNull(input.parsed),
          status: requireText(input.status, 'Webhook event status', 50),
          reason: textOrNull(input.reason),
          result: codec.jsonOrNull(input.result),
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return this.toRow(row);
    } catch (err) {
      throw mapDbError(err, { missing: `There is no webhook ${input.webhookId}.` });
    }
  }

  /** Update what became of an event. NOT_FOUND when unknown. */
  async update(id: number, patch: { parsed?: unknown; status?: WebhookEventStatus; reason?: string | null; result?: unknown }): Promise<WebhookEventRow> {
    const { codec } = this.ctx;
    const set: { parsed?: string | null; status?: string; reason?: string | null; result?: string | null } = {};
    if (patch.parsed !== undefined) set.parsed = codec.jsonOrNull(patch.parsed);
    if (patch.status !== undefined) set.status = requireText(patch.status, 'Webhook event status', 50);
    if (patch.reason !== undefined) set.reason = patch.reason;
    if (patch.result !== undefined) set.result = codec.jsonOrNull(patch.result);
    if (Object.keys(set).length > 0) await this.ctx.db.updateTable('webhook_events').set(set).where('id', '=', id).execute();
    const row = await this.get(id);
    if (!row) throw new EngineError('NOT_FOUND', `There is no webhook event ${id}.`);
    return row;
  }

  /** One event, or undefined. */
  async get(id: number): Promise<WebhookEventRow | undefined> {
    if (!Number.isInteger(id)) return undefined;
    const row = await this.ctx.db.selectFrom('webhook_events').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? this.toRow(row) : undefined;
  }

  /** Events, newest first (default 100). */
  async list(filter: { webhookId?: string; status?: WebhookEventStatus; since?: Date; limit?: number } = {}): Promise<WebhookEventRow[]> {
    let q = this.ctx.db.selectFrom('webhook_events').selectAll();
    if (filter.webhookId !== undefined) q = q.where('webhook_id', '=', filter.webhookId);
    if (filter.status !== undefined) q = q.where('status', '=', filter.status);
    if (filter.since !== undefined) q = q.where('received_at', '>=', this.ctx.codec.time(filter.since));
    const rows = await q.orderBy('id', 'desc').limit(clampLimit(filter.limit, 100)).execute();
    return rows.map((r) => this.toRow(r));
  }

  private toRow(row: {
    id: number;
    webhook_id: string;
    received_at: string | Date;
    payload: unknown;
    parsed: unknown;
    status: string;
    reason: string | null;
    result: unknown;
  }): WebhookEventRow {
    const { codec } = this.ctx;
    return {
      id: Number(row.id),
      webhookId: row.webhook_id,
      receivedAt: codec.fromTime(row.received_at),
      payload: codec.fromJson(row.payload),
      parsed: codec.fromJson(row.parsed),
      status: row.status,
      reason: row.reason,
      result: codec.fromJson(row.result),
    };
  }
}
