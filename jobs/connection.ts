/**
 * Redis connections and naming for the BullMQ runner. One place decides the connection options every
 * queue, worker and event stream uses, and how job names map to queue names.
 */
import { Redis, type RedisOptions } from 'ioredis';

/** Default Redis URL when `REDIS_URL` is unset. */
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** Default BullMQ key prefix (every key solescope writes starts with it). */
export const DEFAULT_PREFIX = 'solescope';

/**
 * Open an ioredis connection suitable for BullMQ. `maxRetriesPerRequest: null` is what BullMQ requires for
 * blocking commands (workers and queue events); it also makes commands wait through a Redis restart instead
 * of failing, which is what a worker wants.
 */
export function createRedisConnection(url: string = DEFAULT_REDIS_URL, options: Partial<Pick<RedisOptions, 'maxRetriesPerRequest' | 'lazyConnect' | 'connectionName'>> = {}): Redis {
  const redis = new Redis(url, {
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    // Reconnect forever with a capped delay: Redis restarts (upgrades, failovers) are normal events.
    retryStrategy: (times) => Math.min(200 * times, 2_000),
    lazyConnect: false,
    ...options,
  });
  // Connection errors surface through the commands that fail (and health()); without a listener ioredis
  // would print every reconnect attempt as an "unhandled error event".
  redis.on('error', () => undefined);
  return redis;
}

/**
 * The queue that holds jobs of one definition. One queue per job name gives each kind of work its own
 * concurrency limit and its own dashboard row. BullMQ forbids `:` in queue names (it is the key separator).
 */
export function queueNameFor(jobName: string): string {
  return jobName.replace(/[^A-Za-z0-9_.-]/g, '-');
}

/**
 * Parse `SOLESCOPE_QUEUE_CONCURRENCY`, e.g. `training.train=1,training.trial=2`: the most jobs of each
 * name active at once across ALL workers (BullMQ global concurrency). Bad entries are ignored.
 */
export function parseQueueConcurrency(value: string | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of (value ?? '').split(',')) {
    const m = /^\s*([A-Za-z0-9_.-]+)\s*=\s*(\d{1,4})\s*$/.exec(part);
    if (m && Number(m[2]) > 0) out[m[1]!] = Number(m[2]);
  }
  return out;
}

/** `SOLESCOPE_MAX_JOBS_PER_GUILD` (default 2): unfinished jobs one guild may hold across all queues. */
export function maxJobsPerGuildFromEnv(env: Record<string, string | undefined> = process.env): number {
  const n = Number(env.SOLESCOPE_MAX_JOBS_PER_GUILD);
  return Number.isInteger(n) && n > 0 ? n : 2;
}
