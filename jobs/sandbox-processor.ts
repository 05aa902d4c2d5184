/**
 * The sandboxed processor BullMQ forks for heavy jobs. The child builds its own engine once (same plugins,
 * same store, through the module named by `SOLESCOPE_ENGINE_FACTORY`), then runs each job it is handed by
 * name through the shared processor body. Progress goes back to the parent over IPC (BullMQ proxies
 * `updateProgress`); checkpoints go straight to the store.
 */
import { pathToFileURL } from 'node:url';
import type { Engine } from '../engine/index.ts';
import { checkpointsFor, type CheckpointStore } from './checkpoints.ts';
import { createRedisConnection, DEFAULT_PREFIX, DEFAULT_REDIS_URL } from './connection.ts';
import { processJob, type ProcessableJob } from './process-job.ts';

/** What an engine-factory module exports. */
export type EngineFactory = () => Promise<Engine>;

let ready: Promise<{ engine: Engine; checkpoints: CheckpointStore }> | undefined;

async function boot(): Promise<{ engine: Engine; checkpoints: CheckpointStore }> {
  const file = process.env.SOLESCOPE_ENGINE_FACTORY;
  if (!file) throw new Error('SOLESCOPE_ENGINE_FACTORY is not set for the sandboxed processor');
  const mod = (await import(pathToFileURL(file).href)) as { default?: EngineFactory; createWorkerEngine?: EngineFactory };
  const factory = mod.default ?? mod.createWorkerEngine;
  if (typeof factory !== 'function') throw new Error(`${file} exports no engine factory`);
  const engine = await factory();
  const prefix = process.env.SOLESCOPE_JOBS_PREFIX ?? DEFAULT_PREFIX;
  const checkpoints = checkpointsFor(engine, () => createRedisConnection(process.env.REDIS_URL ?? DEFAULT_REDIS_URL), prefix);
  // BullMQ stops children with SIGTERM after the current job: close the engine (store, models) then.
  process.once('beforeExit', () => void engine.close());
  return { engine, checkpoints };
}

// If the parent worker dies (SIGKILL, OOM), BullMQ hands its jobs to another worker once the lock lapses.
// An orphaned child must not keep training and writing to the registry behind that worker's back.
process.on('disconnect', () => process.exit(1));

/** BullMQ sandbox entry: default export `(job, token, signal) => result`. */
export default async function sandboxedProcessor(job: ProcessableJob, _token?: string, signal?: AbortSignal): Promise<unknown> {
  ready ??= boot().catch((err: unknown) => {
    ready = undefined; // let the next job try again (e.g. the store was briefly unreachable)
    throw err;
  });
  const { engine, checkpoints } = await ready;
  return processJob(engine, job, checkpoints, signal);
}
