/**
 * The one processor body, shared by in-process workers and sandboxed children: resolve the job definition
 * by name from the engine registry, validate the data again, build a `JobContext` (progress → BullMQ,
 * checkpoints → store), run, and translate failures into BullMQ's retry semantics:
 * not retryable (bad data, forbidden, …) → `UnrecoverableError`; retryable → plain error (backoff + retry).
 */
import { UnrecoverableError } from 'bullmq';
import { formatZodError, toEngineError, type Engine, type JobContext, type ProgressEvent } from '../engine/index.ts';
import { CANCELLED_MESSAGE, encodeError, encodeProgress, unwrapJobData } from './codec.ts';
import { checkpointKey, type CheckpointStore } from './checkpoints.ts';

/** What the processor needs of a BullMQ job (the real `Job` and the sandbox's proxy both fit). */
export interface ProcessableJob {
  readonly id?: string | undefined;
  readonly name: string;
  readonly data: unknown;
  readonly queueName: string;
  readonly attemptsMade: number;
  readonly attemptsStarted?: number;
  updateProgress(progress: object | number): Promise<void>;
}

/** Run one job through its engine definition. Resolves with the job's result (stored as the return value). */
export async function processJob(
  engine: Engine,
  job: ProcessableJob,
  checkpoints: CheckpointStore,
  signal: AbortSignal = new AbortController().signal,
): Promise<unknown> {
  const definition = engine.jobs.get(job.name);
  if (!definition) {
    throw new UnrecoverableError(encodeError('NOT_FOUND', `No job named "${job.name}" is registered in this worker.`));
  }
  // Validated again here: the queue is shared, so anything (an older producer, a hand-made job) can be in it.
  const parsed = definition.data.safeParse(unwrapJobData(job.data).payload);
  if (!parsed.success) {
    throw new UnrecoverableError(encodeError('BAD_INPUT', `Job data of "${job.name}" is invalid: ${formatZodError(parsed.error)}`));
  }
  const jobId = job.id ?? 'unknown';
  const key = checkpointKey(job.queueName, jobId);
  const logger = engine.logger.child({ jobId, job: job.name });
  // A job that stalled (its worker died) restarts without a new failed attempt: attemptsStarted counts both.
  const attempt = Math.max(job.attemptsStarted ?? 0, job.attemptsMade + 1);
  const ctx: JobContext = {
    jobId,
    attempt,
    logger,
    services: engine.services,
    engine,
    signal,
    progress: async (event: ProgressEvent) => {
      try {
        await job.updateProgress(encodeProgress(event));
      } catch (err) {
        // Progress is best effort: a Redis blip must not fail hours of training.
        logger.warn('progress update failed', { err });
      }
    },
    checkpoint: (state) => checkpoints.save(key, state),
    lastCheckpoint: () => checkpoints.load(key),
  };
  try {
    const result = await definition.run(parsed.data, ctx);
    await checkpoints.clear(key).catch((err: unknown) => logger.warn('checkpoint cleanup failed', { err }));
    return result ?? null;
  } catch (err) {
    if (signal.aborted) throw new UnrecoverableError(encodeError('CONFLICT', CANCELLED_MESSAGE));
    const error = toEngineError(err);
    if (error.code === 'INTERNAL') logger.error('job attempt failed', { attempt, err: error.cause ?? error });
    else logger.warn('job attempt failed', { attempt, code: error.code, message: error.message });
    const reason = encodeError(error.code, error.message);
    if (!error.spec.retryable) throw new UnrecoverableError(reason);
    throw new Error(reason, { cause: err });
  }
}
