/**
 * The labels repository: every brand/hype label ever given, plus the one label per image and task that
 * counts (kept in `resolved_labels` so image filters can use an index).
 *
 * **Resolution rule** (applied whenever a label of an image changes):
 * 1. If the image has labels with origin `import` for the task, the most recent import label wins
 *    (curated data beats opinion; a re-import corrects an earlier import).
 * 2. Otherwise the value with the most labels (votes, monitor labels, …) wins; a tie goes to the value
 *    whose latest label is the most recent.
 * 3. No labels → the image is unlabelled for that task.
 */
import { EngineError } from '../errors.ts';
import { inTransaction, mapDbError, requireText, textOrNull, type RepoContext } from './internal.ts';
import type { Database } from './schema.ts';
import type { Kysely } from 'kysely';

/** Tasks that have labels. */
export type LabelTask = 'brand' | 'hype';

/** The allowed values of each task. */
export const LABEL_VALUES: { readonly brand: readonly string[]; readonly hype: readonly string[] } = {
  brand: ['jordan', 'nike', 'adidas', 'other'],
  hype: ['hyped', 'not_hyped'],
};

/** Where a label came from; free text beyond the known ones (e.g. `import`, `vote`, `monitor`, `model`). */
export type LabelOrigin = 'import' | 'vote' | 'monitor' | 'model' | (string & {});

/** A label to record. */
export interface AddLabelInput {
  readonly imageSha: string;
  readonly task: LabelTask;
  /** Normalised: lower-cased, spaces/dashes to `_` (`Not Hyped` → `not_hyped`). Must be in {@link LABEL_VALUES}. */
  readonly value: string;
  /** Who labelled: a user id, `import:<dataset>`, `monitor:<webhook>`. One label per (image, task, by). */
  readonly by: string;
  readonly origin: LabelOrigin;
  readonly guildId?: string;
}

/** A stored label. */
export interface LabelRow {
  readonly id: number;
  readonly imageSha: string;
  readonly task: LabelTask;
  readonly value: string;
  readonly by: string;
  readonly origin: string;
  readonly guildId: string | null;
  readonly createdAt: Date;
}

/** Normalise a user-typed label value; returns undefined when it is not a valid value of `task`. */
export function normaliseLabel(task: LabelTask, value: string): string | undefined {
  const v = value.trim().toLowerCase().replace(/[\s-]+/g, '_');
  return LABEL_VALUES[task].includes(v) ? v : undefined;
}

function checkTask(task: unknown): LabelTask {
  if (task !== 'brand' && task !== 'hype') throw new EngineError('BAD_INPUT', `Label task must be "brand" or "hype" (got "${String(task)}").`);
  return task;
}

/** Labels: add (one per voter, re-voting replaces), remove, list, resolved. */
export class LabelsRepository {
  constructor(private readonly ctx: RepoContext) {}

  /**
   * Record a label. The same `by` labelling the same image and task again replaces the earlier label.
   * Throws BAD_INPUT for an unknown task or value, NOT_FOUND when the image is not stored.
   */
  async add(input: AddLabelInput): Promise<LabelRow> {
    const task = checkTask(input.task);
    const value = normaliseLabel(task, String(input.value ?? ''));
    if (!value) {
      throw new EngineError('BAD_INPUT', `"${String(input.value)}" is not a ${task} label; use one of: ${LABEL_VALUES[task].join(', ')}.`);
    }
    const by = requireText(input.by, 'Label author (by)', 200);
    const origin = requireText(input.origin, 'Label origin', 50);
    const { codec } = this.ctx;
    try {
      return await inTransaction(this.ctx.db, async (trx) => {
        const now = codec.time(new Date());
        const row = await trx
          .insertInto('labels')
          .values({
            image_sha: input.imageSha,
            task,
            value,
            by,
            origin,
            guild_id: textOrNull(input.guildId),
            created_at: now,
          })
          .onConflict((oc) =>
            oc.columns(['image_sha', 'task', 'by']).doUpdateSet({ value, origin, guild_id: textOrNull(input.guildId), created_at: now }),
          )
          .returningAll()
          .executeTakeFirstOrThrow();
        await this.resolveInto(trx, input.imageSha, task);
        return this.toRow(row);
      });
    } catch (err) {
      throw mapDbError(err, { missing: `No stored image ${input.imageSha.slice(0, 12)}… to label.` });
    }
  }

