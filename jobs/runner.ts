/**
 * The BullMQ implementation of the engine's `JobRunner`: one queue per job definition on Redis, data
 * validated with the definition's zod schema before anything reaches Redis, bounded retries with
 * exponential backoff, a per-guild cap on unfinished jobs, cancellation across processes, and
 * `QueueEvents` turned into the runner's `progress` / `completed` / `failed` events.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { FlowProducer, Queue, QueueEvents, type Job, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  EngineError,
  parseInput,
  type Engine,
  type EnqueueOptions,
  type JobInfo,
  type JobRunner,
  type JobRunnerEvents,
  type JobState,
  type ProgressEvent,
} from '../engine/index.ts';
import { CANCELLED_MESSAGE, decodeError, decodeProgress, unwrapJobData, type JobEnvelope } from './codec.ts';
import { createRedisConnection, DEFAULT_PREFIX, DEFAULT_REDIS_URL, maxJobsPerGuildFromEnv, queueNameFor } from './connection.ts';

/** Options of {@link createBullJobRunner}. */
export interface BullJobRunnerOptions {
  /** The engine whose job registry defines names and data schemas. */
  readonly engine: Engine;
  /** Redis URL (default `REDIS_URL` from the engine config, else 127.0.0.1:6379). */
  readonly redisUrl?: string;
  /** Key prefix; tests pass a random one so they never see each other's jobs (default `solescope`). */
  readonly prefix?: string;
  /** Unfinished (waiting, delayed, active) jobs one guild may hold across all queues (default `SOLESCOPE_MAX_JOBS_PER_GUILD` or 2). */
  readonly maxJobsPerGuild?: number;
  /** First retry delay; later ones double (default 2000 ms). */
  readonly backoffMs?: number;
  /** Attempts for definitions that do not say (default 3). */
  readonly defaultAttempts?: number;
}

/** One child of a flow (see {@link BullJobRunner.enqueueFlow}). */
export interface FlowChildSpec {
  readonly name: string;
  readonly data: unknown;
  /** Deterministic id so the parent can find its children's results. */
  readonly jobId?: string;
}

/** A parent job that starts when all its children finished (BullMQ flows). */
export interface FlowSpec {
  readonly name: string;
  readonly data: unknown;
  readonly options?: EnqueueOptions;
  readonly children: readonly FlowChildSpec[];
}

const WAITING_TYPES = ['wait', 'prioritized', 'waiting-children'] as const;

// Atomic per-guild admission: prune members whose job finished or vanished, then admit if under the cap.
// Members are `<queue>|<jobId>` scored by admission time; a member whose job hash does not exist yet is
// kept for a grace period (it was just admitted and is being added).
const ADMIT_LUA = `
local members = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #members, 2 do
  local m = members[i]
  local score = tonumber(members[i + 1])
  local sep = string.find(m, '|', 1, true)
  if sep then
    local jk = ARGV[1] .. ':' .. string.sub(m, 1, sep - 1) .. ':' .. string.sub(m, sep + 1)
    if redis.call('EXISTS', jk) == 0 then
      if tonumber(ARGV[4]) - score > tonumber(ARGV[5]) then redis.call('ZREM', KEYS[1], m) end
    elseif redis.call('HEXISTS', jk, 'finishedOn') == 1 then
      redis.call('ZREM', KEYS[1], m)
    end
  else
    redis.call('ZREM', KEYS[1], m)
  end
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
redis.call('PEXPIRE', KEYS[1], 604800000)
return 1
`;

/**
 * The BullMQ job runner. Cheap to create: Redis connections open on first use, `QueueEvents` streams only
 * when something waits or listens.
 */
