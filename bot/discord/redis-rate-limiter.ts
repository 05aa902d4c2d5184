/**
 * The engine's `RateLimiter` on Redis, so cooldowns and daily quotas hold across shards, processes and
 * restarts (bot state never lives in process memory when `REDIS_URL` is set).
 *
 * Same semantics as the in-memory limiter: a fixed window per key that starts at the first hit. One Lua
 * script does the count and the expiry atomically, so two shards hitting the same key cannot both pass.
 */
import { Redis } from 'ioredis';
import type { RateLimiter } from '../../engine/index.ts';

// KEYS[1] = window key; ARGV[1] = limit; ARGV[2] = window ms.
// Returns {1, 0} when allowed, {0, pttl} when not.
const HIT_SCRIPT = `
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count >= tonumber(ARGV[1]) then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    ttl = tonumber(ARGV[2])
  end
  return {0, ttl}
end
count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return {1, 0}
`;

/** Options of {@link RedisRateLimiter}. */
export interface RedisRateLimiterOptions {
  /** Key prefix (default `solescope:rl:`); tests use a random one. */
  readonly prefix?: string;
}

/** Redis-backed {@link RateLimiter}. */
export class RedisRateLimiter implements RateLimiter {
  private readonly prefix: string;
  private readonly ownsClient: boolean;
  readonly redis: Redis;

  /** Pass a `redis://` URL (a client is created and owned) or an existing ioredis client. */
  constructor(redis: string | Redis, options: RedisRateLimiterOptions = {}) {
    this.ownsClient = typeof redis === 'string';
    this.redis = typeof redis === 'string' ? new Redis(redis, { maxRetriesPerRequest: 2, lazyConnect: false }) : redis;
    this.prefix = options.prefix ?? 'solescope:rl:';
  }

  async hit(key: string, limit: number, windowMs: number): Promise<{ allowed: boolean; retryAfterMs: number }> {
    const [allowed, ttl] = (await this.redis.eval(HIT_SCRIPT, 1, `${this.prefix}${key}`, String(limit), String(Math.max(1, Math.ceil(windowMs))))) as [number, number];
    return allowed === 1 ? { allowed: true, retryAfterMs: 0 } : { allowed: false, retryAfterMs: Math.max(0, Number(ttl)) };
  }

  /** Close the client if this limiter created it. */
  async close(): Promise<void> {
    if (this.ownsClient) await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
