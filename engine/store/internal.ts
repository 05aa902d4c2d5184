/**
 * Store internals shared by the repositories: the per-dialect value codec, transaction nesting, and the
 * mapping of driver errors to catalogue codes. Not exported from the engine.
 */
import { createHash } from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import { EngineError, isEngineError } from '../errors.ts';
import type { Database } from './schema.ts';

/** The two SQL dialects the store speaks. */
export type Dialect = 'sqlite' | 'postgres';

/**
 * Converts between domain values and column storage. The only place that knows SQLite stores JSON as
 * TEXT, booleans as 0/1 and timestamps as ISO strings, while Postgres returns parsed JSONB, real booleans
 * and `Date`s.
 */
export interface Codec {
  json(value: unknown): string;
  jsonOrNull(value: unknown): string | null;
  fromJson(value: unknown): unknown;
  bool(value: boolean): number | boolean;
  fromBool(value: unknown): boolean;
  time(value: Date): string | Date;
  fromTime(value: unknown): Date;
}

/** The codec of a dialect. */
export function codecFor(dialect: Dialect): Codec {
  const sqlite = dialect === 'sqlite';
  return {
    json: (value) => JSON.stringify(value ?? null),
    jsonOrNull: (value) => (value === undefined || value === null ? null : JSON.stringify(value)),
    // pg parses JSONB itself; SQLite hands back the TEXT we wrote.
    fromJson: (value) => (value === null || value === undefined ? null : sqlite && typeof value === 'string' ? JSON.parse(value) : value),
    bool: (value) => (sqlite ? (value ? 1 : 0) : value),
    fromBool: (value) => value === true || value === 1 || value === '1' || value === 't',
    time: (value) => (sqlite ? value.toISOString() : value),
    fromTime: (value) => (value instanceof Date ? value : new Date(String(value))),
  };
}

/** What every repository is built from. */
export interface RepoContext {
  readonly db: Kysely<Database>;
  readonly codec: Codec;
  readonly dialect: Dialect;
}

/**
 * Run `fn` in a transaction, or directly in the caller's transaction when `db` already is one (Kysely
 * cannot nest transactions; `store.transaction()` hands repositories a transaction-bound `db`).
 */
export async function inTransaction<T>(db: Kysely<Database>, fn: (trx: Kysely<Database>) => Promise<T>): Promise<T> {
  if (db.isTransaction) return fn(db);
  return db.transaction().execute((trx: Transaction<Database>) => fn(trx));
}

/** Hex SHA-256 of bytes. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A Buffer view of any Uint8Array (drivers want Buffers). */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A case-insensitive LIKE pattern matching `text` anywhere, with `\` as escape character. */
export function containsPattern(text: string): string {
  return `%${text.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** Normalise a one-or-many filter value to an array. */
export function many<T>(value: T | readonly T[]): readonly T[] {
  return Array.isArray(value) ? (value as readonly T[]) : [value as T];
}

/** Split an array into chunks (SQL statements have parameter limits). */
export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Require a non-empty string (trimmed), or throw BAD_INPUT naming the field. */
export function requireText(value: unknown, field: string, max = 500): string {
  if (typeof value !== 'string' || value.trim() === '') throw new EngineError('BAD_INPUT', `${field} is required.`);
  const text = value.trim();
  if (text.length > max) throw new EngineError('BAD_INPUT', `${field} is longer than ${max} characters.`);
  return text;
}

/** Optional string → `string | null` for a nullable column. */
export function textOrNull(value: string | null | undefined): string | null {
  return value === undefined || value === null || value === '' ? null : value;
}

/**
 * Map a driver error to a catalogue error: constraint violations become CONFLICT / NOT_FOUND with the
 * given wording, anything else is rethrown untouched (the engine's normaliser turns it into INTERNAL).
 */
export function mapDbError(err: unknown, messages: { conflict?: string; missing?: string } = {}): unknown {
  if (isEngineError(err)) return err;
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'SQLITE_CONSTRAINT_FOREIGNKEY' || code === '23503') {
    return new EngineError('NOT_FOUND', messages.missing ?? 'A referenced record does not exist.', { cause: err });
  }
  if (code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === '23505') {
    return new EngineError('CONFLICT', messages.conflict ?? 'That record already exists.', { cause: err });
  }
  return err;
}

/** Clamp a page size / limit to a sane integer range. */
export function clampLimit(value: number | undefined, fallback: number, max = 10_000): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 0) throw new EngineError('BAD_INPUT', `limit must be a non-negative integer (got ${value}).`);
  return Math.min(value, max);
}