export class BullJobRunner implements JobRunner {
  readonly kind = 'bullmq' as const;
  /** Job events from every queue (progress, completed, failed), fed by `QueueEvents`. */
  readonly events = new EventEmitter<JobRunnerEvents>();
  readonly prefix: string;
  readonly redisUrl: string;
  private readonly engine: Engine;
  private readonly maxJobsPerGuild: number;
  private readonly backoffMs: number;
  private readonly defaultAttempts: number;
  private connection: Redis | undefined;
  private readonly queues = new Map<string, Queue>();
  private readonly queueEvents = new Map<string, { events: QueueEvents; connection: Redis }>();
  private flowProducer: FlowProducer | undefined;
  private closed = false;

  constructor(options: BullJobRunnerOptions) {
    this.engine = options.engine;
    this.redisUrl = options.redisUrl ?? options.engine.config.REDIS_URL ?? DEFAULT_REDIS_URL;
    this.prefix = options.prefix ?? DEFAULT_PREFIX;
    this.maxJobsPerGuild = options.maxJobsPerGuild ?? maxJobsPerGuildFromEnv();
    this.backoffMs = options.backoffMs ?? 2_000;
    this.defaultAttempts = options.defaultAttempts ?? 3;
    this.events.setMaxListeners(0);
  }

  /** The shared (non-blocking) Redis connection of this runner. */
  redis(): Redis {
    if (this.closed) throw new EngineError('UNAVAILABLE', 'The job runner is closed.');
    this.connection ??= createRedisConnection(this.redisUrl);
    return this.connection;
  }

  /** Names of the queues this runner knows: one per registered job definition. */
  queueNames(): string[] {
    return [...this.engine.jobs.keys()].map(queueNameFor);
  }

  /** The BullMQ queue of a job definition (created once). */
  queue(jobName: string): Queue {
    const name = queueNameFor(jobName);
    let queue = this.queues.get(name);
    if (!queue) {
      queue = new Queue(name, { connection: this.redis(), prefix: this.prefix });
      queue.on('error', (err) => this.engine.logger.warn('queue error', { queue: name, err }));
      this.queues.set(name, queue);
    }
    return queue;
  }

  /** Every queue of the registered jobs (the dashboard shows them). */
  allQueues(): Queue[] {
    return [...this.engine.jobs.keys()].map((name) => this.queue(name));
  }

  private definition(name: string): NonNullable<ReturnType<Engine['jobs']['get']>> {
    const job = this.engine.jobs.get(name);
    if (!job) throw new EngineError('NOT_FOUND', `No job named "${name}" is registered.`);
    return job;
  }

  private jobOptions(name: string, options: EnqueueOptions, jobId: string): JobsOptions {
    const definition = this.definition(name);
    return {
      jobId,
      attempts: Math.max(1, definition.attempts ?? this.defaultAttempts),
      backoff: { type: 'exponential', delay: this.backoffMs },
      // Finished jobs stay visible (`jobs`, the dashboard) for a while, then Redis forgets them.
      removeOnComplete: { age: 7 * 86_400, count: 1_000 },
      removeOnFail: { age: 30 * 86_400, count: 5_000 },
      ...(options.priority !== undefined ? { priority: options.priority } : {}),
      ...(options.parent ? { parent: { id: options.parent.id, queue: `${this.prefix}:${queueNameFor(options.parent.queue)}` } } : {}),
    };
  }

  /** Reserve a slot for a guild, or refuse with RATE_LIMITED. Returns a release function for a failed add. */
  private async admit(guildId: string | undefined, queueName: string, jobId: string): Promise<() => Promise<void>> {
    if (!guildId) return async () => undefined;
    const key = `${this.prefix}:solescope:guild-jobs:${guildId}`;
    const member = `${queueName}|${jobId}`;
    const ok = await this.redis().eval(ADMIT_LUA, 1, key, this.prefix, String(this.maxJobsPerGuild), member, String(Date.now()), '60000');
    if (Number(ok) !== 1) {
      throw new EngineError('RATE_LIMITED', `This server already has ${this.maxJobsPerGuild} jobs queued or running; wait for one to finish.`, {
        details: { limit: this.maxJobsPerGuild },
      });
    }
    return async () => {
      await this.redis().zrem(key, member);
    };
  }

