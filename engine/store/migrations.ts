/**
 * Versioned schema migrations, provided in code (no migration folder to ship) and run by Kysely's
 * `Migrator` when the store opens. Append new migrations with a higher, zero-padded name; never edit one
 * that has shipped. Column types are chosen per dialect here so the repositories stay dialect-neutral.
 */
import { sql, type Kysely, type Migration, type MigrationProvider, type CreateTableBuilder } from 'kysely';
import type { Dialect } from './internal.ts';

/** The per-dialect column types used by migrations. */
interface Types {
  readonly json: 'text' | 'jsonb';
  readonly blob: 'blob' | 'bytea';
  readonly bool: 'integer' | 'boolean';
  readonly time: 'text' | 'timestamptz';
  readonly float: 'real' | 'double precision';
}

function typesFor(dialect: Dialect): Types {
  return dialect === 'sqlite'
    ? { json: 'text', blob: 'blob', bool: 'integer', time: 'text', float: 'real' }
    : { json: 'jsonb', blob: 'bytea', bool: 'boolean', time: 'timestamptz', float: 'double precision' };
}

/** An auto-increment integer primary key in either dialect. */
function withId<T extends string>(dialect: Dialect, table: CreateTableBuilder<T, never>): CreateTableBuilder<T, 'id'> {
  return dialect === 'sqlite'
    ? table.addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
    : table.addColumn('id', 'serial', (c) => c.primaryKey());
}

// Migrations receive an untyped Kysely on purpose: they describe the schema at *their* point in time.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

