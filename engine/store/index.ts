/**
 * The SQL store (Kysely over better-sqlite3 or Postgres). Interface only for now; the implementation
 * with migrations lands with the store work.
 */
import type { Kysely } from 'kysely';

/** Table types (filled in by the store implementation). */
export interface Database {
  [table: string]: Record<string, unknown>;
}

/** An open store. */
export interface Store {
  readonly dialect: 'sqlite' | 'postgres';
  readonly db: Kysely<Database>;
  close(): Promise<void>;
}