  async enqueue(name: string, data: unknown, options: EnqueueOptions = {}): Promise<JobInfo> {
    const definition = this.definition(name);
    // Validate before anything reaches Redis: a bad request is a BAD_INPUT for the caller, not a failed job.
    const payload = parseInput(definition.data, data);
    const jobId = options.jobId ?? randomUUID();
    const queue = this.queue(name);
    const existing = options.jobId ? await queue.getJob(options.jobId) : undefined;
    if (existing) return this.info(existing, queue);
    const release = await this.admit(options.guildId, queue.name, jobId);
    const envelope: JobEnvelope = {
      payload,
      meta: {
        ...(options.guildId !== undefined ? { guildId: options.guildId } : {}),
        ...(options.requestedBy !== undefined ? { requestedBy: options.requestedBy } : {}),
      },
    };
    try {
      const job = await queue.add(name, envelope, this.jobOptions(name, options, jobId));
      return await this.info(job, queue);
    } catch (err) {
      await release().catch(() => undefined);
      throw new EngineError('UNAVAILABLE', 'Could not queue the job: Redis is not answering.', { cause: err });
    }
  }

  /**
   * Enqueue a parent job whose children run first (BullMQ `FlowProducer`): the parent starts once every
   * child finished. Children ids are deterministic when given, so the parent can look their results up.
   * Each payload is validated against its definition first; a guild slot is taken by the parent only.
   */
  async enqueueFlow(flow: FlowSpec): Promise<{ parent: JobInfo; children: JobInfo[] }> {
    const parentDef = this.definition(flow.name);
    const parentPayload = parseInput(parentDef.data, flow.data);
    const options = flow.options ?? {};
    const meta = {
      ...(options.guildId !== undefined ? { guildId: options.guildId } : {}),
      ...(options.requestedBy !== undefined ? { requestedBy: options.requestedBy } : {}),
    };
    const children = flow.children.map((child) => {
      const payload = parseInput(this.definition(child.name).data, child.data);
      const jobId = child.jobId ?? randomUUID();
      const opts = this.jobOptions(child.name, {}, jobId);
      // A failed trial must not fail the search: the parent ranks whatever finished.
      return { name: child.name, queueName: queueNameFor(child.name), data: { payload, meta }, opts: { ...opts, ignoreDependencyOnFailure: true } };
    });
    const parentId = options.jobId ?? randomUUID();
    const parentQueue = queueNameFor(flow.name);
    const release = await this.admit(options.guildId, parentQueue, parentId);
    this.flowProducer ??= new FlowProducer({ connection: this.redis(), prefix: this.prefix });
    try {
      const tree = await this.flowProducer.add({
        name: flow.name,
        queueName: parentQueue,
        data: { payload: parentPayload, meta },
        opts: this.jobOptions(flow.name, options, parentId),
        children,
      });
      const parent = await this.info(tree.job, this.queue(flow.name));
      const childInfos = await Promise.all((tree.children ?? []).map((c) => this.info(c.job, this.queue(c.job.name))));
      return { parent, children: childInfos };
    } catch (err) {
      await release().catch(() => undefined);
      throw new EngineError('UNAVAILABLE', 'Could not queue the jobs: Redis is not answering.', { cause: err });
    }
  }

  /** Find a job by id in any of the queues. */
  private async find(id: string): Promise<{ job: Job; queue: Queue } | undefined> {
    for (const name of this.engine.jobs.keys()) {
      const queue = this.queue(name);
      const job = await queue.getJob(id);
      if (job) return { job, queue };
    }
    return undefined;
  }

  private async position(queue: Queue, id: string): Promise<number | undefined> {
    // Workers take plain waiting jobs first (oldest first, from the tail of the `wait` list), then
    // prioritized ones by priority. LPOS/ZRANK keep this O(1)-ish in Redis instead of fetching every
    // waiting job: a long queue (a burst of webhook events) must not slow each enqueue down.
    const redis = this.redis();
    const waitKey = queue.keys.wait ?? queue.toKey('wait');
    const prioritizedKey = queue.keys.prioritized ?? queue.toKey('prioritized');
    const [waitLen, index] = await Promise.all([redis.llen(waitKey), redis.lpos(waitKey, id)]);
    if (index !== null && index !== undefined) return waitLen - Number(index);
    const rank = await redis.zrank(prioritizedKey, id);
    return rank !== null ? waitLen + rank + 1 : undefined;
  }

