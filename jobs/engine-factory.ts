/**
 * The default engine of a worker process and of sandboxed job children: configuration from the
 * environment, the store (SQLite file or Postgres from `DATABASE_URL`), every plugin in `plugins/`, and the
 * BullMQ runner (so jobs can enqueue jobs). Same code on every machine: a GPU box runs this with the same
 * `REDIS_URL` and `DATABASE_URL` and gets the same registry of jobs.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createEngine, createLogger, loadConfig, loadPlugins, type Engine } from '../engine/index.ts';
import { openStore } from '../engine/store/index.ts';
import { createBullJobRunner } from './runner.ts';

/** Where the plugins live (next to `jobs/`). */
export const PLUGINS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../plugins');

/** Build a started engine for job processing. */
export async function createWorkerEngine(env: Record<string, string | undefined> = process.env): Promise<Engine> {
  const config = loadConfig(env);
  const logger = createLogger({ level: config.LOG_LEVEL }).child({ process: 'worker', pid: process.pid });
  const store = await openStore({ url: config.DATABASE_URL, dataDir: config.dataDir, logger });
  const engine = createEngine({ config, logger, store });
  engine.useJobRunner(createBullJobRunner({ engine, ...(env.SOLESCOPE_JOBS_PREFIX ? { prefix: env.SOLESCOPE_JOBS_PREFIX } : {}) }));
  await engine.registerAll(await loadPlugins(PLUGINS_DIR));
  await engine.start();
  return engine;
}

export default createWorkerEngine;
