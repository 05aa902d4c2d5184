import { Queue, type Job } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine, EngineError, loadConfig, silentLogger, type Engine, type JobInfo, type ProgressEvent } from '../../engine/index.ts';
import { createBullJobRunner, type BullJobRunner } from '../../jobs/runner.ts';
import { startJobWorkers, type JobWorkers } from '../../jobs/worker.ts';
import { cleanRedis, randomPrefix } from './fixtures/synthetic.ts';
import training from '../../plugins/training/index.ts';
import testJobs from './fixtures/test-plugin.ts';

// Real Redis on 127.0.0.1:6379, a random key prefix for this file, everything deleted afterwards.
const prefix = randomPrefix('runner');
let engine: Engine;
let runner: BullJobRunner;
let workers: JobWorkers | undefined;

async function freshEngine(): Promise<Engine> {
  const e = createEngine({ config: loadConfig({}), logger: silentLogger() });
  await e.registerAll([testJobs, training]);
  return e;
}

async function startWorkers(): Promise<void> {
  workers ??= await startJobWorkers({ engine, prefix, sandbox: 'never', lockDurationMs: 5_000, stalledIntervalMs: 5_000 });
}

async function expectCode(p: Promise<unknown>, code: string): Promise<EngineError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(EngineError);
  expect((err as EngineError).code).toBe(code);
  return err as EngineError;
}

beforeAll(async () => {
  engine = await freshEngine();
  // Short backoff keeps retries quick; the exponential shape is BullMQ's.
  runner = createBullJobRunner({ engine, prefix, backoffMs: 50, maxJobsPerGuild: 2 });
  engine.useJobRunner(runner);
});

afterAll(async () => {
  await workers?.close(true);
  await runner.close();
  await cleanRedis(prefix);
});