  private async info(job: Job, queue: Queue): Promise<JobInfo> {
    const raw = await job.getState();
    // The job hash was read before its state: a job that finished in between still carries the old
    // (empty) return value or failure reason, so read it again once the state says it finished. Without
    // this, a job that failed within milliseconds (bad input) could be reported as INTERNAL.
    if (((raw === 'completed' && (job.returnvalue === null || job.returnvalue === undefined)) || (raw === 'failed' && !job.failedReason)) && job.id) {
      const fresh = await queue.getJob(job.id);
      if (fresh) job = fresh;
    }
    const failed = raw === 'failed' ? decodeError(job.failedReason) : undefined;
    const state: JobState =
      raw === 'failed' && failed?.code === 'CONFLICT' && failed.message === CANCELLED_MESSAGE
        ? 'cancelled'
        : raw === 'waiting' || raw === 'prioritized' || raw === 'waiting-children'
          ? 'waiting'
          : raw === 'active' || raw === 'delayed' || raw === 'completed' || raw === 'failed'
            ? raw
            : 'unknown';
    const { payload, meta } = unwrapJobData(job.data);
    const progress = decodeProgress(job.progress);
    const queuePosition = state === 'waiting' ? await this.position(queue, job.id ?? '') : undefined;
    return {
      id: job.id ?? '',
      name: job.name,
      state,
      ...(progress ? { progress } : {}),
      ...(queuePosition !== undefined ? { queuePosition } : {}),
      data: payload,
      ...(state === 'completed' ? { result: job.returnvalue as unknown } : {}),
      ...(failed ? { error: failed } : {}),
      attemptsMade: job.attemptsMade,
      createdAt: job.timestamp,
      ...(job.finishedOn !== undefined ? { finishedAt: job.finishedOn } : {}),
      ...(meta.guildId !== undefined ? { guildId: meta.guildId } : {}),
      ...(meta.requestedBy !== undefined ? { requestedBy: meta.requestedBy } : {}),
    };
  }

  private cancelledKey(id: string): string {
    return `${this.prefix}:solescope:cancelled:${id}`;
  }

  async get(id: string): Promise<JobInfo | undefined> {
    const found = await this.find(id);
    if (found) return this.info(found.job, found.queue);
    const cancelled = await this.redis().get(this.cancelledKey(id));
    return cancelled ? (JSON.parse(cancelled) as JobInfo) : undefined;
  }

  async list(filter: { states?: readonly JobState[]; guildId?: string; limit?: number } = {}): Promise<JobInfo[]> {
    const limit = filter.limit ?? 50;
    const states = filter.states ?? ['waiting', 'delayed', 'active', 'completed', 'failed', 'cancelled'];
    const types = new Set<string>();
    for (const s of states) {
      if (s === 'waiting') WAITING_TYPES.forEach((t) => types.add(t));
      else if (s === 'cancelled') types.add('failed');
      else if (s !== 'unknown') types.add(s);
    }
    const infos: JobInfo[] = [];
    for (const name of this.engine.jobs.keys()) {
      const queue = this.queue(name);
      // Newest first; a guild filter may skip many, so read generously.
      const jobs = await queue.getJobs([...types] as never, 0, filter.guildId ? limit * 10 : limit, false);
      for (const job of jobs) {
        if (!job) continue;
        if (filter.guildId && unwrapJobData(job.data).meta.guildId !== filter.guildId) continue;
        const info = await this.info(job, queue);
        if (states.includes(info.state)) infos.push(info);
      }
    }
    return infos.sort((a, b) => (b.createdAt ?? 0) - (a.createdAt ?? 0)).slice(0, limit);
  }

