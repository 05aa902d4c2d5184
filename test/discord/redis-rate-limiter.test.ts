/**
 * The Redis RateLimiter against the real Redis on 127.0.0.1:6379: fixed windows, atomic under
 * concurrency, and shared by two engines (two shards) so a cooldown holds across processes.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createEngine } from '../../engine/index.ts';
import { RedisRateLimiter } from '../../bot/discord/redis-rate-limiter.ts';
import { testkitPlugin } from './testkit.ts';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `test:rl:${randomUUID()}:`;
const admin = new Redis(REDIS_URL);
const limiters: RedisRateLimiter[] = [];

function limiter(): RedisRateLimiter {
  const l = new RedisRateLimiter(REDIS_URL, { prefix });
  limiters.push(l);
  return l;
}

afterAll(async () => {
  const keys = await admin.keys(`${prefix}*`);
  if (keys.length > 0) await admin.del(...keys);
  for (const l of limiters) await l.close();
  await admin.quit();
});

describe('GIVEN a Redis rate limiter', () => {
  it('THEN a window allows `limit` hits, refuses the next with the time left, and keeps state in Redis', async () => {
    const rl = limiter();
    expect(await rl.hit('a', 2, 60_000)).toEqual({ allowed: true, retryAfterMs: 0 });
    expect(await rl.hit('a', 2, 60_000)).toEqual({ allowed: true, retryAfterMs: 0 });
    const refused = await rl.hit('a', 2, 60_000);
    expect(refused.allowed).toBe(false);
    expect(refused.retryAfterMs).toBeGreaterThan(0);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(60_000);
    expect(await admin.get(`${prefix}a`)).toBe('2');
    expect(await admin.pttl(`${prefix}a`)).toBeGreaterThan(0);
  });

  it('THEN an expired window allows again', async () => {
    const rl = limiter();
    expect((await rl.hit('b', 1, 100)).allowed).toBe(true);
    expect((await rl.hit('b', 1, 100)).allowed).toBe(false);
    await new Promise((r) => setTimeout(r, 250));
    expect((await rl.hit('b', 1, 100)).allowed).toBe(true);
  });

  it('THEN concurrent hits from two clients never exceed the limit', async () => {
    const [x, y] = [limiter(), limiter()];
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 === 0 ? x : y).hit('c', 5, 60_000)));
    expect(results.filter((r) => r.allowed)).toHaveLength(5);
  });

  it('WHEN two engines (two shards) share it THEN a cooldown started on one refuses on the other', async () => {
    const caller = { id: 'user-1', name: 'u' };
    const shardA = createEngine({ rateLimiter: limiter() });
    const shardB = createEngine({ rateLimiter: limiter() });
    await shardA.register(testkitPlugin());
    await shardB.register(testkitPlugin());
    const first = await shardA.invoke('testkit cool', {}, { transport: 'discord', caller, guildId: 'g1' });
    expect(first.ok).toBe(true);
    const second = await shardB.invoke('testkit cool', {}, { transport: 'discord', caller, guildId: 'g1' });
    expect(second.ok).toBe(false);
    expect(!second.ok && second.error.code).toBe('RATE_LIMITED');
    expect(!second.ok && (second.error.details.retryAfterMs as number)).toBeGreaterThan(0);
  });
});
