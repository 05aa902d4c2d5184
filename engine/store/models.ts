/**
 * The model registry: trained model versions with their artifact, metrics and training provenance, and
 * aliases (`champion`, `candidate`, …) that point at one version per task. Alias changes are atomic and
 * recorded in a history, so `rollbackAlias` can restore the previous champion.
 */
import { EngineError } from '../errors.ts';
import type { Kysely } from 'kysely';
import { asBuffer, clampLimit, inTransaction, requireText, type RepoContext } from './internal.ts';
import type { Database } from './schema.ts';

/** An alias name. `champion` serves users; `candidate` awaits promotion. Others are allowed. */
export type ModelAlias = 'champion' | 'candidate' | (string & {});

/** Lifecycle status of a model version (free text beyond the known ones). */
export type ModelStatus = 'candidate' | 'promoted' | 'rejected' | 'archived' | 'failed' | (string & {});

/** A model version to register. */
export interface CreateModelInput {
  /** `brand`, `hype`, or another task (`gan`, …). */
  readonly task: string;
  /** The serialised model (e.g. a zip/JSON bundle of a TF.js model). */
  readonly artifact: Uint8Array;
  readonly metrics: Record<string, unknown>;
  readonly params: Record<string, unknown>;
  /** What it was trained on: dataset names, counts per label, split seed, image hashes digest… */
  readonly dataSnapshot: Record<string, unknown>;
  /** Training curves chart. */
  readonly curvesPng?: Uint8Array;
  readonly createdBy: string;
  /** Default `candidate`. */
  readonly status?: ModelStatus;
}

/** A model version without its blobs (what lists return). */
export interface ModelSummary {
  readonly id: number;
  readonly task: string;
  readonly artifactSize: number;
  readonly metrics: Record<string, unknown>;
  readonly params: Record<string, unknown>;
  readonly dataSnapshot: Record<string, unknown>;
  readonly hasCurves: boolean;
  readonly createdBy: string;
  readonly createdAt: Date;
  readonly status: string;
  /** Aliases currently pointing at this version. */
  readonly aliases: readonly string[];
}

/** A model version with its artifact and curves. */
export interface ModelRecord extends ModelSummary {
  readonly artifact: Buffer;
  readonly curvesPng: Buffer | null;
}

/** One alias change. */
export interface AliasHistoryRow {
  readonly id: number;
  readonly task: string;
  readonly alias: string;
  readonly modelId: number;
  readonly previousModelId: number | null;
  /** `set` or `rollback`. */
  readonly action: string;
  readonly by: string | null;
  readonly createdAt: Date;
}

const ALIAS_RE = /^[a-z][a-z0-9_-]{0,31}$/;

function checkAlias(alias: string): string {
  if (!ALIAS_RE.test(alias)) throw new EngineError('BAD_INPUT', `Alias "${alias}" must be lowercase letters, digits, _ or - (max 32).`);
  return alias;
}

/** Models: create/get/list/setStatus/delete and aliases with history. */
export class ModelsRepository {
  constructor(private readonly ctx: RepoContext) {}