  /**
   * Cancel a job. A waiting or delayed job is removed (and remembered as cancelled for a week); an active one
   * is aborted by the worker holding it (told over pub/sub), then fails as `cancelled` without retries.
   */
  async cancel(id: string): Promise<boolean> {
    const found = await this.find(id);
    if (!found) return false;
    const { job, queue } = found;
    const state = await job.getState();
    if (state === 'completed' || state === 'failed' || state === 'unknown') return false;
    if (state === 'active') {
      await this.redis().publish(cancelChannel(this.prefix), JSON.stringify({ queue: queue.name, id }));
      return true;
    }
    const info = await this.info(job, queue);
    const cancelled: JobInfo = { ...info, state: 'cancelled', error: { code: 'CONFLICT', message: CANCELLED_MESSAGE }, finishedAt: Date.now() };
    const { queuePosition: _p, ...rest } = cancelled;
    await this.redis().set(this.cancelledKey(id), JSON.stringify(rest), 'EX', 7 * 86_400);
    try {
      await job.remove();
    } catch (err) {
      // It was picked up between our read and the removal: abort it where it runs instead.
      this.engine.logger.debug('remove raced with a worker; cancelling the active job', { id, err });
      await this.redis().del(this.cancelledKey(id));
      await this.redis().publish(cancelChannel(this.prefix), JSON.stringify({ queue: queue.name, id }));
      return true;
    }
    if (info.guildId !== undefined) await this.redis().zrem(`${this.prefix}:solescope:guild-jobs:${info.guildId}`, `${queue.name}|${id}`);
    this.events.emit('failed', id, { code: 'CONFLICT', message: CANCELLED_MESSAGE });
    return true;
  }

  /** Start streaming events of every queue into {@link events} (idempotent). */
  async listen(): Promise<void> {
    await Promise.all([...this.engine.jobs.keys()].map((name) => this.queueEventsFor(queueNameFor(name))));
  }

  private async queueEventsFor(queueName: string): Promise<QueueEvents> {
    const existing = this.queueEvents.get(queueName);
    if (existing) return existing.events;
    const connection = createRedisConnection(this.redisUrl);
    const events = new QueueEvents(queueName, { connection, prefix: this.prefix, autorun: true });
    this.queueEvents.set(queueName, { events, connection });
    events.on('error', (err) => this.engine.logger.warn('queue events error', { queue: queueName, err }));
    events.on('progress', ({ jobId, data }) => {
      const event = decodeProgress(data);
      if (event) this.events.emit('progress', jobId, event);
    });
    events.on('completed', ({ jobId, returnvalue }) => this.events.emit('completed', jobId, returnvalue));
    events.on('failed', ({ jobId, failedReason }) => this.events.emit('failed', jobId, decodeError(failedReason)));
    events.on('removed', ({ jobId }) => {
      void this.redis()
        .exists(this.cancelledKey(jobId))
        .then((n) => {
          if (n === 1) this.events.emit('failed', jobId, { code: 'CONFLICT', message: CANCELLED_MESSAGE });
        })
        .catch(() => undefined);
    });
    await events.waitUntilReady();
    return events;
  }

