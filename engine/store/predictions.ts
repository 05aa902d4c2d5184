/**
 * The predictions repository: what a model answered for an image, kept for monitoring (drift, votes
 * against predictions) and for feedback loops.
 */
import { EngineError } from '../errors.ts';
import { clampLimit, requireText, textOrNull, type RepoContext } from './internal.ts';

/** A prediction to record. */
export interface AddPredictionInput {
  readonly imageSha: string;
  /** `brand`, `hype`, … */
  readonly task: string;
  /** The predicted label. */
  readonly label: string;
  /** Probability of `label` (for hype: P(hyped) when label is `hyped`), in [0, 1]. */
  readonly probability: number;
  /** Any model identifier: a registry id (`"12"`) or a bundled default (`"default:brand@1"`). */
  readonly modelId: string | number;
  readonly guildId?: string;
  readonly userId?: string;
}

/** A stored prediction. */
export interface PredictionRow {
  readonly id: number;
  readonly imageSha: string;
  readonly task: string;
  readonly label: string;
  readonly probability: number;
  readonly modelId: string;
  readonly guildId: string | null;
  readonly userId: string | null;
  readonly createdAt: Date;
}

/** Filter for {@link PredictionsRepository.list}. */
export interface PredictionFilter {
  readonly imageSha?: string;
  readonly task?: string;
  readonly modelId?: string | number;
  readonly guildId?: string;
  readonly userId?: string;
  readonly since?: Date;
  /** Default 100. */
  readonly limit?: number;
}

/** Predictions: add and list (newest first). */
export class PredictionsRepository {
  constructor(private readonly ctx: RepoContext) {}

  /** Record a prediction. BAD_INPUT for a probability outside [0, 1]. */
  async add(input: AddPredictionInput): Promise<PredictionRow> {
    if (typeof input.probability !== 'number' || !(input.probability >= 0 && input.probability <= 1)) {
      throw new EngineError('BAD_INPUT', `Prediction probability must be within [0, 1] (got ${String(input.probability)}).`);
    }
    const row = await this.ctx.db
      .insertInto('predictions')
      .values({
        image_sha: requireText(input.imageSha, 'Prediction imageSha', 128),
        task: requireText(input.task, 'Prediction task', 50),
        label: requireText(input.label, 'Prediction label', 100),
        probability: input.probability,
        model_id: requireText(String(input.modelId), 'Prediction modelId', 200),
        guild_id: textOrNull(input.guildId),
        user_id: textOrNull(input.userId),
        created_at: this.ctx.codec.time(new Date()),
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return this.toRow(row);
  }

  /** Predictions matching `filter`, newest first. */
  async list(filter: PredictionFilter = {}): Promise<PredictionRow[]> {
    let q = this.ctx.db.selectFrom('predictions').selectAll();
    if (filter.imageSha !== undefined) q = q.where('image_sha', '=', filter.imageSha);
    if (filter.task !== undefined) q = q.where('task', '=', filter.task);
    if (filter.modelId !== undefined) q = q.where('model_id', '=', String(filter.modelId));
    if (filter.guildId !== undefined) q = q.where('guild_id', '=', filter.guildId);
    if (filter.userId !== undefined) q = q.where('user_id', '=', filter.userId);
    if (filter.since !== undefined) q = q.where('created_at', '>=', this.ctx.codec.time(filter.since));
    const rows = await q.orderBy('id', 'desc').limit(clampLimit(filter.limit, 100)).execute();
    return rows.map((r) => this.toRow(r));
  }

  private toRow(row: {
    id: number;
    image_sha: string;
    task: string;
    label: string;
    probability: number;
    model_id: string;
    guild_id: string | null;
    user_id: string | null;
    created_at: string | Date;
  }): PredictionRow {
    return {
      id: Number(row.id),
      imageSha: row.image_sha,
      task: row.task,
      label: row.label,
      probability: Number(row.probability),
      modelId: row.model_id,
      guildId: row.guild_id,
      userId: row.user_id,
      createdAt: this.ctx.codec.fromTime(row.created_at),
    };
  }
}
