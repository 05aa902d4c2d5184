/**
 * The datasets repository: named sets of images (an import, a curated split, a guild's uploads).
 * Membership is many-to-many: one picture can sit in several datasets without being stored twice.
 */
import { EngineError } from '../errors.ts';
import { chunks, inTransaction, mapDbError, requireText, textOrNull, type RepoContext } from './internal.ts';

/** A dataset and how many images it holds. */
export interface DatasetRow {
  readonly id: number;
  readonly name: string;
  readonly description: string | null;
  readonly meta: Record<string, unknown> | null;
  readonly createdBy: string | null;
  readonly createdAt: Date;
  readonly imageCount: number;
}

/** Options of {@link DatasetsRepository.create}. */
export interface CreateDatasetInput {
  readonly name: string;
  readonly description?: string;
  readonly meta?: Record<string, unknown>;
  readonly createdBy?: string;
}

// Names are shown in Discord and CLI output: no control characters.
const NAME_RE = /^[^\p{Cc}]{1,100}$/u;

function checkName(name: unknown): string {
  const text = requireText(name, 'Dataset name', 100);
  if (!NAME_RE.test(text)) {
    throw new EngineError('BAD_INPUT', 'Dataset name must not contain control characters.');
  }
  return text;
}

/** Datasets: create/ensure/get/list/delete and membership. */
export class DatasetsRepository {
  constructor(private readonly ctx: RepoContext) {}

  /** Create a dataset; CONFLICT when the name is taken. */
  async create(input: CreateDatasetInput): Promise<DatasetRow> {
    const name = checkName(input.name);
    const { codec } = this.ctx;
    try {
      const row = await this.ctx.db
        .insertInto('datasets')
        .values({
          name,
          description: textOrNull(input.description),
          meta: codec.jsonOrNull(input.meta),
          created_by: textOrNull(input.createdBy),
          created_at: codec.time(new Date()),
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      return (await this.get(Number(row.id))) as DatasetRow;
    } catch (err) {
      throw mapDbError(err, { conflict: `A dataset named "${name}" already exists.` });
    }
  }

  /** The dataset of that name, created first when missing. */
  async ensure(input: CreateDatasetInput): Promise<DatasetRow> {
    const existing = await this.get(checkName(input.name));
    if (existing) return existing;
    try {
      return await this.create(input);
    } catch (err) {
      // Lost a race with another importer: the row exists now.
      const row = await this.get(input.name.trim());
      if (row) return row;
      throw err;
    }
  }

  /** A dataset by name or numeric id. */
  async get(nameOrId: string | number): Promise<DatasetRow | undefined> {
    let q = this.query();
    q = typeof nameOrId === 'number' ? q.where('d.id', '=', nameOrId) : q.where('d.name', '=', nameOrId.trim());
    const row = await q.executeTakeFirst();
    return row ? this.toRow(row) : undefined;
  }

  /** All datasets, by name. */
  async list(): Promise<DatasetRow[]> {
    const rows = await this.query().orderBy('d.name').execute();
    return rows.map((r) => this.toRow(r));
  }

  /**
   * Add stored images to a dataset (already-present ones are skipped). Returns how many were added.
   * NOT_FOUND when the dataset or any of the images does not exist (nothing is added then).
   */
  async addImages(dataset: string | number, shas: readonly string[]): Promise<number> {
    const ds = await this.require(dataset);
    const unique = [...new Set(shas)];
    const { codec } = this.ctx;
    try {
      return await inTransaction(this.ctx.db, async (trx) => {
        let added = 0;
        const now = codec.time(new Date());
        for (const part of chunks(unique, 300)) {
          const rows = await trx
            .insertInto('dataset_images')
            .values(part.map((sha) => ({ dataset_id: ds.id, image_sha: sha, added_at: now })))
            .onConflict((oc) => oc.columns(['dataset_id', 'image_sha']).doNothing())
            .returning('image_sha')
            .execute();
          added += rows.length;
        }
        return added;
      });
    } catch (err) {
      throw mapDbError(err, { missing: `Some of those images are not stored, so they cannot join dataset "${ds.name}".` });
    }
  }

  /** Remove images from a dataset (the images stay stored). Returns how many were removed. */
  async removeImages(dataset: string | number, shas: readonly string[]): Promise<number> {
    const ds = await this.require(dataset);
    let removed = 0;
    for (const part of chunks([...new Set(shas)], 500)) {
      const result = await this.ctx.db
        .deleteFrom('dataset_images')
        .where('dataset_id', '=', ds.id)
        .where('image_sha', 'in', part)
        .executeTakeFirst();
      removed += Number(result.numDeletedRows);
    }
    return removed;
  }

  /** Delete a dataset (its images stay stored). True when it existed. */
  async delete(dataset: string | number): Promise<boolean> {
    const ds = await this.get(dataset);
    if (!ds) return false;
    await this.ctx.db.deleteFrom('datasets').where('id', '=', ds.id).execute();
    return true;
  }

  private async require(dataset: string | number): Promise<DatasetRow> {
    const ds = await this.get(dataset);
    if (!ds) throw new EngineError('NOT_FOUND', `There is no dataset "${String(dataset)}".`);
    return ds;
  }

  private query() {
    return this.ctx.db
      .selectFrom('datasets as d')
      .selectAll('d')
      .select((eb) =>
        eb
          .selectFrom('dataset_images as di')
          .select((eb2) => eb2.fn.countAll().as('n'))
          .whereRef('di.dataset_id', '=', 'd.id')
          .as('image_count'),
      );
  }

  private toRow(row: {
    id: number;
    name: string;
    description: string | null;
    meta: unknown;
    created_by: string | null;
    created_at: string | Date;
    image_count: string | number | bigint | null;
  }): DatasetRow {
    const { codec } = this.ctx;
    return {
      id: Number(row.id),
      name: row.name,
      description: row.description,
      meta: codec.fromJson(row.meta) as Record<string, unknown> | null,
      createdBy: row.created_by,
      createdAt: codec.fromTime(row.created_at),
      imageCount: Number(row.image_count ?? 0),
    };
  }
}
