/**
 * The job-runner contract. Its real implementation is BullMQ in `jobs/`; the engine ships an in-process
 * runner so the CLI and tests work without Redis (jobs then run in the calling process, one at a time).
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { ProgressEvent } from './reply.ts';
import type { AnyJob } from './define.ts';
import type { JobContext, Services } from './context.ts';
import type { Engine } from './engine.ts';
import { EngineError, toEngineError } from './errors.ts';
import { parseInput } from './schema.ts';

/** States a job goes through (BullMQ's names). */
export type JobState = 'waiting' | 'delayed' | 'active' | 'completed' | 'failed' | 'cancelled' | 'unknown';

/** A snapshot of one job. */
export interface JobInfo {
  readonly id: string;
  readonly name: string;
  readonly state: JobState;
  readonly progress?: ProgressEvent;
  /** 1-based position among waiting jobs, when waiting. */
  readonly queuePosition?: number;
  readonly data?: unknown;
  readonly result?: unknown;
  readonly error?: { code: string; message: string };
  readonly attemptsMade?: number;
  readonly createdAt?: number;
  readonly finishedAt?: number;
  readonly guildId?: string;
  readonly requestedBy?: string;
}

/** Options when enqueuing. */
export interface EnqueueOptions {
  readonly guildId?: string;
  readonly requestedBy?: string;
  /** Deterministic id (de-duplicates identical requests). */
  readonly jobId?: string;
  readonly priority?: number;
  /** Parent job (flows): the child's result is readable by the parent. */
  readonly parent?: { id: string; queue: string };
}

/** Events a runner emits. */
export interface JobRunnerEvents {
  progress: [jobId: string, event: ProgressEvent];
  completed: [jobId: string, result: unknown];
  failed: [jobId: string, error: { code: string; message: string }];
}

/** Queue-agnostic job operations used by commands and transports. */
export interface JobRunner {
  readonly kind: 'inline' | 'bullmq';
  enqueue(name: string, data: unknown, options?: EnqueueOptions): Promise<JobInfo>;
  get(id: string): Promise<JobInfo | undefined>;
  list(filter?: { states?: readonly JobState[]; guildId?: string; limit?: number }): Promise<JobInfo[]>;
  cancel(id: string): Promise<boolean>;
  /**
   * Wait for a job to finish, reporting progress and queue position on the way. Resolves with the result;
   * rejects with the job's EngineError when it failed.
   */
  waitFor(id: string, onProgress?: (event: ProgressEvent) => void, signal?: AbortSignal): Promise<unknown>;
  /** Health for `status` and `/readyz`. */
  health(): Promise<{ ok: boolean; detail: string; counts?: Record<string, number> }>;
  close(): Promise<void>;
}

/**
 * Runs jobs in this process, sequentially, with the same validation, progress and retry contract as the
 * BullMQ runner. Checkpoints live in memory (there is no crash to resume from in one process).
 */
