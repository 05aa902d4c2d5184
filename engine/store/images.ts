/**
 * The images repository: content-addressed pictures with their resolved labels.
 */
import { sql, type Expression, type ExpressionBuilder, type SqlBool, type Selectable } from 'kysely';
import { EngineError } from '../errors.ts';
import {
  asBuffer,
  chunks,
  clampLimit,
  containsPattern,
  inTransaction,
  many,
  requireText,
  sha256Hex,
  textOrNull,
  type RepoContext,
} from './internal.ts';
import type { Database, ImagesTable } from './schema.ts';

/** What to store for a picture. */
export interface PutImageInput {
  /** The encoded image (normally the loader's normalised encoding). */
  readonly bytes: Uint8Array;
  readonly width: number;
  readonly height: number;
  /** Encoding of `bytes`: `png`, `jpeg`, `webp`… */
  readonly format: string;
  /** Where it came from: `import`, `upload`, `url`, `discord`, `monitor`, `generated`… */
  readonly source: string;
  /**
   * Content id. Defaults to the SHA-256 of `bytes`; the image loader passes its own hash of the decoded
   * pixels (`LoadedImage.sha256`) so the same picture dedupes whatever its encoding.
   */
  readonly sha256?: string;
  readonly name?: string;
  readonly generated?: boolean;
  readonly meta?: Record<string, unknown>;
  readonly guildId?: string;
  readonly userId?: string;
}

/** A stored image (without its bytes) and its labels as resolved by the labels rule. */
export interface ImageRow {
  readonly sha256: string;
  readonly width: number;
  readonly height: number;
  readonly format: string;
  /** Size of the stored bytes. */
  readonly byteSize: number;
  readonly source: string;
  readonly name: string | null;
  readonly generated: boolean;
  readonly meta: Record<string, unknown> | null;
  readonly guildId: string | null;
  readonly userId: string | null;
  readonly createdAt: Date;
  /** Resolved brand label (`jordan|nike|adidas|other`) or null when unlabelled. */
  readonly brand: string | null;
  /** Resolved hype label (`hyped|not_hyped`) or null when unlabelled. */
  readonly hype: string | null;
}

/**
 * Filter for {@link ImagesRepository.find}. Every given field narrows the result (AND); array values
 * match any of their items (OR). `brand: null` / `hype: null` select images without a resolved label.
 */
export interface ImageFilter {
  /** Member of this dataset (name), or of any of these datasets. */
  readonly dataset?: string | readonly string[];
  readonly brand?: string | readonly string[] | null;
  readonly hype?: string | readonly string[] | null;
  readonly source?: string | readonly string[];
  readonly guildId?: string;
  /** Created at or after. */
  readonly since?: Date;
  /** Created before. */
  readonly until?: Date;
  /** Name contains (case-insensitive); several strings must all be contained. */
  readonly nameIncludes?: string | readonly string[];
  /** Name contains none of these (case-insensitive). Images without a name are kept. */
  readonly nameExcludes?: string | readonly string[];
  readonly generated?: boolean;
  /** Only these content ids. */
  readonly shas?: readonly string[];
  /** Page size (default 100, at most 10 000). Ignored by `iterate`, which pages itself. */
  readonly limit?: number;
  readonly offset?: number;
  /** Order by creation time (then sha256); default `asc`. */
  readonly order?: 'asc' | 'desc';
}

type ImageSelection = Selectable<ImagesTable> & { brand: string | null; hype: string | null };

/** Images: put (idempotent), get, bytes, find/iterate/count with label-aware filters. */
export class ImagesRepository {
  constructor(private readonly ctx: RepoContext) {}

  /**
   * Store a picture. Idempotent: putting the same content again returns the existing row (a missing
   * name or meta is filled in; nothing else changes).
   */
  async put(input: PutImageInput): Promise<ImageRow> {
    const { db, codec } = this.ctx;
    if (!(input.bytes instanceof Uint8Array) || input.bytes.byteLength === 0) {
      throw new EngineError('BAD_INPUT', 'Image bytes are required.');
    }
    for (const [field, value] of [
      ['width', input.width],
      ['height', input.height],
    ] as const) {
      if (!Number.isInteger(value) || value <= 0) throw new EngineError('BAD_INPUT', `Image ${field} must be a positive integer.`);
    }
    const sha = input.sha256 ?? sha256Hex(input.bytes);
    if (!/^[0-9a-f]{64}$/.test(sha)) throw new EngineError('BAD_INPUT', 'Image sha256 must be 64 lowercase hex characters.');
    const format = requireText(input.format, 'Image format', 20).toLowerCase();
    const source = requireText(input.source, 'Image source', 100);
    const bytes = asBuffer(input.bytes);
    await inTransaction(db, async (trx) => {
      const inserted = await trx
        .insertInto('images')
        .values({
          sha256: sha,
          width: input.width,
          height: input.height,
          format,
          byte_size: bytes.byteLength,
          source,
          name: textOrNull(input.name),
          generated: codec.bool(input.generated ?? false),
          meta: codec.jsonOrNull(input.meta),
          guild_id: textOrNull(input.guildId),
          user_id: textOrNull(input.userId),
          created_at: codec.time(new Date()),
        })
        .onConflict((oc) => oc.column('sha256').doNothing())
        .returning('sha256')
        .executeTakeFirst();
      if (inserted) {
        await trx.insertInto('image_blobs').values({ sha256: sha, bytes }).execute();
        return;
      }
      if (input.name) {
        await trx.updateTable('images').set({ name: input.name }).where('sha256', '=', sha).where('name', 'is', null).execute();
      }
      if (input.meta) {
        await trx.updateTable('images').set({ meta: codec.json(input.meta) }).where('sha256', '=', sha).where('meta', 'is', null).execute();
      }
    });
    const row = await this.get(sha);
    if (!row) throw new EngineError('INTERNAL', 'The image vanished right after being stored.');
    return row;
  }

