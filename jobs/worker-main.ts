/**
 * `npm run worker`: a process that only processes jobs — the way to add capacity or a GPU machine (same
 * code, same `REDIS_URL` and `DATABASE_URL`; tfjs-node-gpu is picked when installed). `npm start` calls
 * {@link startWorker} with its own engine to run one worker next to the servers (embedded mode).
 */
import type { Engine } from '../engine/index.ts';
import { createWorkerEngine } from './engine-factory.ts';
import { startJobWorkers, type JobWorkerOptions, type JobWorkers } from './worker.ts';

/** Options of {@link startWorker}. */
export interface StartWorkerOptions extends Partial<Omit<JobWorkerOptions, 'engine'>> {
  /** Engine to serve (default: a fresh one from `createWorkerEngine()`, with every plugin). */
  readonly engine?: Engine;
}

/** A running worker. `close()` drains (active jobs finish) unless forced; closes the engine it created. */
export interface RunningWorker extends JobWorkers {
  readonly engine: Engine;
}

/** Start job workers for every registered job. */
export async function startWorker(options: StartWorkerOptions = {}): Promise<RunningWorker> {
  const owned = options.engine === undefined;
  const engine = options.engine ?? (await createWorkerEngine());
  const { engine: _e, ...rest } = options;
  const workers = await startJobWorkers({ ...rest, engine, ...(process.env.SOLESCOPE_JOBS_PREFIX && !rest.prefix ? { prefix: process.env.SOLESCOPE_JOBS_PREFIX } : {}) });
  return {
    ...workers,
    engine,
    async close(force = false) {
      await workers.close(force);
      if (owned) await engine.close();
    },
  };
}

/**
 * Run a worker until SIGTERM/SIGINT: stop taking jobs, let the active ones finish (a second signal
 * forces), close. Jobs cut short by a hard kill are retried by another worker from their last checkpoint.
 */
export async function runWorkerMain(options: StartWorkerOptions = {}): Promise<void> {
  const worker = await startWorker(options);
  const log = worker.engine.logger;
  log.info('worker ready', { queues: worker.queues, pid: process.pid });
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      log.warn('second signal: cancelling active jobs', { signal });
      void worker.close(true).finally(() => process.exit(1));
      return;
    }
    stopping = true;
    log.info('draining worker', { signal });
    worker.close(false).then(
      () => process.exit(0),
      (err: unknown) => {
        log.error('worker close failed', { err });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
