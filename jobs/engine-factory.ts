/**
 * The default engine of a worker process and of sandboxed job children: the shared composition root
 * (engine/compose.ts: config from the environment, the store — SQLite file or Postgres from `DATABASE_URL` —
 * and every plugin in `plugins/`) plus the BullMQ runner, so jobs can enqueue jobs. Same code on every
 * machine: a GPU box runs this with the same `REDIS_URL` and `DATABASE_URL` and gets the same registry of jobs.
 */
import { createLogger, loadConfig, type Engine } from '../engine/index.ts';
import { createRuntime } from '../engine/compose.ts';
import { createBullJobRunner } from './runner.ts';

export { PLUGINS_DIR } from '../engine/compose.ts';

/** Build a started engine for job processing. */
export async function createWorkerEngine(env: Record<string, string | undefined> = process.env): Promise<Engine> {
  const config = loadConfig(env);
  const logger = createLogger({ level: config.LOG_LEVEL }).child({ process: 'worker', pid: process.pid });
  const { engine } = await createRuntime({
    env,
    logger,
    configure: (e) => e.useJobRunner(createBullJobRunner({ engine: e, ...(env.SOLESCOPE_JOBS_PREFIX ? { prefix: env.SOLESCOPE_JOBS_PREFIX } : {}) })),
  });
  return engine;
}

export default createWorkerEngine;
