/**
 * `npm start`: the main job on an embedded default. HTTP server on PORT with the SQLite store in ./data,
 * Redis found or started for the job queue, one in-process worker (unless SOLESCOPE_WORKER=false), and
 * the Discord bot when DISCORD_TOKEN is set. SIGTERM/SIGINT close everything in reverse order.
 */
import type { Server } from 'node:http';
import { createLogger, loadConfig, toEngineError } from '../engine/index.ts';
import { createHttpApp, serveHttp } from './http.ts';
import { ensureRedis } from './redis.ts';
import { createRuntime } from './runtime.ts';

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
  const shutdown = async (signal: string): Promise<void> => {
    logger.info('shutting down', { signal });
    for (const close of closers.reverse()) {
      await close().catch((err: unknown) => logger.warn('close failed', { err }));
    }
    process.exit(0);
  };
  try {
    const redis = await ensureRedis(config.REDIS_URL, config.dataDir, logger);
    closers.push(() => redis.stop());
    const env = { ...process.env, REDIS_URL: redis.url };
    const runtime = await createRuntime({ env, logger, processMetrics: true });
    closers.push(() => runtime.close());
    const app = createHttpApp(runtime.engine);
    const server: Server = await serveHttp(app, { port: config.PORT, host: config.HOST });
    closers.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : config.PORT;
    logger.info('solescope HTTP listening', { port, commands: runtime.engine.commands.size, store: runtime.engine.services.store.dialect });
  } catch (err) {
    const error = toEngineError(err);
    logger.error('start failed', { code: error.code, message: error.message, err: error.cause ?? error });
    process.stderr.write(`solescope could not start: ${error.message}\n`);
    for (const close of closers.reverse()) await close().catch(() => undefined);
    process.exit(error.spec.exitCode);
  }
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}

await main();
