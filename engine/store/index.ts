/**
 * The SQL store: Kysely over better-sqlite3 (default: `<dataDir>/solescope.db`, WAL) or Postgres (`pg`)
 * when `DATABASE_URL` is `postgres://…`. Versioned migrations run on open. Everything dialect-specific
 * (column types, JSON/boolean/timestamp encoding, error codes) stays inside `engine/store/`; callers use
 * the repositories on {@link Store}.
 *
 * ```ts
 * const store = await openStore({ url: config.DATABASE_URL, dataDir: config.dataDir });
 * const img = await store.images.put({ bytes, width, height, format: 'png', source: 'upload' });
 * await store.labels.add({ imageSha: img.sha256, task: 'brand', value: 'nike', by: 'u1', origin: 'vote' });
 * for await (const row of store.images.iterate({ dataset: 'dev', brand: 'nike' })) { … }
 * ```
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql, type Transaction } from 'kysely';
import { EngineError, isEngineError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { codecFor, type Dialect, type RepoContext } from './internal.ts';
import { InCodeMigrationProvider, migrationsFor } from './migrations.ts';
import type { Database } from './schema.ts';
import { ImagesRepository } from './images.ts';
import { LabelsRepository } from './labels.ts';
import { DatasetsRepository } from './datasets.ts';
import { PredictionsRepository } from './predictions.ts';
import { ModelsRepository } from './models.ts';
import { EmbeddingsRepository } from './embeddings.ts';
import { AuditRepository } from './audit.ts';
import { KvRepository } from './kv.ts';
import { WebhookEventsRepository, WebhooksRepository } from './webhooks.ts';

export type { Database } from './schema.ts';
export type { Dialect } from './internal.ts';
export type { PutImageInput, ImageRow, ImageFilter } from './images.ts';
export { ImagesRepository } from './images.ts';
export type { AddLabelInput, LabelRow, LabelTask, LabelOrigin } from './labels.ts';
export { LabelsRepository, LABEL_VALUES, normaliseLabel } from './labels.ts';
export type { DatasetRow, CreateDatasetInput } from './datasets.ts';
export { DatasetsRepository } from './datasets.ts';
export type { AddPredictionInput, PredictionRow, PredictionFilter } from './predictions.ts';
export { PredictionsRepository } from './predictions.ts';
export type { CreateModelInput, ModelSummary, ModelRecord, AliasHistoryRow, ModelAlias, ModelStatus } from './models.ts';
export { ModelsRepository } from './models.ts';
export type { EmbeddingEntry } from './embeddings.ts';
export { EmbeddingsRepository, encodeVector, decodeVector } from './embeddings.ts';
export type { AddAuditInput, AuditRow } from './audit.ts';
export { AuditRepository } from './audit.ts';
export type { JsonValue, KvValue } from './kv.ts';
export { KvRepository } from './kv.ts';
export type {
  CreateWebhookInput,
  WebhookRow,
  AddWebhookEventInput,
  WebhookEventRow,
  WebhookEventStatus,
} from './webhooks.ts';
export { WebhooksRepository, WebhookEventsRepository } from './webhooks.ts';

/** The repositories, bound to the store or to one transaction. */
export interface StoreRepositories {
  readonly images: ImagesRepository;
  readonly labels: LabelsRepository;
  readonly datasets: DatasetsRepository;
  readonly predictions: PredictionsRepository;
  readonly models: ModelsRepository;
  readonly embeddings: EmbeddingsRepository;
  readonly audit: AuditRepository;
  readonly kv: KvRepository;
  readonly webhooks: WebhooksRepository;
  readonly webhookEvents: WebhookEventsRepository;
}

/** An open store. */
export interface Store extends StoreRepositories {
  readonly dialect: Dialect;
  /** The Kysely instance, for queries the repositories do not offer (keep them dialect-neutral). */
  readonly db: Kysely<Database>;
  /** Where the data lives, without credentials: `sqlite:/abs/path.db`, `sqlite::memory:`, `postgres://host:5432/db#schema`. */
  readonly location: string;
  /**
   * Run `fn` in one transaction with repositories bound to it; everything commits or nothing does.
   * On SQLite the single connection is held meanwhile, so keep it short.
   */
  transaction<T>(fn: (tx: StoreRepositories) => Promise<T>): Promise<T>;
  /** Resolves when the database answers a trivial query (for `/readyz`); UNAVAILABLE otherwise. */
  ping(): Promise<void>;
  /** Names of the migrations applied, in order. */
  appliedMigrations(): Promise<string[]>;
  /** Close connections. Idempotent. */
  close(): Promise<void>;
}

