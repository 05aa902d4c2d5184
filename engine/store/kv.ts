/**
 * A small key/value table with optional expiry: job checkpoints, caches, cursors. Values are either
 * bytes (kept as a blob) or anything JSON-serialisable.
 */
import { sql } from 'kysely';
import { EngineError } from '../errors.ts';
import { asBuffer, requireText, type RepoContext } from './internal.ts';

/** A JSON value. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** What the kv table holds: bytes or JSON. */
export type KvValue = Uint8Array | JsonValue;

/** Key/value: get/set/delete/purgeExpired. */
export class KvRepository {
  constructor(private readonly ctx: RepoContext) {}

  /**
   * The value of `key`, or undefined when it is missing or expired. Bytes come back as a `Buffer`
   * (a `Uint8Array`), JSON as the parsed value.
   */
  async get<T extends KvValue = KvValue>(key: string): Promise<T | undefined> {
    const { codec } = this.ctx;
    const row = await this.ctx.db
      .selectFrom('kv')
      .select(['value_json', 'value_blob', 'expires_at'])
      .where('key', '=', key)
      .executeTakeFirst();
    if (!row) return undefined;
    if (row.expires_at !== null && codec.fromTime(row.expires_at).getTime() <= Date.now()) return undefined;
    if (row.value_blob !== null) return Buffer.from(row.value_blob) as unknown as T;
    return codec.fromJson(row.value_json) as T;
  }

  /** Set `key` (replacing any value). `ttlMs` makes it expire; BAD_INPUT for a non-positive ttl. */
  async set(key: string, value: KvValue, ttlMs?: number): Promise<void> {
    const k = requireText(key, 'Key', 500);
    if (ttlMs !== undefined && !(Number.isFinite(ttlMs) && ttlMs > 0)) throw new EngineError('BAD_INPUT', 'ttlMs must be a positive number.');
    if (value === undefined) throw new EngineError('BAD_INPUT', 'A kv value cannot be undefined; use delete().');
    const { codec } = this.ctx;
    const isBytes = value instanceof Uint8Array;
    const values = {
      value_json: isBytes ? null : codec.json(value),
      value_blob: isBytes ? asBuffer(value) : null,
      expires_at: ttlMs === undefined ? null : codec.time(new Date(Date.now() + ttlMs)),
      updated_at: codec.time(new Date()),
    };
    await this.ctx.db
      .insertInto('kv')
      .values({ key: k, ...values })
      .onConflict((oc) => oc.column('key').doUpdateSet(values))
      .execute();
  }

  /** Delete `key`. True when it existed (expired or not). */
  async delete(key: string): Promise<boolean> {
    const result = await this.ctx.db.deleteFrom('kv').where('key', '=', key).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  /** Keys starting with `prefix` that have not expired, sorted. */
  async keys(prefix = ''): Promise<string[]> {
    const { codec } = this.ctx;
    const rows = await this.ctx.db
      .selectFrom('kv')
      .select(['key', 'expires_at'])
      // substr rather than LIKE: SQLite's LIKE ignores case and Postgres collations reorder ranges.
      .where(sql<string>`substr(${sql.ref('key')}, 1, ${prefix.length})`, '=', prefix)
      .orderBy('key')
      .execute();
    const now = Date.now();
    return rows.filter((r) => r.expires_at === null || codec.fromTime(r.expires_at).getTime() > now).map((r) => r.key);
  }

  /** Remove expired entries; returns how many. */
  async purgeExpired(): Promise<number> {
    const result = await this.ctx.db
      .deleteFrom('kv')
      .where('expires_at', 'is not', null)
      .where('expires_at', '<=', this.ctx.codec.time(new Date()))
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
