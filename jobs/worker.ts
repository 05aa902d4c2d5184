/**
 * Worker bootstrap: one BullMQ `Worker` per registered job definition. Definitions with a `processorFile`
 * (heavy tfjs work) run sandboxed — a child process per BullMQ's sandboxed processors, which builds its own
 * engine with the same plugins — so a long synchronous tensor op can never starve lock renewal. The rest
 * run in this process against the given engine. Active jobs can be cancelled from any process (pub/sub).
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Queue, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Engine } from '../engine/index.ts';
import { checkpointsFor } from './checkpoints.ts';
import { createRedisConnection, DEFAULT_PREFIX, DEFAULT_REDIS_URL, parseQueueConcurrency, queueNameFor } from './connection.ts';
import { processJob } from './process-job.ts';
import { cancelChannel } from './runner.ts';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The sandbox entry BullMQ forks for sandboxed jobs. */
export const SANDBOX_PROCESSOR_FILE = path.join(here, 'sandbox-processor.ts');

/** The module children import to build their engine unless `engineFactory` says otherwise. */
export const DEFAULT_ENGINE_FACTORY = path.join(here, 'engine-factory.ts');

/** Options of {@link startJobWorkers}. */
export interface JobWorkerOptions {
  /** The engine whose job registry is served (and which runs non-sandboxed jobs). */
  readonly engine: Engine;
  readonly redisUrl?: string;
  /** Key prefix; must match the runner's (default `solescope`). */
  readonly prefix?: string;
  /** Only these job names (default: every registered job). */
  readonly jobs?: readonly string[];
  /**
   * `auto` (default): definitions with a `processorFile` run in a child process; `always`: every job does;
   * `never`: everything runs in this process (tests of pure logic, tiny deployments).
   */
  readonly sandbox?: 'auto' | 'always' | 'never';
  /**
   * Module the sandboxed child imports to build its engine: its default export (or `createWorkerEngine`)
   * is `() => Promise<Engine>`. Default: `jobs/engine-factory.ts` (config from env, store, all plugins).
   */
  readonly engineFactory?: string;
  /** Extra environment for sandboxed children. */
  readonly childEnv?: Readonly<Record<string, string>>;
  /** Lock lease; a worker that dies loses its jobs to another worker after this (default 30 s). */
  readonly lockDurationMs?: number;
  /** How often stalled jobs are looked for (default 30 s). */
  readonly stalledIntervalMs?: number;
  /** Times a job may stall (its worker died) before it fails (default 2). */
  readonly maxStalledCount?: number;
  /** Per-queue cap on active jobs across ALL workers (BullMQ global concurrency), by job name. Default: `SOLESCOPE_QUEUE_CONCURRENCY`. */
  readonly globalConcurrency?: Readonly<Record<string, number>>;
}

/** Running workers. */
export interface JobWorkers {
  readonly workers: readonly Worker[];
  /** Names of the queues served. */
  readonly queues: readonly string[];
  /** Stop taking jobs, let active ones finish (or cancel them with `force`), close connections. */
  close(force?: boolean): Promise<void>;
}

function tsxImportArgs(): string[] {
  // Sandboxed children import TypeScript: register tsx in them whatever started this process (tsx CLI,
  // vitest, plain node with --import tsx).
  const loader = createRequire(import.meta.url).resolve('tsx');
  return ['--import', pathToFileURL(loader).href];
}

/** Start workers for the engine's jobs. */
export async function startJobWorkers(options: JobWorkerOptions): Promise<JobWorkers> {
  const { engine } = options;
  const redisUrl = options.redisUrl ?? engine.config.REDIS_URL ?? DEFAULT_REDIS_URL;
  const prefix = options.prefix ?? DEFAULT_PREFIX;
  const sandbox = options.sandbox ?? 'auto';
  const names = options.jobs ?? [...engine.jobs.keys()];
  const connection = createRedisConnection(redisUrl);
  let checkpointRedis: Redis | undefined;
  const checkpoints = checkpointsFor(engine, () => (checkpointRedis ??= createRedisConnection(redisUrl)), prefix);
  const workers: Worker[] = [];
  const byQueue = new Map<string, Worker>();

  for (const name of names) {
    const definition = engine.jobs.get(name);
    if (!definition) throw new Error(`startJobWorkers: no job named "${name}" is registered`);
    const queueName = queueNameFor(name);
    const sandboxed = sandbox === 'always' || (sandbox === 'auto' && definition.processorFile !== undefined);
    const common = {
      connection,
      prefix,
      concurrency: Math.max(1, definition.concurrency ?? 1),
      lockDuration: options.lockDurationMs ?? 30_000,
      stalledInterval: options.stalledIntervalMs ?? 30_000,
      maxStalledCount: options.maxStalledCount ?? 2,
      autorun: true,
    };
    const worker = sandboxed
      ? new Worker(queueName, SANDBOX_PROCESSOR_FILE, {
          ...common,
          useWorkerThreads: false,
          workerForkOptions: {
            execArgv: tsxImportArgs(),
            env: {
              ...process.env,
              ...options.childEnv,
              SOLESCOPE_ENGINE_FACTORY: options.engineFactory ?? process.env.SOLESCOPE_ENGINE_FACTORY ?? DEFAULT_ENGINE_FACTORY,
              SOLESCOPE_JOBS_PREFIX: prefix,
              REDIS_URL: redisUrl,
            },
          },
        })
      : new Worker(queueName, (job: Job, _token?: string, signal?: AbortSignal) => processJob(engine, job, checkpoints, signal), common);
    worker.on('error', (err) => engine.logger.warn('worker error', { queue: queueName, err }));
    worker.on('failed', (job, err) => engine.logger.info('job attempt failed', { queue: queueName, jobId: job?.id, reason: err.message }));
    workers.push(worker);
    byQueue.set(queueName, worker);
    const limit = (options.globalConcurrency ?? parseQueueConcurrency(process.env.SOLESCOPE_QUEUE_CONCURRENCY))[name];
    if (limit !== undefined) {
      const queue = new Queue(queueName, { connection, prefix });
      await queue.setGlobalConcurrency(limit);
      await queue.close();
    }
  }

  // Cancellation of active jobs: whichever worker holds the job aborts it.
  const subscriber = createRedisConnection(redisUrl);
  await subscriber.subscribe(cancelChannel(prefix));
  subscriber.on('message', (_channel: string, message: string) => {
    try {
      const { queue, id } = JSON.parse(message) as { queue: string; id: string };
      const worker = byQueue.get(queue);
      if (worker?.cancelJob(id, 'cancelled')) engine.logger.info('job cancelled', { queue, jobId: id });
    } catch (err) {
      engine.logger.warn('bad cancel message', { err });
    }
  });

  await Promise.all(workers.map((w) => w.waitUntilReady()));
  engine.logger.info('job workers started', { queues: [...byQueue.keys()], prefix });

  let closing: Promise<void> | undefined;
  return {
    workers,
    queues: [...byQueue.keys()],
    close(force = false) {
      closing ??= (async () => {
        subscriber.disconnect();
        await Promise.allSettled(workers.map((w) => w.close(force)));
        await connection.quit().catch(() => connection.disconnect());
        if (checkpointRedis) await checkpointRedis.quit().catch(() => checkpointRedis?.disconnect());
      })();
      return closing;
    },
  };
}
