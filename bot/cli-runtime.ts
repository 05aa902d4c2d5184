/**
 * The CLI's runtime: the same composition as the server, with logs kept quiet unless LOG_LEVEL asks.
 *
 * Jobs: with `REDIS_URL` set, jobs go to the shared BullMQ queues, so `train --wait` from a laptop is
 * processed by the server's (or a GPU machine's) workers and followed through QueueEvents. When no worker
 * is online for the queue, the CLI starts an embedded one for the life of the command, so the same
 * command also works on a single machine. Without `REDIS_URL` jobs run in-process.
 */
import { createLogger, type Engine, type EnqueueOptions, type JobInfo, type JobRunner, type JobState, type ProgressEvent } from '../engine/index.ts';
import { createBullJobRunner, startWorker, type BullJobRunner, type RunningWorker } from '../jobs/index.ts';
import { createRuntime, type Runtime } from './runtime.ts';

/** A BullMQ runner that starts an in-process worker when a job would otherwise wait for nobody. */
export class EmbeddedWorkerRunner implements JobRunner {
  readonly kind = 'bullmq' as const;
  private worker: Promise<RunningWorker> | undefined;

  constructor(
    private readonly inner: BullJobRunner,
    private readonly engine: Engine,
  ) {}

  /** Whether this CLI process started its own worker. */
  get startedWorker(): boolean {
    return this.worker !== undefined;
  }

  async enqueue(name: string, data: unknown, options?: EnqueueOptions): Promise<JobInfo> {
    const info = await this.inner.enqueue(name, data, options);
    const online = await this.inner.queue(name).getWorkersCount().catch(() => 0);
    if (online === 0 && !this.worker) {
      this.engine.logger.info('no worker online: starting one in this process', { job: name });
      this.worker = startWorker({ engine: this.engine, redisUrl: this.inner.redisUrl, prefix: this.inner.prefix });
      await this.worker;
    }
    return info;
  }

  get(id: string): Promise<JobInfo | undefined> {
    return this.inner.get(id);
  }

  list(filter?: { states?: readonly JobState[]; guildId?: string; limit?: number }): Promise<JobInfo[]> {
    return this.inner.list(filter);
  }

  cancel(id: string): Promise<boolean> {
    return this.inner.cancel(id);
  }

  waitFor(id: string, onProgress?: (event: ProgressEvent) => void, signal?: AbortSignal): Promise<unknown> {
    return this.inner.waitFor(id, onProgress, signal);
  }

  health(): Promise<{ ok: boolean; detail: string; counts?: Record<string, number> }> {
    return this.inner.health();
  }

  async close(): Promise<void> {
    // Let a job the embedded worker took finish before the CLI exits (it was this command's job).
    if (this.worker) await (await this.worker).close().catch(() => undefined);
    await this.inner.close();
  }
}

/** Build the runtime the CLI runs commands on. */
export async function createCliRuntime(env: Record<string, string | undefined> = process.env): Promise<Runtime> {
  // CLI output is for people and scripts: only warnings and errors reach stderr by default.
  const logger = createLogger({ level: env.LOG_LEVEL ?? 'warn' });
  return createRuntime({
    env,
    logger,
    configure: (engine, config) => {
      if (config.REDIS_URL) engine.useJobRunner(new EmbeddedWorkerRunner(createBullJobRunner({ engine, redisUrl: config.REDIS_URL }), engine));
    },
  });
}