  /** Remove the label `by` gave. True when there was one. */
  async remove(imageSha: string, task: LabelTask, by: string): Promise<boolean> {
    checkTask(task);
    return inTransaction(this.ctx.db, async (trx) => {
      const result = await trx
        .deleteFrom('labels')
        .where('image_sha', '=', imageSha)
        .where('task', '=', task)
        .where('by', '=', by)
        .executeTakeFirst();
      await this.resolveInto(trx, imageSha, task);
      return Number(result.numDeletedRows) > 0;
    });
  }

  /** All labels of an image (optionally of one task), oldest first. */
  async list(imageSha: string, task?: LabelTask): Promise<LabelRow[]> {
    let q = this.ctx.db.selectFrom('labels').selectAll().where('image_sha', '=', imageSha);
    if (task !== undefined) q = q.where('task', '=', checkTask(task));
    const rows = await q.orderBy('created_at', 'asc').orderBy('id', 'asc').execute();
    return rows.map((r) => this.toRow(r));
  }

  /** The resolved labels of an image (null = unlabelled). */
  async resolved(imageSha: string): Promise<{ brand: string | null; hype: string | null }> {
    const rows = await this.ctx.db.selectFrom('resolved_labels').select(['task', 'value']).where('image_sha', '=', imageSha).execute();
    const byTask = new Map(rows.map((r) => [r.task, r.value]));
    return { brand: byTask.get('brand') ?? null, hype: byTask.get('hype') ?? null };
  }

  /** Recompute the resolved label of (image, task) inside `trx` (see the module doc for the rule). */
  private async resolveInto(trx: Kysely<Database>, imageSha: string, task: LabelTask): Promise<void> {
    const { codec } = this.ctx;
    const labels = (
      await trx
        .selectFrom('labels')
        .select(['id', 'value', 'origin', 'created_at'])
        .where('image_sha', '=', imageSha)
        .where('task', '=', task)
        .execute()
    ).map((l) => ({ id: Number(l.id), value: l.value, origin: l.origin, at: codec.fromTime(l.created_at).getTime() }));
    const newest = (a: { id: number; at: number }, b: { id: number; at: number }) => b.at - a.at || b.id - a.id;
    let winner: string | undefined;
    const imports = labels.filter((l) => l.origin === 'import').sort(newest);
    if (imports.length > 0) winner = imports[0]?.value;
    else if (labels.length > 0) {
      const tally = new Map<string, { n: number; latest: { id: number; at: number } }>();
      for (const l of labels) {
        const t = tally.get(l.value);
        if (!t) tally.set(l.value, { n: 1, latest: l });
        else {
          t.n += 1;
          if (newest(l, t.latest) < 0) t.latest = l;
        }
      }
      winner = [...tally.entries()].sort((a, b) => b[1].n - a[1].n || newest(a[1].latest, b[1].latest))[0]?.[0];
    }
    if (winner === undefined) {
      await trx.deleteFrom('resolved_labels').where('image_sha', '=', imageSha).where('task', '=', task).execute();
      return;
    }
    await trx
      .insertInto('resolved_labels')
      .values({ image_sha: imageSha, task, value: winner })
      .onConflict((oc) => oc.columns(['image_sha', 'task']).doUpdateSet({ value: winner }))
      .execute();
  }

  private toRow(row: {
    id: number;
    image_sha: string;
    task: string;
    value: string;
    by: string;
    origin: string;
    guild_id: string | null;
    created_at: string | Date;
  }): LabelRow {
    return {
      id: Number(row.id),
      imageSha: row.image_sha,
      task: row.task as LabelTask,
      value: row.value,
      by: row.by,
      origin: row.origin,
      guildId: row.guild_id,
      createdAt: this.ctx.codec.fromTime(row.created_at),
    };
  }
}