  waitFor(id: string, onProgress?: (event: ProgressEvent) => void, signal?: AbortSignal): Promise<unknown> {
    return new Promise((resolve, reject) => {
      let done = false;
      let timer: NodeJS.Timeout | undefined;
      let lastPosition: number | undefined;
      const finish = (fn: () => void): void => {
        if (done) return;
        done = true;
        cleanup();
        fn();
      };
      const settleFrom = (info: JobInfo | undefined): boolean => {
        if (!info) {
          finish(() => reject(new EngineError('NOT_FOUND', `No job with id ${id}.`)));
          return true;
        }
        if (info.state === 'completed') {
          finish(() => resolve(info.result));
          return true;
        }
        if (info.state === 'failed' || info.state === 'cancelled') {
          const e = info.error ?? { code: 'CONFLICT', message: CANCELLED_MESSAGE };
          finish(() => reject(new EngineError(e.code as never, e.message)));
          return true;
        }
        if (info.state === 'waiting' && info.queuePosition !== undefined && info.queuePosition !== lastPosition) {
          lastPosition = info.queuePosition;
          onProgress?.({ stage: 'queued', queuePosition: info.queuePosition, message: `Waiting in queue (position ${info.queuePosition})` });
        }
        return false;
      };
      // Events are fast; a poll every second is the safety net (missed events across a Redis reconnect,
      // queue position changes, which have no event).
      const poll = (): void => {
        if (done) return;
        this.get(id).then(
          (info) => {
            if (!settleFrom(info) && !done) timer = setTimeout(poll, 1_000);
          },
          () => {
            if (!done) timer = setTimeout(poll, 1_000);
          },
        );
      };
      const onP = (jobId: string, event: ProgressEvent): void => {
        if (jobId === id && !done) onProgress?.(event);
      };
      const onEnd = (jobId: string): void => {
        if (jobId !== id || done) return;
        this.get(id).then((info) => settleFrom(info), (err: unknown) => finish(() => reject(err)));
      };
      const onAbort = (): void => finish(() => reject(new EngineError('TIMEOUT', 'Stopped waiting for the job; it keeps running.')));
      const cleanup = (): void => {
        if (timer) clearTimeout(timer);
        this.events.off('progress', onP);
        this.events.off('completed', onEnd);
        this.events.off('failed', onEnd);
        signal?.removeEventListener('abort', onAbort);
      };
      this.events.on('progress', onP);
      this.events.on('completed', onEnd);
      this.events.on('failed', onEnd);
      signal?.addEventListener('abort', onAbort, { once: true });
      if (signal?.aborted) return onAbort();
      // Subscribe first, then read the state: nothing that happens in between is missed.
      this.find(id)
        .then(async (found) => {
          if (found) await this.queueEventsFor(found.queue.name);
          poll();
        })
        .catch((err: unknown) => finish(() => reject(new EngineError('UNAVAILABLE', 'Redis is not answering.', { cause: err }))));
    });
  }

  async health(): Promise<{ ok: boolean; detail: string; counts?: Record<string, number> }> {
    try {
      const redis = this.redis();
      const pong = await Promise.race([
        redis.ping(),
        new Promise<string>((_, reject) => setTimeout(() => reject(new Error('ping timeout')), 2_000).unref()),
      ]);
      const counts: Record<string, number> = {};
      for (const name of this.engine.jobs.keys()) {
        const c = await this.queue(name).getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed', 'prioritized');
        for (const [k, v] of Object.entries(c)) {
          const key = k === 'prioritized' ? 'waiting' : k;
          counts[key] = (counts[key] ?? 0) + v;
        }
      }
      return { ok: pong === 'PONG', detail: `BullMQ on ${redactUrl(this.redisUrl)} (prefix ${this.prefix})`, counts };
    } catch (err) {
      return { ok: false, detail: `Redis at ${redactUrl(this.redisUrl)} is not answering: ${(err as Error).message}` };
    }
  }

  /** Close queues, event streams and connections. Jobs stay in Redis. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.queueEvents.values()].map(async ({ events, connection }) => {
      await events.close();
      connection.disconnect();
    }));
    await Promise.allSettled([...this.queues.values()].map((q) => q.close()));
    await this.flowProducer?.close().catch(() => undefined);
    if (this.connection) await this.connection.quit().catch(() => this.connection?.disconnect());
    this.events.removeAllListeners();
  }
}

/** The pub/sub channel on which cancellations of active jobs are announced to workers. */
export function cancelChannel(prefix: string): string {
  return `${prefix}:solescope:cancel`;
}

function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, '//[redacted]@');
}

/** Create the BullMQ job runner (see {@link BullJobRunnerOptions}). */
export function createBullJobRunner(options: BullJobRunnerOptions): BullJobRunner {
  return new BullJobRunner(options);
}
