/**
 * Scale-out with discord.js's ShardingManager.
 *
 * Discord requires sharding from 2,500 guilds (one gateway session may serve at most 2,500), and
 * recommends about 1,000 guilds per shard; `SHARDS=auto` asks Discord for its recommendation. With
 * `SHARDS=N` the manager spawns N child processes, each running the composition root with
 * `SHARDING_MANAGER=true`, `SHARDS=<id>` and `SHARD_COUNT=N` in its environment — discord.js reads them,
 * so every child logs in as its own shard. State is never in a child's memory: cooldowns and quotas
 * live in Redis (`REDIS_URL`, see redis-rate-limiter.ts), votes and models in the store, so any shard
 * can serve any guild's next request.
 *
 * Run: `tsx bot/discord/shard.ts` (or let `bot/main.ts` call {@link startShardManager} when `SHARDS` is
 * set and `SHARDING_MANAGER` is not). Children must start the bot only, not a second HTTP server.
 */
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ShardingManager } from 'discord.js';
import { createLogger, EngineError, loadConfig, type Config, type Logger } from '../../engine/index.ts';

/** Options of {@link startShardManager}. */
export interface ShardManagerOptions {
  /** The script each shard runs (default: `bot/main.ts`, the composition root). */
  readonly file?: string;
  /** Node flags of each child (default `--import tsx`, so children run TypeScript like the parent). */
  readonly execArgv?: readonly string[];
  /** Respawn a shard that exits (default true). */
  readonly respawn?: boolean;
  /** How long to wait for each shard's ready, in ms (default 30 s; -1 waits forever). */
  readonly timeoutMs?: number;
  /** Extra environment for the children (tests point them at a fake Discord). */
  readonly env?: Record<string, string>;
}

const here = path.dirname(fileURLToPath(import.meta.url));

/** Spawn the shards and wait until each is ready. */
export async function startShardManager(config: Config, logger: Logger, options: ShardManagerOptions = {}): Promise<ShardingManager> {
  if (!config.DISCORD_TOKEN) throw new EngineError('BAD_INPUT', 'DISCORD_TOKEN is not set: sharding needs the bot token.');
  const total = config.SHARDS === undefined || config.SHARDS === 'auto' ? 'auto' : Number(config.SHARDS);
  const manager = new ShardingManager(options.file ?? path.resolve(here, '..', 'main.ts'), {
    token: config.DISCORD_TOKEN,
    totalShards: total,
    mode: 'process',
    respawn: options.respawn ?? true,
    execArgv: [...(options.execArgv ?? ['--import', 'tsx'])],
  });
  manager.on('shardCreate', (shard) => {
    logger.info('shard spawned', { shard: shard.id, of: manager.totalShards });
    if (options.env) {
      // Shard#env is the child's environment; extend it before the process is spawned.
      Object.assign((shard as unknown as { env: Record<string, string> }).env, options.env);
    }
    shard.on('death', () => logger.warn('shard process exited', { shard: shard.id }));
  });
  await manager.spawn({ amount: total, delay: 0, timeout: options.timeoutMs ?? 30_000 });
  return manager;
}

/** Kill every shard process. */
export async function stopShardManager(manager: ShardingManager): Promise<void> {
  manager.respawn = false;
  for (const shard of manager.shards.values()) shard.kill();
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const config = loadConfig();
  const logger = createLogger({ level: config.LOG_LEVEL });
  const manager = await startShardManager(config, logger);
  const stop = (): void => {
    void stopShardManager(manager).finally(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