describe('BullJobRunner (real Redis)', () => {
  it('GIVEN invalid data WHEN enqueued THEN BAD_INPUT and nothing reaches Redis', async () => {
    await expectCode(runner.enqueue('test.echo', { n: 'three' }), 'BAD_INPUT');
    await expectCode(runner.enqueue('test.echo', { n: 3, extra: true }), 'BAD_INPUT');
    await expectCode(runner.enqueue('no.such.job', {}), 'NOT_FOUND');
    const counts = await runner.queue('test.echo').getJobCounts();
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(0);
  });

  it('GIVEN a queued job THEN `jobs list` lists it for its guild and `jobs cancel` is for its owner or moderators', async () => {
    const info = await runner.enqueue('test.slow', { ms: 10 }, { guildId: 'g9', requestedBy: 'u1' });
    const listed = await engine.invoke('jobs list', {}, { transport: 'test', caller: { id: 'u2' }, guildId: 'g9' });
    if (!listed.ok) throw listed.error;
    const jobs = (listed.reply.data as { jobs: { id: string; state: string; position: number | null; requestedBy: string }[] }).jobs;
    expect(jobs).toEqual([expect.objectContaining({ id: info.id, state: 'waiting', position: 1, requestedBy: 'u1' })]);
    const other = await engine.invoke('jobs list', {}, { transport: 'test', caller: { id: 'u2' }, guildId: 'elsewhere' });
    expect(other.ok && (other.reply.data as { jobs: unknown[] }).jobs).toEqual([]);
    const denied = await engine.invoke('jobs cancel', { id: info.id }, { transport: 'test', caller: { id: 'u2' }, guildId: 'g9' });
    expect(!denied.ok && denied.error.code).toBe('FORBIDDEN');
    const missing = await engine.invoke('jobs cancel', { id: 'nope' }, { transport: 'test', caller: { id: 'u1', isModerator: true } });
    expect(!missing.ok && missing.error.code).toBe('NOT_FOUND');
    const ok = await engine.invoke('jobs cancel', { id: info.id }, { transport: 'test', caller: { id: 'u1' }, guildId: 'g9' });
    if (!ok.ok) throw ok.error;
    expect(ok.reply.data).toMatchObject({ job: info.id, cancelled: true, previousState: 'waiting' });
    expect((await runner.get(info.id))?.state).toBe('cancelled');
  });

  it('GIVEN waiting jobs THEN each reports its queue position and the guild cap refuses a third', async () => {
    const a = await runner.enqueue('test.echo', { n: 1, steps: 0 }, { guildId: 'g1', requestedBy: 'u1' });
    const b = await runner.enqueue('test.echo', { n: 2, steps: 0 }, { guildId: 'g1', requestedBy: 'u2' });
    expect(a.state).toBe('waiting');
    expect(a.queuePosition).toBe(1);
    expect(b.queuePosition).toBe(2);
    const err = await expectCode(runner.enqueue('test.echo', { n: 3, steps: 0 }, { guildId: 'g1' }), 'RATE_LIMITED');
    expect(err.details.limit).toBe(2);
    // Another guild is not starved by g1.
    const c = await runner.enqueue('test.echo', { n: 3, steps: 0 }, { guildId: 'g2' });
    expect(c.queuePosition).toBe(3);
    const listed = await runner.list({ guildId: 'g1', states: ['waiting'] });
    expect(listed.map((j) => j.id).sort()).toEqual([a.id, b.id].sort());
    expect(listed.every((j) => j.guildId === 'g1')).toBe(true);
    // Cancelling a waiting job frees the guild's slot.
    expect(await runner.cancel(a.id)).toBe(true);
    expect((await runner.get(a.id))?.state).toBe('cancelled');
    const d = await runner.enqueue('test.echo', { n: 4, steps: 0 }, { guildId: 'g1' });
    expect(d.state).toBe('waiting');
    await startWorkers();
    await expect(runner.waitFor(b.id)).resolves.toEqual({ sum: 3, attempt: 1 });
    await expect(runner.waitFor(c.id)).resolves.toEqual({ sum: 6, attempt: 1 });
    await expect(runner.waitFor(d.id)).resolves.toEqual({ sum: 10, attempt: 1 });
    await expectCode(runner.waitFor(a.id), 'CONFLICT');
  });

  it('GIVEN a running job THEN waitFor reports its progress (stage, fraction, epoch, loss) and its result', async () => {
    await startWorkers();
    const info = await runner.enqueue('test.echo', { n: 10, steps: 4 });
    const events: ProgressEvent[] = [];
    const result = await runner.waitFor(info.id, (e) => events.push(e));
    expect(result).toEqual({ sum: 55, attempt: 1 });
    const stages = events.filter((e) => e.stage?.startsWith('step'));
    expect(stages.length).toBeGreaterThanOrEqual(1);
    expect(stages.at(-1)?.metrics?.epoch).toBeGreaterThanOrEqual(1);
    const done = await runner.get(info.id);
    expect(done?.state).toBe('completed');
    expect(done?.progress?.fraction).toBe(1);
    expect(done?.progress?.metrics?.loss).toBeCloseTo(0.25);
  });

  it('GIVEN transient failures THEN the job is retried with exponential backoff and succeeds', async () => {
    await startWorkers();
    const info = await runner.enqueue('test.flaky', { succeedOn: 3 });
    await expect(runner.waitFor(info.id)).resolves.toEqual({ attempt: 3 });
    const job = await runner.queue('test.flaky').getJob(info.id);
    expect(job?.opts.attempts).toBe(3);
    expect(job?.opts.backoff).toEqual({ type: 'exponential', delay: 50 });
    expect(job?.attemptsMade).toBeGreaterThanOrEqual(2);
  });

  it('GIVEN transient failures beyond the attempts THEN it fails after exactly 3 attempts', async () => {
    await startWorkers();
    const info = await runner.enqueue('test.flaky', { succeedOn: 9 });
    await expectCode(runner.waitFor(info.id), 'UNAVAILABLE');
    const failed = await runner.get(info.id);
    expect(failed?.state).toBe('failed');
    expect(failed?.attemptsMade).toBe(3);
  });

  it('GIVEN a non-retryable failure THEN UnrecoverableError: one attempt only', async () => {
    await startWorkers();
    const info = await runner.enqueue('test.flaky', { succeedOn: 3, code: 'FORBIDDEN' });
    await expectCode(runner.waitFor(info.id), 'FORBIDDEN');
    expect((await runner.get(info.id))?.attemptsMade).toBe(1);
  });

  it('GIVEN a job read just before it failed THEN its failure is read again, not reported as INTERNAL', async () => {
    await startWorkers();
    const info = await runner.enqueue('test.flaky', { succeedOn: 3, code: 'FORBIDDEN' });
    await expectCode(runner.waitFor(info.id), 'FORBIDDEN');
    // The race CI once hit: the job's hash is read, the job fails, then its state is read ('failed', with the
    // hash's empty reason). The same snapshot, made on purpose, through the private reader both paths use.
    const queue = runner.queue('test.flaky');
    const stale = (await queue.getJob(info.id))!;
    stale.failedReason = '';
    const read = await (runner as unknown as { info(job: Job, queue: Queue): Promise<JobInfo> }).info(stale, queue);
    expect(read.state).toBe('failed');
    expect(read.error?.code).toBe('FORBIDDEN');
  });

  it('GIVEN bad data that bypassed the producer THEN the processor fails it as unrecoverable (no retries)', async () => {
    await startWorkers();
    const queue = new Queue('test.echo', { connection: runner.redis(), prefix });
    const job = await queue.add('test.echo', { payload: { n: -5 }, meta: {} }, { attempts: 5, backoff: { type: 'fixed', delay: 10 } });
    await queue.close();
    const settled = await runner.waitFor(job.id!).then(() => undefined, (e: unknown) => e);
    const raw = await runner.queue('test.echo').getJob(job.id!);
    expect(raw?.failedReason, JSON.stringify({ state: await raw?.getState(), attempts: raw?.attemptsMade, settled: String(settled) })).toMatch(/^BAD_INPUT: /);
    const err = await expectCode(runner.waitFor(job.id!), 'BAD_INPUT');
    expect(err.message).toMatch(/invalid/);
    const info = await runner.get(job.id!);
    expect(info?.state).toBe('failed');
    expect(info?.attemptsMade).toBe(1);
  });

  it('GIVEN an active job WHEN cancelled THEN the worker aborts it and it ends as cancelled', async () => {
    await startWorkers();
    const info = await runner.enqueue('test.slow', { ms: 20_000 });
    await new Promise<void>((resolve) => {
      const check = (): void => {
        void runner.get(info.id).then((j) => (j?.state === 'active' && j.progress ? resolve() : setTimeout(check, 50)));
      };
      check();
    });
    expect(await runner.cancel(info.id)).toBe(true);
    await expectCode(runner.waitFor(info.id), 'CONFLICT');
    const after = await runner.get(info.id);
    expect(after?.state).toBe('cancelled');
    expect(after?.attemptsMade).toBe(1);
    expect(await runner.cancel(info.id)).toBe(false);
  });

  it('GIVEN a healthy Redis THEN health reports ok with counts', async () => {
    const h = await runner.health();
    expect(h.ok).toBe(true);
    expect(h.counts?.completed).toBeGreaterThanOrEqual(1);
    expect(h.detail).toContain(prefix);
  });
});
