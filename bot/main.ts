/**
 * `npm start`: the main job on an embedded default. HTTP server on PORT with the SQLite store in ./data,
 * Redis found or started for the job queue, one in-process worker (unless SOLESCOPE_WORKER=false), the
 * resale-monitor webhook endpoint, the queue dashboard, and the Discord bot when DISCORD_TOKEN is set.
 * SIGTERM/SIGINT close everything in reverse order.
 */
import { createLogger, loadConfig, toEngineError } from '../engine/index.ts';
import { BullJobRunner, createBullJobRunner, mountQueueDashboard, startWorker } from '../jobs/index.ts';
import { createChannelPoster } from './channel-poster.ts';
import { RedisRateLimiter, startDiscordBot, startShardManager, stopShardManager } from './discord/index.ts';
import { createHttpApp, serveHttp } from './http.ts';
import { ensureRedis, portAnswers } from './redis.ts';
import { createRuntime } from './runtime.ts';
import { createWebhookRouter } from './webhooks.ts';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    process.stderr.write(`${toEngineError(err).message}\n`);
    process.exit(2);
  }
  const logger = createLogger({ level: config.LOG_LEVEL });
  const closers: (() => Promise<void>)[] = [];
  const closeAll = async (): Promise<void> => {
    for (const close of closers.splice(0).reverse()) await close().catch((err: unknown) => logger.warn('close failed', { err }));
  };
  let shuttingDown = false;
  const shutdown = (signal: string): void => {
    if (shuttingDown) process.exit(1);
    shuttingDown = true;
    logger.info('shutting down', { signal });
    void closeAll().then(() => process.exit(0));
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  try {
    const redis = await ensureRedis(config.REDIS_URL, config.dataDir, logger);
    closers.push(() => redis.stop());
    const env = { ...process.env, REDIS_URL: redis.url };
    const runtime = await createRuntime({
      env,
      logger,
      processMetrics: true,
      configure: (engine, cfg) => {
        engine.useJobRunner(createBullJobRunner({ engine, redisUrl: redis.url }));
        const limiter = new RedisRateLimiter(redis.url);
        engine.useRateLimiter(limiter);
        closers.push(() => limiter.close());
        if (cfg.DISCORD_TOKEN) engine.provide('channelPoster', createChannelPoster(cfg.DISCORD_TOKEN, cfg.DISCORD_API_URL));
      },
    });
    closers.push(() => runtime.close());
    const engine = runtime.engine;
    // A shard child (spawned by the ShardingManager below) runs only its Discord shard: the parent
    // process owns the HTTP port and the worker.
    if (process.env.SHARDING_MANAGER === 'true') {
      const bot = await startDiscordBot(engine, runtime.config, logger, { redisRateLimiter: false });
      closers.push(() => bot.close());
      logger.info('Discord shard ready', { shards: bot.client.shard?.ids });
      return;
    }
    if (runtime.config.SOLESCOPE_WORKER) {
      const worker = await startWorker({ engine, redisUrl: redis.url });
      closers.push(() => worker.close());
      logger.info('job worker ready', { queues: worker.queues });
    }
    const app = createHttpApp(engine, {
      mounts: [{ path: '/api/webhooks', router: createWebhookRouter(engine) }],
      readiness: {
        redis: async () => {
          const url = new URL(redis.url);
          const ok = await portAnswers(url.hostname, Number(url.port || 6379));
          return { ok, detail: ok ? 'reachable' : `no answer at ${url.host}` };
        },
      },
    });
    const runner = engine.services.jobs;
    if (runner instanceof BullJobRunner) mountQueueDashboard(app as Parameters<typeof mountQueueDashboard>[0], runner, runtime.config.SOLESCOPE_ADMIN_TOKEN);
    const server = await serveHttp(app, { port: runtime.config.PORT, host: runtime.config.HOST });
    closers.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : runtime.config.PORT;
    logger.info('solescope HTTP listening', { port, commands: engine.commands.size, store: engine.services.store.dialect });
    if (runtime.config.DISCORD_TOKEN && runtime.config.SHARDS) {
      const manager = await startShardManager(runtime.config, logger);
      closers.push(() => stopShardManager(manager));
      logger.info('Discord shards spawned', { shards: runtime.config.SHARDS });
    } else if (runtime.config.DISCORD_TOKEN) {
      const bot = await startDiscordBot(engine, runtime.config, logger, { redisRateLimiter: false });
      closers.push(() => bot.close());
      logger.info('Discord bot ready', { user: bot.client.user?.tag });
    }
  } catch (err) {
    const error = toEngineError(err);
    logger.error('start failed', { code: error.code, message: error.message, err: error.cause ?? error });
    process.stderr.write(`solescope could not start: ${error.message}\n`);
    await closeAll();
    process.exit(error.spec.exitCode);
  }
}

await main();