function initial(dialect: Dialect): Migration {
  const t = typesFor(dialect);
  const falseValue = dialect === 'sqlite' ? sql`0` : sql`false`;
  return {
    async up(db: AnyDb) {
      await db.schema
        .createTable('images')
        .addColumn('sha256', 'text', (c) => c.primaryKey())
        .addColumn('width', 'integer', (c) => c.notNull())
        .addColumn('height', 'integer', (c) => c.notNull())
        .addColumn('format', 'text', (c) => c.notNull())
        .addColumn('byte_size', 'integer', (c) => c.notNull())
        .addColumn('source', 'text', (c) => c.notNull())
        .addColumn('name', 'text')
        .addColumn('generated', t.bool, (c) => c.notNull().defaultTo(falseValue))
        .addColumn('meta', t.json)
        .addColumn('guild_id', 'text')
        .addColumn('user_id', 'text')
        .addColumn('created_at', t.time, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('images_created_idx').on('images').columns(['created_at', 'sha256']).execute();
      await db.schema.createIndex('images_source_idx').on('images').column('source').execute();
      await db.schema.createIndex('images_guild_idx').on('images').column('guild_id').execute();

      await db.schema
        .createTable('image_blobs')
        .addColumn('sha256', 'text', (c) => c.primaryKey().references('images.sha256').onDelete('cascade'))
        .addColumn('bytes', t.blob, (c) => c.notNull())
        .execute();

      await withId(dialect, db.schema.createTable('labels'))
        .addColumn('image_sha', 'text', (c) => c.notNull().references('images.sha256').onDelete('cascade'))
        .addColumn('task', 'text', (c) => c.notNull())
        .addColumn('value', 'text', (c) => c.notNull())
        .addColumn('by', 'text', (c) => c.notNull())
        .addColumn('origin', 'text', (c) => c.notNull())
        .addColumn('guild_id', 'text')
        .addColumn('created_at', t.time, (c) => c.notNull())
        .addUniqueConstraint('labels_one_per_voter', ['image_sha', 'task', 'by'])
        .execute();

      await db.schema
        .createTable('resolved_labels')
        .addColumn('image_sha', 'text', (c) => c.notNull().references('images.sha256').onDelete('cascade'))
        .addColumn('task', 'text', (c) => c.notNull())
        .addColumn('value', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('resolved_labels_pk', ['image_sha', 'task'])
        .execute();
      await db.schema.createIndex('resolved_labels_value_idx').on('resolved_labels').columns(['task', 'value']).execute();

      await withId(dialect, db.schema.createTable('datasets'))
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('description', 'text')
        .addColumn('meta', t.json)
        .addColumn('created_by', 'text')
        .addColumn('created_at', t.time, (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('dataset_images')
        .addColumn('dataset_id', 'integer', (c) => c.notNull().references('datasets.id').onDelete('cascade'))
        .addColumn('image_sha', 'text', (c) => c.notNull().references('images.sha256').onDelete('cascade'))
        .addColumn('added_at', t.time, (c) => c.notNull())
        .addPrimaryKeyConstraint('dataset_images_pk', ['dataset_id', 'image_sha'])
        .execute();
      await db.schema.createIndex('dataset_images_image_idx').on('dataset_images').column('image_sha').execute();

      // Predictions and embeddings may concern images that were never stored (a user's one-off photo),
      // so they carry the hash without a foreign key.
      await withId(dialect, db.schema.createTable('predictions'))
        .addColumn('image_sha', 'text', (c) => c.notNull())
        .addColumn('task', 'text', (c) => c.notNull())
        .addColumn('label', 'text', (c) => c.notNull())
        .addColumn('probability', t.float, (c) => c.notNull())
        .addColumn('model_id', 'text', (c) => c.notNull())
        .addColumn('guild_id', 'text')
        .addColumn('user_id', 'text')
        .addColumn('created_at', t.time, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('predictions_image_idx').on('predictions').column('image_sha').execute();
      await db.schema.createIndex('predictions_created_idx').on('predictions').column('created_at').execute();

      await withId(dialect, db.schema.createTable('models'))
        .addColumn('task', 'text', (c) => c.notNull())
        .addColumn('artifact', t.blob, (c) => c.notNull())
        .addColumn('artifact_size', 'integer', (c) => c.notNull())
        .addColumn('metrics', t.json, (c) => c.notNull())
        .addColumn('params', t.json, (c) => c.notNull())
        .addColumn('data_snapshot', t.json, (c) => c.notNull())
        .addColumn('curves_png', t.blob)
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('created_at', t.time, (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('models_task_idx').on('models').columns(['task', 'id']).execute();

      await db.schema
        .createTable('model_aliases')
        .addColumn('task', 'text', (c) => c.notNull())
        .addColumn('alias', 'text', (c) => c.notNull())
        .addColumn('model_id', 'integer', (c) => c.notNull().references('models.id').onDelete('restrict'))
        .addColumn('updated_by', 'text')
        .addColumn('updated_at', t.time, (c) => c.notNull())
        .addPrimaryKeyConstraint('model_aliases_pk', ['task', 'alias'])
        .execute();

      await withId(dialect, db.schema.createTable('model_alias_history'))
        .addColumn('task', 'text', (c) => c.notNull())
        .addColumn('alias', 'text', (c) => c.notNull())
        .addColumn('model_id', 'integer', (c) => c.notNull())
        .addColumn('previous_model_id', 'integer')
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('by', 'text')
        .addColumn('created_at', t.time, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('model_alias_history_idx').on('model_alias_history').columns(['task', 'alias', 'id']).execute();

      await db.schema
        .createTable('embeddings')
        .addColumn('image_sha', 'text', (c) => c.notNull())
        .addColumn('backbone', 'text', (c) => c.notNull())
        .addColumn('prep_version', 'text', (c) => c.notNull())
        .addColumn('dim', 'integer', (c) => c.notNull())
        .addColumn('vector', t.blob, (c) => c.notNull())
        .addColumn('created_at', t.time, (c) => c.notNull())
        .addPrimaryKeyConstraint('embeddings_pk', ['image_sha', 'backbone', 'prep_version'])
        .execute();
      await db.schema.createIndex('embeddings_backbone_idx').on('embeddings').columns(['backbone', 'prep_version', 'image_sha']).execute();

      await withId(dialect, db.schema.createTable('audit'))
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('target', 'text')
        .addColumn('details', t.json)
        .addColumn('created_at', t.time, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('audit_created_idx').on('audit').column('created_at').execute();

      await db.schema
        .createTable('kv')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('value_json', t.json)
        .addColumn('value_blob', t.blob)
        .addColumn('expires_at', t.time)
        .addColumn('updated_at', t.time, (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('webhooks')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('token_hash', 'text', (c) => c.notNull())
        .addColumn('channel_id', 'text', (c) => c.notNull())
        .addColumn('guild_id', 'text')
        .addColumn('name', 'text')
        .addColumn('routes', t.json, (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('created_at', t.time, (c) => c.notNull())
        .addColumn('revoked_at', t.time)
        .execute();

      await withId(dialect, db.schema.createTable('webhook_events'))
        .addColumn('webhook_id', 'text', (c) => c.notNull().references('webhooks.id').onDelete('cascade'))
        .addColumn('received_at', t.time, (c) => c.notNull())
        .addColumn('payload', t.json, (c) => c.notNull())
        .addColumn('parsed', t.json)
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('reason', 'text')
        .addColumn('result', t.json)
        .execute();
      await db.schema.createIndex('webhook_events_hook_idx').on('webhook_events').columns(['webhook_id', 'id']).execute();
    },
    async down(db: AnyDb) {
      for (const table of [
        'webhook_events',
        'webhooks',
        'kv',
        'audit',
        'embeddings',
        'model_alias_history',
        'model_aliases',
        'models',
        'predictions',
        'dataset_images',
        'datasets',
        'resolved_labels',
        'labels',
        'image_blobs',
        'images',
      ]) {
        await db.schema.dropTable(table).ifExists().execute();
      }
    },
  };
}

/** All migrations of a dialect, by name (sorted order = run order). */
export function migrationsFor(dialect: Dialect): Record<string, Migration> {
  return {
    '0001_initial': initial(dialect),
  };
}

/** The in-code provider Kysely's `Migrator` reads. */
export class InCodeMigrationProvider implements MigrationProvider {
  constructor(private readonly dialect: Dialect) {}

  async getMigrations(): Promise<Record<string, Migration>> {
    return migrationsFor(this.dialect);
  }
}