/** Options of {@link openStore}. */
export interface OpenStoreOptions {
  /**
   * `DATABASE_URL`: `postgres://…` / `postgresql://…`, `sqlite:<path>`, `file:<path>`, a plain file path,
   * or `:memory:`. Unset → `<dataDir>/solescope.db`.
   */
  readonly url?: string | undefined;
  /** Folder for the default SQLite file (created if missing). Default `./data`. */
  readonly dataDir?: string | undefined;
  /** Postgres only: use (and create) this schema via `search_path`, e.g. a random one per test run. */
  readonly schema?: string | undefined;
  /** Run pending migrations on open (default true). */
  readonly migrate?: boolean;
  /** Postgres pool size (default 10). */
  readonly poolSize?: number;
  readonly logger?: Logger | undefined;
}

/** What {@link parseDatabaseUrl} makes of a `DATABASE_URL`. */
export type DatabaseTarget = { readonly dialect: 'sqlite'; readonly file: string } | { readonly dialect: 'postgres'; readonly url: string };

/**
 * Interpret a `DATABASE_URL` (or its absence). Relative SQLite paths are resolved against the current
 * directory; the default file lives in `dataDir`. BAD_INPUT for other schemes.
 */
export function parseDatabaseUrl(url: string | undefined, dataDir = './data'): DatabaseTarget {
  const value = url?.trim() ?? '';
  if (value === '') return { dialect: 'sqlite', file: path.resolve(dataDir, 'solescope.db') };
  if (/^postgres(ql)?:\/\//i.test(value)) return { dialect: 'postgres', url: value };
  if (value === ':memory:' || value === 'sqlite::memory:' || value === 'sqlite://:memory:') return { dialect: 'sqlite', file: ':memory:' };
  if (/^file:\/\//i.test(value)) return { dialect: 'sqlite', file: fileURLToPath(value) };
  const prefixed = /^(sqlite|file):(.*)$/i.exec(value);
  if (prefixed) {
    // `sqlite:///abs/x.db` → /abs/x.db; `sqlite://rel/x.db` and `sqlite:rel/x.db` → rel/x.db.
    const rest = (prefixed[2] ?? '').replace(/^\/\/(?=\/)/, '').replace(/^\/\//, '');
    if (rest === '') throw new EngineError('BAD_INPUT', 'DATABASE_URL sqlite: needs a file path, e.g. sqlite:./data/solescope.db.');
    return { dialect: 'sqlite', file: rest === ':memory:' ? ':memory:' : path.resolve(rest) };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    throw new EngineError('BAD_INPUT', `DATABASE_URL must be postgres://…, sqlite:<path> or a file path (got a ${value.split(':')[0]}: URL).`);
  }
  return { dialect: 'sqlite', file: path.resolve(value) };
}

/** A Postgres URL without its password, for logs and `status`. */
function describePostgres(url: string, schema: string | undefined): string {
  try {
    const u = new URL(url);
    return `postgres://${u.hostname}:${u.port || '5432'}${u.pathname}${schema ? `#${schema}` : ''}`;
  } catch {
    return 'postgres://(unparseable url)';
  }
}

function makeRepositories(ctx: RepoContext): StoreRepositories {
  return {
    images: new ImagesRepository(ctx),
    labels: new LabelsRepository(ctx),
    datasets: new DatasetsRepository(ctx),
    predictions: new PredictionsRepository(ctx),
    models: new ModelsRepository(ctx),
    embeddings: new EmbeddingsRepository(ctx),
    audit: new AuditRepository(ctx),
    kv: new KvRepository(ctx),
    webhooks: new WebhooksRepository(ctx),
    webhookEvents: new WebhookEventsRepository(ctx),
  };
}

const SCHEMA_RE = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Open (and by default migrate) the store. UNAVAILABLE when the database cannot be opened or reached,
 * BAD_INPUT for a malformed URL or schema name.
 */
export async function openStore(options: OpenStoreOptions = {}): Promise<Store> {
  const target = parseDatabaseUrl(options.url, options.dataDir);
  const dialect = target.dialect;
  let db: Kysely<Database>;
  let location: string;
  let migrationTableSchema: string | undefined;
  if (target.dialect === 'sqlite') {
    location = target.file === ':memory:' ? 'sqlite::memory:' : `sqlite:${target.file}`;
    let sqlite: BetterSqlite3.Database;
    try {
      if (target.file !== ':memory:') fs.mkdirSync(path.dirname(target.file), { recursive: true });
      sqlite = new BetterSqlite3(target.file);
      if (target.file !== ':memory:') sqlite.pragma('journal_mode = WAL');
      sqlite.pragma('foreign_keys = ON');
      sqlite.pragma('busy_timeout = 5000');
      // WAL + NORMAL is durable across application crashes, which is what we need; fewer fsyncs.
      sqlite.pragma('synchronous = NORMAL');
    } catch (err) {
      throw new EngineError('UNAVAILABLE', `Cannot open the SQLite database at ${target.file}: ${(err as Error).message}`, { cause: err });
    }
    db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
  } else {
    const schema = options.schema;
    if (schema !== undefined && !SCHEMA_RE.test(schema)) {
      throw new EngineError('BAD_INPUT', `Postgres schema name "${schema}" must match ${SCHEMA_RE.source}.`);
    }
    location = describePostgres(target.url, schema);
    const pool = new pg.Pool({
      connectionString: target.url,
      max: options.poolSize ?? 10,
      connectionTimeoutMillis: 5000,
      ...(schema ? { options: `-c search_path=${schema}` } : {}),
    });
    // An idle client losing its connection must not crash the process; the next query reconnects.
    pool.on('error', (err) => options.logger?.warn('postgres pool error', { err }));
    db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    try {
      if (schema) await sql`create schema if not exists ${sql.id(schema)}`.execute(db);
      const row = await sql<{ s: string }>`select current_schema() as s`.execute(db);
      migrationTableSchema = row.rows[0]?.s ?? schema ?? 'public';
    } catch (err) {
      await db.destroy().catch(() => undefined);
      throw new EngineError('UNAVAILABLE', `Cannot reach Postgres at ${location}: ${(err as Error).message}`, { cause: err });
    }
  }

  const migrator = new Migrator({
    db,
    provider: new InCodeMigrationProvider(dialect),
    ...(migrationTableSchema ? { migrationTableSchema } : {}),
  });
  if (options.migrate !== false) {
    let { error, results } = await migrator.migrateToLatest();
    // Kysely's SQLite adapter has no cross-connection migration lock: two processes opening one new file at once
    // (an API server and a worker starting together) both see it unmigrated, and the later one fails creating
    // tables the earlier one just made. Its transaction rolled back, so trying again finds the work done.
    for (let attempt = 1; error && dialect === 'sqlite' && attempt <= 5; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 25 * attempt));
      ({ error, results } = await migrator.migrateToLatest());
    }
    if (error) {
      await db.destroy().catch(() => undefined);
      const failed = results?.find((r) => r.status === 'Error')?.migrationName;
      throw new EngineError('UNAVAILABLE', `Store migration ${failed ?? ''} failed on ${location}: ${(error as Error).message ?? String(error)}`, {
        cause: error,
      });
    }
    const applied = (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
    if (applied.length > 0) options.logger?.info('store migrated', { location, applied });
  }

  const codec = codecFor(dialect);
  const repos = makeRepositories({ db, codec, dialect });
  let closed = false;
  const store: Store = {
    ...repos,
    dialect,
    db,
    location,
    async transaction<T>(fn: (tx: StoreRepositories) => Promise<T>): Promise<T> {
      return db.transaction().execute((trx: Transaction<Database>) => fn(makeRepositories({ db: trx, codec, dialect })));
    },
    async ping() {
      try {
        await sql`select 1`.execute(db);
      } catch (err) {
        if (isEngineError(err)) throw err;
        throw new EngineError('UNAVAILABLE', `The store at ${location} does not answer: ${(err as Error).message}`, { cause: err });
      }
    },
    async appliedMigrations() {
      const all = await migrator.getMigrations();
      return all.filter((m) => m.executedAt !== undefined).map((m) => m.name);
    },
    async close() {
      if (closed) return;
      closed = true;
      await db.destroy();
    },
  };
  return store;
}

/** Names of all migrations this version knows (the last one is the schema version). */
export function knownMigrations(): string[] {
  return Object.keys(migrationsFor('sqlite')).sort();
}
