/**
 * Kysely table types of the solescope store. Both dialects share these types; the column *storage*
 * differs (JSON is TEXT in SQLite and JSONB in Postgres, booleans are 0/1 integers in SQLite, timestamps
 * are ISO-8601 TEXT in SQLite and TIMESTAMPTZ in Postgres). The repositories convert through
 * {@link Codec} so nothing outside `engine/store/` ever sees a raw column value.
 */
import type { ColumnType, Generated } from 'kysely';

/** A JSON column: written as a JSON string, read back as a string (SQLite) or a parsed value (Postgres). */
export type JsonColumn = ColumnType<unknown, string, string>;
/** A nullable JSON column. */
export type NullableJsonColumn = ColumnType<unknown, string | null | undefined, string | null>;
/** A boolean column: 0/1 in SQLite, boolean in Postgres. */
export type BoolColumn = ColumnType<number | boolean, number | boolean, number | boolean>;
/** A timestamp: ISO string in SQLite, `Date` in Postgres. */
export type TimeColumn = ColumnType<string | Date, string | Date, string | Date>;
/** A nullable timestamp. */
export type NullableTimeColumn = ColumnType<string | Date | null, string | Date | null | undefined, string | Date | null>;
/** A binary column (BLOB / BYTEA). */
export type BlobColumn = ColumnType<Buffer, Buffer, Buffer>;

/** `images`: one row per distinct picture, content-addressed. The bytes live in `image_blobs`. */
export interface ImagesTable {
  sha256: string;
  width: number;
  height: number;
  format: string;
  byte_size: number;
  source: string;
  name: string | null;
  generated: BoolColumn;
  meta: NullableJsonColumn;
  guild_id: string | null;
  user_id: string | null;
  created_at: TimeColumn;
}

/** `image_blobs`: the encoded bytes, kept apart so listing images never reads them. */
export interface ImageBlobsTable {
  sha256: string;
  bytes: BlobColumn;
}

/** `labels`: every label ever given (import, vote, monitor…); one per (image, task, by). */
export interface LabelsTable {
  id: Generated<number>;
  image_sha: string;
  task: string;
  value: string;
  by: string;
  origin: string;
  guild_id: string | null;
  created_at: TimeColumn;
}

/** `resolved_labels`: the label each image currently has per task (see labels repository for the rule). */
export interface ResolvedLabelsTable {
  image_sha: string;
  task: string;
  value: string;
}

/** `datasets`. */
export interface DatasetsTable {
  id: Generated<number>;
  name: string;
  description: string | null;
  meta: NullableJsonColumn;
  created_by: string | null;
  created_at: TimeColumn;
}

/** `dataset_images`: membership. */
export interface DatasetImagesTable {
  dataset_id: number;
  image_sha: string;
  added_at: TimeColumn;
}

/** `predictions`: what a model said about an image, for monitoring and feedback. */
export interface PredictionsTable {
  id: Generated<number>;
  image_sha: string;
  task: string;
  label: string;
  probability: number;
  model_id: string;
  guild_id: string | null;
  user_id: string | null;
  created_at: TimeColumn;
}

/** `models`: trained model versions. */
export interface ModelsTable {
  id: Generated<number>;
  task: string;
  artifact: BlobColumn;
  artifact_size: number;
  metrics: JsonColumn;
  params: JsonColumn;
  data_snapshot: JsonColumn;
  curves_png: ColumnType<Buffer | null, Buffer | null | undefined, Buffer | null>;
  created_by: string;
  created_at: TimeColumn;
  status: string;
}

/** `model_aliases`: the current model behind `champion`, `candidate`, … per task. */
export interface ModelAliasesTable {
  task: string;
  alias: string;
  model_id: number;
  updated_by: string | null;
  updated_at: TimeColumn;
}

/** `model_alias_history`: every alias change, so a rollback can restore the previous champion. */
export interface ModelAliasHistoryTable {
  id: Generated<number>;
  task: string;
  alias: string;
  model_id: number;
  previous_model_id: number | null;
  action: string;
  by: string | null;
  created_at: TimeColumn;
}

/** `embeddings`: cached backbone embeddings (Float32 little-endian). */
export interface EmbeddingsTable {
  image_sha: string;
  backbone: string;
  prep_version: string;
  dim: number;
  vector: BlobColumn;
  created_at: TimeColumn;
}

/** `audit`: who did what. */
export interface AuditTable {
  id: Generated<number>;
  actor: string;
  action: string;
  target: string | null;
  details: NullableJsonColumn;
  created_at: TimeColumn;
}

/** `kv`: small key/value state (checkpoints, caches) with optional expiry. */
export interface KvTable {
  key: string;
  value_json: NullableJsonColumn;
  value_blob: ColumnType<Buffer | null, Buffer | null | undefined, Buffer | null>;
  expires_at: NullableTimeColumn;
  updated_at: TimeColumn;
}

/** `webhooks`: inbound webhook endpoints (resale monitors). Only a hash of the token is kept. */
export interface WebhooksTable {
  id: string;
  token_hash: string;
  channel_id: string;
  guild_id: string | null;
  name: string | null;
  routes: JsonColumn;
  created_by: string;
  created_at: TimeColumn;
  revoked_at: NullableTimeColumn;
}

/** `webhook_events`: every delivery a webhook received and what became of it. */
export interface WebhookEventsTable {
  id: Generated<number>;
  webhook_id: string;
  received_at: TimeColumn;
  payload: JsonColumn;
  parsed: NullableJsonColumn;
  status: string;
  reason: string | null;
  result: NullableJsonColumn;
}

/** Every table of the store, for `Kysely<Database>`. */
export interface Database {
  images: ImagesTable;
  image_blobs: ImageBlobsTable;
  labels: LabelsTable;
  resolved_labels: ResolvedLabelsTable;
  datasets: DatasetsTable;
  dataset_images: DatasetImagesTable;
  predictions: PredictionsTable;
  models: ModelsTable;
  model_aliases: ModelAliasesTable;
  model_alias_history: ModelAliasHistoryTable;
  embeddings: EmbeddingsTable;
  audit: AuditTable;
  kv: KvTable;
  webhooks: WebhooksTable;
  webhook_events: WebhookEventsTable;
}
