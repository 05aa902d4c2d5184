/**
 * Where job checkpoints live. With a store (the normal case) they go to the store's key-value table, so a
 * worker on another machine resumes from them; without one they go to Redis next to the queue. Either way
 * they outlive the process that wrote them — the point of a checkpoint.
 */
import type { Redis } from 'ioredis';
import type { Engine } from '../engine/index.ts';
import { decodeCheckpoint, encodeCheckpoint } from './codec.ts';

/** Load/save/clear checkpoints by job key. */
export interface CheckpointStore {
  save(key: string, state: Uint8Array | Record<string, unknown>): Promise<void>;
  load(key: string): Promise<Uint8Array | Record<string, unknown> | undefined>;
  clear(key: string): Promise<void>;
}

/** The store's kv surface (structural, so this module does not depend on the store's implementation). */
interface KvLike {
  get(key: string): Promise<unknown>;
  set(key: string, value: unknown, ttlMs?: number): Promise<unknown>;
  delete(key: string): Promise<unknown>;
}

/** Checkpoints are kept a week: long enough for any retry, short enough not to pile up. */
const CHECKPOINT_TTL_MS = 7 * 86_400_000;

/** The checkpoint key of a job (queue + id: ids are unique per queue in BullMQ). */
export function checkpointKey(queueName: string, jobId: string): string {
  return `job-checkpoint:${queueName}:${jobId}`;
}

/** Checkpoints in the store's kv table. */
export function storeCheckpoints(kv: KvLike): CheckpointStore {
  return {
    async save(key, state) {
      await kv.set(key, encodeCheckpoint(state), CHECKPOINT_TTL_MS);
    },
    async load(key) {
      const raw = await kv.get(key);
      // Some kv implementations hand back the JSON text rather than the parsed value.
      return decodeCheckpoint(typeof raw === 'string' ? safeJson(raw) : raw);
    },
    async clear(key) {
      await kv.delete(key);
    },
  };
}

/** Checkpoints in Redis (when the engine has no store). */
export function redisCheckpoints(redis: Redis, prefix: string): CheckpointStore {
  return {
    async save(key, state) {
      await redis.set(`${prefix}:${key}`, JSON.stringify(encodeCheckpoint(state)), 'PX', CHECKPOINT_TTL_MS);
    },
    async load(key) {
      const raw = await redis.get(`${prefix}:${key}`);
      return raw === null ? undefined : decodeCheckpoint(safeJson(raw));
    },
    async clear(key) {
      await redis.del(`${prefix}:${key}`);
    },
  };
}

/** The checkpoint store for an engine: its store's kv when there is one, else Redis. */
export function checkpointsFor(engine: Engine, redis: () => Redis, prefix: string): CheckpointStore {
  if (engine.hasStore) {
    const kv = (engine.services.store as unknown as { kv?: KvLike }).kv;
    if (kv) return storeCheckpoints(kv);
  }
  return redisCheckpoints(redis(), prefix);
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
