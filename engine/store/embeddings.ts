/**
 * The embeddings cache: backbone embeddings keyed by (image hash, backbone, preprocessing version), so a
 * changed preprocessing never mixes with stale vectors. Vectors are stored as little-endian Float32.
 */
import { EngineError } from '../errors.ts';
import { chunks, requireText, type RepoContext } from './internal.ts';

/** One cached embedding. */
export interface EmbeddingEntry {
  readonly imageSha: string;
  readonly vector: Float32Array;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Float32Array → little-endian bytes (a copy). */
export function encodeVector(vector: Float32Array): Buffer {
  const out = Buffer.alloc(vector.length * 4);
  if (LITTLE_ENDIAN) Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).copy(out);
  else for (let i = 0; i < vector.length; i += 1) out.writeFloatLE(vector[i] ?? 0, i * 4);
  return out;
}

/** Little-endian bytes → Float32Array (a copy, so alignment of the driver's buffer does not matter). */
export function decodeVector(bytes: Uint8Array): Float32Array {
  const out = new Float32Array(bytes.byteLength / 4);
  if (LITTLE_ENDIAN) new Uint8Array(out.buffer).set(bytes.subarray(0, out.length * 4));
  else {
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < out.length; i += 1) out[i] = buf.readFloatLE(i * 4);
  }
  return out;
}

/** Embeddings: get/put/getMany/iterate/count/delete. */
export class EmbeddingsRepository {
  constructor(private readonly ctx: RepoContext) {}

  /** The cached vector, or undefined. */
  async get(imageSha: string, backbone: string, prepVersion: string): Promise<Float32Array | undefined> {
    const row = await this.ctx.db
      .selectFrom('embeddings')
      .select('vector')
      .where('image_sha', '=', imageSha)
      .where('backbone', '=', backbone)
      .where('prep_version', '=', prepVersion)
      .executeTakeFirst();
    return row ? decodeVector(row.vector) : undefined;
  }

  /** Cache a vector (replacing an existing one). BAD_INPUT for an empty or non-finite vector. */
  async put(imageSha: string, backbone: string, prepVersion: string, vector: Float32Array): Promise<void> {
    if (!(vector instanceof Float32Array) || vector.length === 0) throw new EngineError('BAD_INPUT', 'An embedding must be a non-empty Float32Array.');
    if (!vector.every(Number.isFinite)) throw new EngineError('BAD_INPUT', 'An embedding must not contain NaN or infinite values.');
    const bytes = encodeVector(vector);
    const now = this.ctx.codec.time(new Date());
    await this.ctx.db
      .insertInto('embeddings')
      .values({
        image_sha: requireText(imageSha, 'Embedding imageSha', 128),
        backbone: requireText(backbone, 'Embedding backbone', 100),
        prep_version: requireText(prepVersion, 'Embedding prepVersion', 100),
        dim: vector.length,
        vector: bytes,
        created_at: now,
      })
      .onConflict((oc) => oc.columns(['image_sha', 'backbone', 'prep_version']).doUpdateSet({ dim: vector.length, vector: bytes, created_at: now }))
      .execute();
  }

  /** The cached vectors of several images (missing ones are absent from the map). */
  async getMany(imageShas: readonly string[], backbone: string, prepVersion: string): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>();
    for (const part of chunks([...new Set(imageShas)], 500)) {
      const rows = await this.ctx.db
        .selectFrom('embeddings')
        .select(['image_sha', 'vector'])
        .where('backbone', '=', backbone)
        .where('prep_version', '=', prepVersion)
        .where('image_sha', 'in', part)
        .execute();
      for (const r of rows) out.set(r.image_sha, decodeVector(r.vector));
    }
    return out;
  }

  /** Every cached vector of a backbone and preprocessing version, `pageSize` at a time (by image hash). */
  async *iterate(backbone: string, prepVersion: string, pageSize = 1000): AsyncGenerator<EmbeddingEntry, void, undefined> {
    let after = '';
    for (;;) {
      const rows = await this.ctx.db
        .selectFrom('embeddings')
        .select(['image_sha', 'vector'])
        .where('backbone', '=', backbone)
        .where('prep_version', '=', prepVersion)
        .where('image_sha', '>', after)
        .orderBy('image_sha')
        .limit(Math.max(1, pageSize))
        .execute();
      for (const r of rows) yield { imageSha: r.image_sha, vector: decodeVector(r.vector) };
      const last = rows.at(-1);
      if (!last || rows.length < pageSize) return;
      after = last.image_sha;
    }
  }

  /** How many vectors are cached for a backbone and preprocessing version. */
  async count(backbone: string, prepVersion: string): Promise<number> {
    const row = await this.ctx.db
      .selectFrom('embeddings')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('backbone', '=', backbone)
      .where('prep_version', '=', prepVersion)
      .executeTakeFirst();
    return Number(row?.n ?? 0);
  }

  /** Drop cached vectors of a backbone (and version, when given). Returns how many were removed. */
  async delete(backbone: string, prepVersion?: string): Promise<number> {
    let q = this.ctx.db.deleteFrom('embeddings').where('backbone', '=', backbone);
    if (prepVersion !== undefined) q = q.where('prep_version', '=', prepVersion);
    const result = await q.executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