  /** Register a model version; returns it without blobs. */
  async create(input: CreateModelInput): Promise<ModelSummary> {
    const task = requireText(input.task, 'Model task', 50);
    if (!(input.artifact instanceof Uint8Array) || input.artifact.byteLength === 0) {
      throw new EngineError('BAD_INPUT', 'A model artifact is required.');
    }
    const { codec } = this.ctx;
    const artifact = asBuffer(input.artifact);
    const row = await this.ctx.db
      .insertInto('models')
      .values({
        task,
        artifact,
        artifact_size: artifact.byteLength,
        metrics: codec.json(input.metrics ?? {}),
        params: codec.json(input.params ?? {}),
        data_snapshot: codec.json(input.dataSnapshot ?? {}),
        curves_png: input.curvesPng ? asBuffer(input.curvesPng) : null,
        created_by: requireText(input.createdBy, 'Model author (createdBy)', 200),
        created_at: codec.time(new Date()),
        status: input.status ?? 'candidate',
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    return (await this.summary(Number(row.id))) as ModelSummary;
  }

  /** A model version with artifact and curves, or undefined. */
  async get(id: number): Promise<ModelRecord | undefined> {
    if (!Number.isInteger(id)) return undefined;
    const row = await this.ctx.db.selectFrom('models').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) return undefined;
    const aliases = await this.aliasesOf([Number(row.id)]);
    return {
      ...this.toSummary(row, aliases.get(Number(row.id)) ?? []),
      artifact: Buffer.from(row.artifact),
      curvesPng: row.curves_png ? Buffer.from(row.curves_png) : null,
    };
  }

  /** A model version without blobs, or undefined. */
  async summary(id: number): Promise<ModelSummary | undefined> {
    if (!Number.isInteger(id)) return undefined;
    const row = await this.summaryQuery().where('id', '=', id).executeTakeFirst();
    if (!row) return undefined;
    const aliases = await this.aliasesOf([Number(row.id)]);
    return this.toSummary(row, aliases.get(Number(row.id)) ?? []);
  }

  /** Model versions, newest first, optionally of one task and/or status. Blobs are not read. */
  async list(task?: string, options: { status?: ModelStatus; limit?: number } = {}): Promise<ModelSummary[]> {
    let q = this.summaryQuery();
    if (task !== undefined) q = q.where('task', '=', task);
    if (options.status !== undefined) q = q.where('status', '=', options.status);
    const rows = await q.orderBy('id', 'desc').limit(clampLimit(options.limit, 100)).execute();
    const aliases = await this.aliasesOf(rows.map((r) => Number(r.id)));
    return rows.map((r) => this.toSummary(r, aliases.get(Number(r.id)) ?? []));
  }

  /** Change a version's status. NOT_FOUND when it does not exist. */
  async setStatus(id: number, status: ModelStatus): Promise<void> {
    const result = await this.ctx.db.updateTable('models').set({ status: requireText(status, 'Model status', 50) }).where('id', '=', id).executeTakeFirst();
    if (Number(result.numUpdatedRows) === 0) throw new EngineError('NOT_FOUND', `There is no model ${id}.`);
  }

  /** Delete a version. CONFLICT while an alias points at it. True when it existed. */
  async delete(id: number): Promise<boolean> {
    return inTransaction(this.ctx.db, async (trx) => {
      const alias = await trx.selectFrom('model_aliases').select(['task', 'alias']).where('model_id', '=', id).executeTakeFirst();
      if (alias) throw new EngineError('CONFLICT', `Model ${id} is the ${alias.task} ${alias.alias}; point the alias elsewhere first.`);
      const result = await trx.deleteFrom('models').where('id', '=', id).executeTakeFirst();
      return Number(result.numDeletedRows) > 0;
    });
  }

  /**
   * Point `alias` of `task` at model `id`, atomically, recording the change. NOT_FOUND when the model
   * does not exist, BAD_INPUT when it belongs to another task.
   *
   * With `options.expected` it is a compare-and-set: the alias moves only if it still points at
   * `expected` (`null` = only if the alias does not exist yet); otherwise nothing changes and the result
   * is false. Without it the alias is always set (true). Concurrent callers are serialised (row lock on
   * Postgres, the single writer on SQLite), so the history stays a proper chain.
   */
  async setAlias(task: string, alias: ModelAlias, id: number, by?: string, options: { expected?: number | null } = {}): Promise<boolean> {
    checkAlias(alias);
    const { codec, dialect } = this.ctx;
    return inTransaction(this.ctx.db, async (trx) => {
      const model = await trx.selectFrom('models').select(['id', 'task']).where('id', '=', id).executeTakeFirst();
      if (!model) throw new EngineError('NOT_FOUND', `There is no model ${id}.`);
      if (model.task !== task) throw new EngineError('BAD_INPUT', `Model ${id} is a ${model.task} model, not ${task}.`);
      const now = codec.time(new Date());
      let previous: number | null;
      if (options.expected !== undefined) {
        previous = options.expected;
        if (previous === id) {
          const still = await this.currentAlias(trx, task, alias, dialect === 'postgres');
          return still === id;
        }
        if (previous === null) {
          const inserted = await trx
            .insertInto('model_aliases')
            .values({ task, alias, model_id: id, updated_by: by ?? null, updated_at: now })
            .onConflict((oc) => oc.columns(['task', 'alias']).doNothing())
            .returning('model_id')
            .executeTakeFirst();
          if (!inserted) return false;
        } else {
          // The conditional UPDATE is the lock: a racing transaction blocks on the row, re-checks, and
          // updates nothing.
          const updated = await trx
            .updateTable('model_aliases')
            .set({ model_id: id, updated_by: by ?? null, updated_at: now })
            .where('task', '=', task)
            .where('alias', '=', alias)
            .where('model_id', '=', previous)
            .executeTakeFirst();
          if (Number(updated.numUpdatedRows) === 0) return false;
        }
      } else {
        previous = (await this.currentAlias(trx, task, alias, dialect === 'postgres')) ?? null;
        if (previous === id) return true;
        await trx
          .insertInto('model_aliases')
          .values({ task, alias, model_id: id, updated_by: by ?? null, updated_at: now })
          .onConflict((oc) => oc.columns(['task', 'alias']).doUpdateSet({ model_id: id, updated_by: by ?? null, updated_at: now }))
          .execute();
      }
      await trx
        .insertInto('model_alias_history')
        .values({ task, alias, model_id: id, previous_model_id: previous, action: 'set', by: by ?? null, created_at: now })
        .execute();
      return true;
    });
  }

  /** The alias's model inside a transaction; `lock` takes a row lock (Postgres only; SQLite has one writer). */
  private async currentAlias(trx: Kysely<Database>, task: string, alias: string, lock: boolean): Promise<number | undefined> {
    let q = trx.selectFrom('model_aliases').select('model_id').where('task', '=', task).where('alias', '=', alias);
    if (lock) q = q.forUpdate();
    const row = await q.executeTakeFirst();
    return row ? Number(row.model_id) : undefined;
  }

  /** The model id behind an alias, or undefined. */
  async getAlias(task: string, alias: ModelAlias): Promise<number | undefined> {
    const row = await this.ctx.db
      .selectFrom('model_aliases')
      .select('model_id')
      .where('task', '=', task)
      .where('alias', '=', alias)
      .executeTakeFirst();
    return row ? Number(row.model_id) : undefined;
  }

  /** All aliases of a task: alias → model id. */
  async aliases(task: string): Promise<Record<string, number>> {
    const rows = await this.ctx.db.selectFrom('model_aliases').select(['alias', 'model_id']).where('task', '=', task).execute();
    return Object.fromEntries(rows.map((r) => [r.alias, Number(r.model_id)]));
  }

  /** Alias changes, newest first. */
  async aliasHistory(task: string, alias: ModelAlias, limit = 50): Promise<AliasHistoryRow[]> {
    const rows = await this.ctx.db
      .selectFrom('model_alias_history')
      .selectAll()
      .where('task', '=', task)
      .where('alias', '=', alias)
      .orderBy('id', 'desc')
      .limit(clampLimit(limit, 50))
      .execute();
    return rows.map((r) => ({
      id: Number(r.id),
      task: r.task,
      alias: r.alias,
      modelId: Number(r.model_id),
      previousModelId: r.previous_model_id === null ? null : Number(r.previous_model_id),
      action: r.action,
      by: r.by,
      createdAt: this.ctx.codec.fromTime(r.created_at),
    }));
  }

  /**
   * Point the alias back at the model it pointed at before its current one, atomically. Repeated
   * rollbacks walk further back (m1 → m2 → m3, rollback → m2, rollback → m1). Returns the model id now
   * behind the alias; NOT_FOUND when there is no earlier model (or it was deleted).
   */
  async rollbackAlias(task: string, alias: ModelAlias, by?: string): Promise<number> {
    checkAlias(alias);
    const { codec, dialect } = this.ctx;
    return inTransaction(this.ctx.db, async (trx) => {
      await this.currentAlias(trx, task, alias, dialect === 'postgres');
      const latest = await trx
        .selectFrom('model_alias_history')
        .selectAll()
        .where('task', '=', task)
        .where('alias', '=', alias)
        .orderBy('id', 'desc')
        .limit(1)
        .executeTakeFirst();
      const target = latest?.previous_model_id ?? null;
      if (!latest || target === null) throw new EngineError('NOT_FOUND', `The ${task} ${alias} has no earlier model to roll back to.`);
      const exists = await trx.selectFrom('models').select('id').where('id', '=', target).executeTakeFirst();
      if (!exists) throw new EngineError('NOT_FOUND', `Model ${target}, the previous ${task} ${alias}, no longer exists.`);
      // The entry that originally installed `target` tells what came before it, so the next rollback
      // continues backwards instead of bouncing between two versions.
      const origin = await trx
        .selectFrom('model_alias_history')
        .select('previous_model_id')
        .where('task', '=', task)
        .where('alias', '=', alias)
        .where('model_id', '=', target)
        .where('id', '<', latest.id)
        .orderBy('id', 'desc')
        .limit(1)
        .executeTakeFirst();
      const now = codec.time(new Date());
      await trx
        .updateTable('model_aliases')
        .set({ model_id: target, updated_by: by ?? null, updated_at: now })
        .where('task', '=', task)
        .where('alias', '=', alias)
        .execute();
      await trx
        .insertInto('model_alias_history')
        .values({
          task,
          alias,
          model_id: target,
          previous_model_id: origin?.previous_model_id ?? null,
          action: 'rollback',
          by: by ?? null,
          created_at: now,
        })
        .execute();
      return Number(target);
    });
  }

  private summaryQuery() {
    return this.ctx.db
      .selectFrom('models')
      .select(['id', 'task', 'artifact_size', 'metrics', 'params', 'data_snapshot', 'created_by', 'created_at', 'status'])
      .select((eb) => eb('curves_png', 'is not', null).as('has_curves'));
  }

  private async aliasesOf(ids: readonly number[]): Promise<Map<number, string[]>> {
    const out = new Map<number, string[]>();
    if (ids.length === 0) return out;
    const rows = await this.ctx.db.selectFrom('model_aliases').select(['alias', 'model_id']).where('model_id', 'in', [...ids]).execute();
    for (const r of rows) {
      const id = Number(r.model_id);
      out.set(id, [...(out.get(id) ?? []), r.alias].sort());
    }
    return out;
  }

  private toSummary(
    row: {
      id: number;
      task: string;
      artifact_size: number;
      metrics: unknown;
      params: unknown;
      data_snapshot: unknown;
      created_by: string;
      created_at: string | Date;
      status: string;
      has_curves?: unknown;
      curves_png?: Buffer | null;
    },
    aliases: readonly string[],
  ): ModelSummary {
    const { codec } = this.ctx;
    return {
      id: Number(row.id),
      task: row.task,
      artifactSize: Number(row.artifact_size),
      metrics: (codec.fromJson(row.metrics) ?? {}) as Record<string, unknown>,
      params: (codec.fromJson(row.params) ?? {}) as Record<string, unknown>,
      dataSnapshot: (codec.fromJson(row.data_snapshot) ?? {}) as Record<string, unknown>,
      hasCurves: 'curves_png' in row ? row.curves_png !== null && row.curves_png !== undefined : codec.fromBool(row.has_curves),
      createdBy: row.created_by,
      createdAt: codec.fromTime(row.created_at),
      status: row.status,
      aliases,
    };
  }
}
