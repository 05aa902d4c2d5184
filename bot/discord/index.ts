/**
 * The Discord bot's public entry: {@link startDiscordBot}, called by the composition root (`bot/main.ts`)
 * when `DISCORD_TOKEN` is set.
 */
import type { BaseChatModel } from '@langchain/core/language_models/chat_models';
import type { Client } from 'discord.js';
import { EngineError, type Config, type Engine, type Logger } from '../../engine/index.ts';
import { DiscordBot } from './bot.ts';
import { RedisRateLimiter } from './redis-rate-limiter.ts';
import { createRouter, type MessageRouter } from './router.ts';
import { NsfwSafety, type UploadSafety } from './safety.ts';

export { DiscordBot } from './bot.ts';
export { buildSlashCommands, slashCommandProblems, BARE_SUBCOMMAND, type SlashCatalogue, type SlashCommandJson, type SlashRoute } from './commands.ts';
export { syncCommands, createRest, normaliseCommand, type SyncResult } from './deploy.ts';
export { CdnDownloader, DISCORD_CDN_ORIGINS, looksLikeImage } from './cdn.ts';
export { RedisRateLimiter } from './redis-rate-limiter.ts';
export { KeywordRouter, LlmRouter, createRouter, chatModelFromConfig, toolName, type MessageRouter, type RouteDecision } from './router.ts';
export { NsfwSafety, NSFW_CLASSES, type UploadSafety, type SafetyVerdict } from './safety.ts';
export { renderReply, renderReplies, errorText, renderProgress } from './render.ts';
export { startShardManager, stopShardManager } from './shard.ts';

/** Options of {@link startDiscordBot}; every one has a production default. */
export interface StartDiscordBotOptions {
  /** Upload safety (default: nsfwjs's head, loaded on first upload); `false` disables it. */
  readonly safety?: UploadSafety | false;
  /** Free-text router (default: from LLM_* env, else keywords). */
  readonly router?: MessageRouter;
  /** A chat model for the router (tests pass LangChain's fake models). */
  readonly chatModel?: BaseChatModel;
  /**
   * Put the engine's rate limiter on Redis when `REDIS_URL` is set (default true), so cooldowns and
   * quotas hold across shards and restarts. Set false when the composition root already did.
   */
  readonly redisRateLimiter?: boolean;
  /** Commands run on a mentioned photo (default `hype`, `brand`). */
  readonly photoCommands?: readonly string[];
  /** Minimum time between progress edits in ms (default 1500). */
  readonly progressIntervalMs?: number;
  /** Attachment size cap in bytes (default SOLESCOPE_MAX_IMAGE_BYTES). */
  readonly maxAttachmentBytes?: number;
  /** Attachment download timeout in ms (default 15000). */
  readonly downloadTimeoutMs?: number;
}

/** A running bot. */
export interface RunningDiscordBot {
  readonly client: Client;
  readonly bot: DiscordBot;
  /** Stop taking events, let running commands finish (up to 10 s), disconnect, release Redis. */
  close(): Promise<void>;
}

/**
 * Start the Discord bot: logs in with `config.DISCORD_TOKEN` against `config.DISCORD_API_URL` (Discord by
 * default) and resolves once the client is ready. The engine should already have its plugins
 * registered. SIGTERM handling stays in the composition root, which calls `close()`.
 */
export async function startDiscordBot(engine: Engine, config: Config, logger: Logger, options: StartDiscordBotOptions = {}): Promise<RunningDiscordBot> {
  const token = config.DISCORD_TOKEN;
  if (!token) throw new EngineError('BAD_INPUT', 'DISCORD_TOKEN is not set: the Discord bot needs a bot token.');
  const log = logger.child({ component: 'discord' });
  let limiter: RedisRateLimiter | undefined;
  if (config.REDIS_URL && options.redisRateLimiter !== false) {
    limiter = new RedisRateLimiter(config.REDIS_URL);
    engine.useRateLimiter(limiter);
  }
  const safety = options.safety ?? new NsfwSafety();
  const router = options.router ?? (await createRouter(engine, config, log, options.chatModel));
  const bot = new DiscordBot(engine, config, log, {
    safety,
    router,
    ...(options.photoCommands ? { photoCommands: options.photoCommands } : {}),
    ...(options.progressIntervalMs !== undefined ? { progressIntervalMs: options.progressIntervalMs } : {}),
    ...(options.maxAttachmentBytes !== undefined ? { maxAttachmentBytes: options.maxAttachmentBytes } : {}),
    ...(options.downloadTimeoutMs !== undefined ? { downloadTimeoutMs: options.downloadTimeoutMs } : {}),
  });
  try {
    await bot.start(token);
  } catch (err) {
    await bot.close(0).catch(() => undefined);
    await limiter?.close();
    throw err;
  }
  log.info('discord router', { kind: router.kind });
  return {
    client: bot.client,
    bot,
    async close() {
      await bot.close();
      await limiter?.close();
      if (safety instanceof NsfwSafety) await safety.dispose();
    },
  };
}
