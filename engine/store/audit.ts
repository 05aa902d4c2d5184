/**
 * The audit log: who did what to which thing (promotions, imports, webhook changes, moderation).
 */
import { clampLimit, requireText, textOrNull, type RepoContext } from './internal.ts';

/** An audit entry to record. */
export interface AddAuditInput {
  /** Caller id (`discord:123`, `cli:alice`, `job:train-7`). */
  readonly actor: string;
  /** Dotted verb: `model.promote`, `dataset.import`, `webhook.revoke`. */
  readonly action: string;
  readonly target?: string;
  /** Machine-readable context. Never put secrets here. */
  readonly details?: Record<string, unknown>;
}

/** A stored audit entry. */
export interface AuditRow {
  readonly id: number;
  readonly actor: string;
  readonly action: string;
  readonly target: string | null;
  readonly details: Record<string, unknown> | null;
  readonly createdAt: Date;
}

/** Audit: add and list (newest first). */
export class AuditRepository {
  constructor(private readonly ctx: RepoContext) {}

  /** Append an entry. */
  async add(input: AddAuditInput): Promise<AuditRow> {
    const { codec } = this.ctx;
    const row = await this.ctx.db
      .insertInto('audit')
      .values({
        actor: requireText(input.actor, 'Audit actor', 200),
        action: requireText(input.action, 'Audit action', 100),
        target: textOrNull(input.target),
        details: codec.jsonOrNull(input.details),
        created_at: codec.time(new Date()),
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return this.toRow(row);
  }

  /** Entries matching the filter, newest first (default 100). */
  async list(filter: { actor?: string; action?: string; target?: string; since?: Date; limit?: number } = {}): Promise<AuditRow[]> {
    let q = this.ctx.db.selectFrom('audit').selectAll();
    if (filter.actor !== undefined) q = q.where('actor', '=', filter.actor);
    if (filter.action !== undefined) q = q.where('action', '=', filter.action);
    if (filter.target !== undefined) q = q.where('target', '=', filter.target);
    if (filter.since !== undefined) q = q.where('created_at', '>=', this.ctx.codec.time(filter.since));
    const rows = await q.orderBy('id', 'desc').limit(clampLimit(filter.limit, 100)).execute();
    return rows.map((r) => this.toRow(r));
  }

  private toRow(row: { id: number; actor: string; action: string; target: string | null; details: unknown; created_at: string | Date }): AuditRow {
    return {
      id: Number(row.id),
      actor: row.actor,
      action: row.action,
      target: row.target,
      details: this.ctx.codec.fromJson(row.details) as Record<string, unknown> | null,
      createdAt: this.ctx.codec.fromTime(row.created_at),
    };
  }
}