  /** One image, or undefined. */
  async get(sha256: string): Promise<ImageRow | undefined> {
    const row = await this.select().where('i.sha256', '=', sha256).executeTakeFirst();
    return row ? this.toRow(row) : undefined;
  }

  /** Several images by id (missing ids are skipped), in no particular order. */
  async getMany(shas: readonly string[]): Promise<ImageRow[]> {
    const out: ImageRow[] = [];
    for (const part of chunks([...new Set(shas)], 500)) {
      const rows = await this.select().where('i.sha256', 'in', part).execute();
      out.push(...rows.map((r) => this.toRow(r)));
    }
    return out;
  }

  /** The stored bytes of an image, or undefined. */
  async bytes(sha256: string): Promise<Buffer | undefined> {
    const row = await this.ctx.db.selectFrom('image_blobs').select('bytes').where('sha256', '=', sha256).executeTakeFirst();
    return row ? Buffer.from(row.bytes) : undefined;
  }

  /** Delete an image with its bytes, labels and dataset memberships. True when it existed. */
  async delete(sha256: string): Promise<boolean> {
    const result = await this.ctx.db.deleteFrom('images').where('sha256', '=', sha256).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  /** One page of images matching `filter` (default 100 rows). */
  async find(filter: ImageFilter = {}): Promise<ImageRow[]> {
    const limit = clampLimit(filter.limit, 100);
    const offset = clampLimit(filter.offset, 0, Number.MAX_SAFE_INTEGER);
    const dir = filter.order === 'desc' ? 'desc' : 'asc';
    const rows = await this.select()
      .where((eb) => this.conditions(eb, filter))
      .orderBy('i.created_at', dir)
      .orderBy('i.sha256', dir)
      .limit(limit)
      .offset(offset)
      .execute();
    return rows.map((r) => this.toRow(r));
  }

  /** How many images match `filter` (limit/offset ignored). */
  async count(filter: ImageFilter = {}): Promise<number> {
    const row = await this.ctx.db
      .selectFrom('images as i')
      .leftJoin('resolved_labels as rb', (join) => join.onRef('rb.image_sha', '=', 'i.sha256').on('rb.task', '=', 'brand'))
      .leftJoin('resolved_labels as rh', (join) => join.onRef('rh.image_sha', '=', 'i.sha256').on('rh.task', '=', 'hype'))
      .select((eb) => eb.fn.countAll().as('n'))
      .where((eb) => this.conditions(eb, filter))
      .executeTakeFirst();
    return Number(row?.n ?? 0);
  }

  /**
   * Every image matching `filter`, fetched `pageSize` rows at a time (keyset pagination on creation time
   * and sha256, so rows added meanwhile do not shift pages). `limit` caps the total; `offset` and `order`
   * are ignored. Use this for datasets of any size: only one page is in memory at a time.
   */
  async *iterate(filter: ImageFilter = {}, pageSize = 500): AsyncGenerator<ImageRow, void, undefined> {
    const size = clampLimit(pageSize, 500);
    if (size === 0) throw new EngineError('BAD_INPUT', 'pageSize must be positive.');
    const cap = filter.limit ?? Number.POSITIVE_INFINITY;
    let yielded = 0;
    let cursor: { createdAt: string | Date; sha: string } | undefined;
    while (yielded < cap) {
      const after = cursor;
      const rows = await this.select()
        .where((eb) => {
          const base = this.conditions(eb, filter);
          if (!after) return base;
          return eb.and([
            base,
            eb.or([
              eb('i.created_at', '>', after.createdAt),
              eb.and([eb('i.created_at', '=', after.createdAt), eb('i.sha256', '>', after.sha)]),
            ]),
          ]);
        })
        .orderBy('i.created_at', 'asc')
        .orderBy('i.sha256', 'asc')
        .limit(Math.min(size, cap - yielded))
        .execute();
      for (const row of rows) {
        yield this.toRow(row);
        yielded += 1;
      }
      const last = rows.at(-1);
      if (!last || rows.length < size) return;
      cursor = { createdAt: last.created_at, sha: last.sha256 };
    }
  }

  /** Count images per resolved label of `task` among those matching `filter` (`null` key = unlabelled). */
  async labelCounts(task: 'brand' | 'hype', filter: ImageFilter = {}): Promise<Map<string | null, number>> {
    const column = task === 'brand' ? 'rb.value' : 'rh.value';
    const rows = await this.ctx.db
      .selectFrom('images as i')
      .leftJoin('resolved_labels as rb', (join) => join.onRef('rb.image_sha', '=', 'i.sha256').on('rb.task', '=', 'brand'))
      .leftJoin('resolved_labels as rh', (join) => join.onRef('rh.image_sha', '=', 'i.sha256').on('rh.task', '=', 'hype'))
      .select((eb) => [eb.ref(column).as('value'), eb.fn.countAll().as('n')])
      .where((eb) => this.conditions(eb, filter))
      .groupBy(column)
      .execute();
    return new Map(rows.map((r) => [r.value ?? null, Number(r.n)]));
  }

  private select() {
    return this.ctx.db
      .selectFrom('images as i')
      .leftJoin('resolved_labels as rb', (join) => join.onRef('rb.image_sha', '=', 'i.sha256').on('rb.task', '=', 'brand'))
      .leftJoin('resolved_labels as rh', (join) => join.onRef('rh.image_sha', '=', 'i.sha256').on('rh.task', '=', 'hype'))
      .selectAll('i')
      .select(['rb.value as brand', 'rh.value as hype']);
  }

  private conditions(
    eb: ExpressionBuilder<
      Database & { i: Database['images']; rb: Database['resolved_labels']; rh: Database['resolved_labels'] },
      'i' | 'rb' | 'rh'
    >,
    filter: ImageFilter,
  ): Expression<SqlBool> {
    const { codec } = this.ctx;
    const parts: Expression<SqlBool>[] = [];
    if (filter.dataset !== undefined) {
      const names = many(filter.dataset);
      parts.push(
        eb(
          'i.sha256',
          'in',
          eb
            .selectFrom('dataset_images as di')
            .innerJoin('datasets as d', 'd.id', 'di.dataset_id')
            .select('di.image_sha')
            .where('d.name', 'in', names.length > 0 ? [...names] : ['\u0000']),
        ),
      );
    }
    for (const [key, ref] of [
      ['brand', 'rb.value'],
      ['hype', 'rh.value'],
    ] as const) {
      const value = filter[key];
      if (value === undefined) continue;
      if (value === null) parts.push(eb(ref, 'is', null));
      else {
        const values = many(value);
        parts.push(eb(ref, 'in', values.length > 0 ? [...values] : ['\u0000']));
      }
    }
    if (filter.source !== undefined) {
      const values = many(filter.source);
      parts.push(eb('i.source', 'in', values.length > 0 ? [...values] : ['\u0000']));
    }
    if (filter.guildId !== undefined) parts.push(eb('i.guild_id', '=', filter.guildId));
    if (filter.since !== undefined) parts.push(eb('i.created_at', '>=', codec.time(filter.since)));
    if (filter.until !== undefined) parts.push(eb('i.created_at', '<', codec.time(filter.until)));
    if (filter.generated !== undefined) parts.push(eb('i.generated', '=', codec.bool(filter.generated)));
    if (filter.shas !== undefined) parts.push(eb('i.sha256', 'in', filter.shas.length > 0 ? [...filter.shas] : ['\u0000']));
    if (filter.nameIncludes !== undefined) {
      for (const text of many(filter.nameIncludes)) {
        parts.push(sql<SqlBool>`lower(${eb.ref('i.name')}) like ${containsPattern(text)} escape '\\'`);
      }
    }
    if (filter.nameExcludes !== undefined) {
      for (const text of many(filter.nameExcludes)) {
        parts.push(
          eb.or([eb('i.name', 'is', null), sql<SqlBool>`lower(${eb.ref('i.name')}) not like ${containsPattern(text)} escape '\\'`]),
        );
      }
    }
    return eb.and(parts);
  }

  private toRow(row: ImageSelection): ImageRow {
    const { codec } = this.ctx;
    return {
      sha256: row.sha256,
      width: Number(row.width),
      height: Number(row.height),
      format: row.format,
      byteSize: Number(row.byte_size),
      source: row.source,
      name: row.name,
      generated: codec.fromBool(row.generated),
      meta: codec.fromJson(row.meta) as Record<string, unknown> | null,
      guildId: row.guild_id,
      userId: row.user_id,
      createdAt: codec.fromTime(row.created_at),
      brand: row.brand,
      hype: row.hype,
    };
  }
}