export class InlineJobRunner implements JobRunner {
  readonly kind = 'inline' as const;
  private readonly jobs = new Map<string, JobInfo & { controller: AbortController }>();
  private readonly checkpoints = new Map<string, Uint8Array | Record<string, unknown>>();
  private readonly events = new EventEmitter<JobRunnerEvents>();
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly engine: Engine,
    private readonly services: () => Services,
  ) {
    this.events.setMaxListeners(0);
  }

  private job(name: string): AnyJob {
    const job = this.engine.jobs.get(name);
    if (!job) throw new EngineError('NOT_FOUND', `No job named "${name}" is registered.`);
    return job;
  }

  async enqueue(name: string, data: unknown, options: EnqueueOptions = {}): Promise<JobInfo> {
    const job = this.job(name);
    const parsed = parseInput(job.data, data);
    const id = options.jobId ?? randomUUID();
    const existing = this.jobs.get(id);
    if (existing && (existing.state === 'waiting' || existing.state === 'active')) return this.snapshot(existing);
    const controller = new AbortController();
    const info = {
      id,
      name,
      state: 'waiting' as JobState,
      data: parsed,
      createdAt: Date.now(),
      controller,
      attemptsMade: 0,
      ...(options.guildId !== undefined ? { guildId: options.guildId } : {}),
      ...(options.requestedBy !== undefined ? { requestedBy: options.requestedBy } : {}),
    };
    this.jobs.set(id, info);
    this.chain = this.chain.then(() => this.execute(id, job, parsed));
    return this.snapshot(info);
  }

  private update(id: string, patch: Partial<JobInfo>): void {
    const current = this.jobs.get(id);
    if (current) this.jobs.set(id, { ...current, ...patch });
  }

  private async execute(id: string, job: AnyJob, data: unknown): Promise<void> {
    const entry = this.jobs.get(id);
    if (!entry || entry.state === 'cancelled') return;
    const attempts = Math.max(1, job.attempts ?? 3);
    const services = this.services();
    for (let attempt = 1; attempt <= attempts; attempt++) {
      this.update(id, { state: 'active', attemptsMade: attempt - 1 });
      const ctx: JobContext = {
        jobId: id,
        attempt,
        logger: services.logger,
        services,
        engine: this.engine,
        signal: entry.controller.signal,
        progress: (event) => {
          this.update(id, { progress: event });
          this.events.emit('progress', id, event);
        },
        checkpoint: async (state) => {
          this.checkpoints.set(id, state);
        },
        lastCheckpoint: async () => this.checkpoints.get(id),
      };
      try {
        const result = await job.run(data, ctx);
        this.update(id, { state: 'completed', result, finishedAt: Date.now(), attemptsMade: attempt });
        this.checkpoints.delete(id);
        this.events.emit('completed', id, result);
        return;
      } catch (err) {
        const error = toEngineError(err);
        const cancelled = entry.controller.signal.aborted;
        if (cancelled || !error.spec.retryable || attempt === attempts || error.code === 'INTERNAL' && attempt === attempts) {
          const summary = { code: cancelled ? 'CONFLICT' : error.code, message: cancelled ? 'The job was cancelled.' : error.message };
          this.update(id, { state: cancelled ? 'cancelled' : 'failed', error: summary, finishedAt: Date.now(), attemptsMade: attempt });
          services.logger.warn('job failed', { jobId: id, job: job.name, code: error.code, err: error.cause ?? error });
          this.events.emit('failed', id, summary);
          return;
        }
        // Exponential backoff as the BullMQ runner does, short because this runs in the caller's process.
        await new Promise((r) => setTimeout(r, 50 * 2 ** (attempt - 1)));
      }
    }
  }

  private snapshot(info: JobInfo & { controller?: AbortController }): JobInfo {
    const { controller: _controller, ...rest } = info;
    if (rest.state !== 'waiting') return rest;
    const waiting = [...this.jobs.values()].filter((j) => j.state === 'waiting');
    return { ...rest, queuePosition: waiting.findIndex((j) => j.id === info.id) + 1 };
  }

  async get(id: string): Promise<JobInfo | undefined> {
    const info = this.jobs.get(id);
    return info ? this.snapshot(info) : undefined;
  }

  async list(filter: { states?: readonly JobState[]; guildId?: string; limit?: number } = {}): Promise<JobInfo[]> {
    return [...this.jobs.values()]
      .filter((j) => !filter.states || filter.states.includes(j.state))
      .filter((j) => !filter.guildId || j.guildId === filter.guildId)
      .reverse()
      .slice(0, filter.limit ?? 50)
      .map((j) => this.snapshot(j));
  }

  async cancel(id: string): Promise<boolean> {
    const info = this.jobs.get(id);
    if (!info || info.state === 'completed' || info.state === 'failed' || info.state === 'cancelled') return false;
    info.controller.abort();
    if (info.state === 'waiting') {
      this.update(id, { state: 'cancelled', finishedAt: Date.now() });
      this.events.emit('failed', id, { code: 'CONFLICT', message: 'The job was cancelled.' });
    }
    return true;
  }

  waitFor(id: string, onProgress?: (event: ProgressEvent) => void, signal?: AbortSignal): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const settle = (): boolean => {
        const info = this.jobs.get(id);
        if (!info) {
          reject(new EngineError('NOT_FOUND', `No job with id ${id}.`));
          return true;
        }
        if (info.state === 'completed') resolve(info.result);
        else if (info.state === 'failed' || info.state === 'cancelled') {
          const e = info.error ?? { code: 'CONFLICT', message: 'The job was cancelled.' };
          reject(new EngineError(e.code as never, e.message));
        } else return false;
        return true;
      };
      if (settle()) return;
      const onP = (jobId: string, event: ProgressEvent): void => {
        if (jobId === id) onProgress?.(event);
      };
      const onDone = (jobId: string): void => {
        if (jobId !== id) return;
        cleanup();
        settle();
      };
      const onAbort = (): void => {
        cleanup();
        reject(new EngineError('TIMEOUT', 'Stopped waiting for the job; it keeps running.'));
      };
      const cleanup = (): void => {
        this.events.off('progress', onP);
        this.events.off('completed', onDone);
        this.events.off('failed', onDone);
        signal?.removeEventListener('abort', onAbort);
      };
      this.events.on('progress', onP);
      this.events.on('completed', onDone);
      this.events.on('failed', onDone);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  async health(): Promise<{ ok: boolean; detail: string; counts: Record<string, number> }> {
    const counts: Record<string, number> = {};
    for (const j of this.jobs.values()) counts[j.state] = (counts[j.state] ?? 0) + 1;
    return { ok: true, detail: 'in-process runner (no Redis)', counts };
  }

  async close(): Promise<void> {
    for (const j of this.jobs.values()) if (j.state === 'active' || j.state === 'waiting') j.controller.abort();
    await this.chain.catch(() => undefined);
  }
}
