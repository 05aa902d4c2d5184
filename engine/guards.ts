/**
 * Guards run before every command, in one place: permissions, guild-only, cooldowns and daily quotas,
 * then any named guards a command lists. Denials are coded errors (FORBIDDEN, RATE_LIMITED, BAD_INPUT).
 */
import type { AnyCommand, GuardDefinition } from './define.ts';
import type { CommandContext } from './context.ts';
import { EngineError } from './errors.ts';

/**
 * Counts hits per key within a window. The default keeps counts in memory; the bot wires a Redis
 * implementation so limits hold across shards and processes.
 */
export interface RateLimiter {
  /**
   * Record one hit for `key` if fewer than `limit` hits happened in the last `windowMs`; returns whether
   * it was allowed and, when not, how long until the next hit would be.
   */
  hit(key: string, limit: number, windowMs: number): Promise<{ allowed: boolean; retryAfterMs: number }>;
}

/** In-memory fixed-window limiter (single process). */
export class MemoryRateLimiter implements RateLimiter {
  private readonly windows = new Map<string, { start: number; count: number }>();

  async hit(key: string, limit: number, windowMs: number): Promise<{ allowed: boolean; retryAfterMs: number }> {
    const now = Date.now();
    const w = this.windows.get(key);
    if (!w || now - w.start >= windowMs) {
      this.windows.set(key, { start: now, count: 1 });
      if (this.windows.size > 50_000) this.prune(now, windowMs);
      return { allowed: true, retryAfterMs: 0 };
    }
    if (w.count >= limit) return { allowed: false, retryAfterMs: w.start + windowMs - now };
    w.count += 1;
    return { allowed: true, retryAfterMs: 0 };
  }

  private prune(now: number, windowMs: number): void {
    for (const [k, w] of this.windows) if (now - w.start >= windowMs) this.windows.delete(k);
  }
}

const DAY_MS = 86_400_000;

function msUntilUtcMidnight(now = Date.now()): number {
  return DAY_MS - (now % DAY_MS);
}

/** Permission check: moderator/admin commands refuse callers without the right. */
export const permissionGuard: GuardDefinition = {
  name: 'permissions',
  check(command, _input, ctx) {
    const need = command.permissions ?? 'everyone';
    if (need === 'everyone') return;
    const ok = need === 'admin' ? ctx.caller.isAdmin === true : ctx.caller.isModerator === true || ctx.caller.isAdmin === true;
    if (!ok) {
      throw new EngineError('FORBIDDEN', `\`${command.name}\` is for ${need === 'admin' ? 'admins' : 'moderators'} only.`);
    }
  },
};

/** Guild-only commands refuse DMs. */
export const guildOnlyGuard: GuardDefinition = {
  name: 'guild-only',
  check(command, _input, ctx) {
    if (command.guildOnly && ctx.transport === 'discord' && !ctx.guildId) {
      throw new EngineError('FORBIDDEN', `\`${command.name}\` only works inside a server, not in DMs.`);
    }
  },
};

/** Per-user cooldown and per-guild daily quota, from the command definition. */
export const cooldownGuard: GuardDefinition = {
  name: 'cooldown',
  async check(command: AnyCommand, _input: unknown, ctx: CommandContext) {
    const spec = command.cooldown;
    if (!spec || ctx.caller.isAdmin) return;
    const limiter = ctx.services.rateLimiter;
    if (spec.perUserMs && spec.perUserMs > 0) {
      const r = await limiter.hit(`cooldown:${command.name}:${ctx.caller.id}`, 1, spec.perUserMs);
      if (!r.allowed) {
        const s = Math.ceil(r.retryAfterMs / 1000);
        throw new EngineError('RATE_LIMITED', `\`${command.name}\` is cooling down: try again in ${s}s.`, {
          details: { retryAfterMs: r.retryAfterMs },
        });
      }
    }
    if (spec.perGuildDaily && spec.perGuildDaily > 0 && ctx.guildId) {
      const day = Math.floor(Date.now() / DAY_MS);
      const r = await limiter.hit(`quota:${command.name}:${ctx.guildId}:${day}`, spec.perGuildDaily, msUntilUtcMidnight());
      if (!r.allowed) {
        throw new EngineError('RATE_LIMITED', `This server used its ${spec.perGuildDaily} daily \`${command.name}\` runs; the quota resets at 00:00 UTC.`, {
          details: { retryAfterMs: r.retryAfterMs },
        });
      }
    }
  },
};

/** Guards every command passes, in order. */
export const builtInGuards: readonly GuardDefinition[] = [guildOnlyGuard, permissionGuard, cooldownGuard];
