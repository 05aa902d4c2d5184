import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine, ProgressEvent } from '../../engine/index.ts';
import type { Store } from '../../engine/store/index.ts';
import { createBullJobRunner, startJobWorkers, type BullJobRunner, type JobWorkers } from '../../jobs/index.ts';
import { EXPLORE_JOB } from '../../plugins/explore/lib/as-job.ts';
import { exploreEngine, importFixtures, pngSize, shoePng } from './fixtures.ts';

// Real Redis (127.0.0.1:6379) with a random prefix; the worker runs in this process (sandbox: never).
let engine: Engine;
let store: Store;
let runner: BullJobRunner;
let workers: JobWorkers;
const previous = process.env.SOLESCOPE_EXPLORE_QUEUE_ABOVE;

beforeAll(async () => {
  process.env.SOLESCOPE_EXPLORE_QUEUE_ABOVE = '3';
  ({ engine, store } = await exploreEngine());
  const prefix = `test-explore-${randomUUID().slice(0, 8)}`;
  runner = createBullJobRunner({ engine, redisUrl: 'redis://127.0.0.1:6379', prefix });
  engine.useJobRunner(runner);
  workers = await startJobWorkers({ engine, redisUrl: 'redis://127.0.0.1:6379', prefix, sandbox: 'never', jobs: [EXPLORE_JOB] });
  const colours = ['#c0392b', '#2980b9', '#27ae60', '#8e44ad', '#d35400'];
  await importFixtures(store, 'q', await Promise.all(colours.map(async (color, i) => ({ png: await shoePng({ color, shift: i }), spec: { name: `shoe ${i}`, hype: 'hyped' as const } }))));
  await importFixtures(store, 'small', [{ png: await shoePng({ color: '#111111' }), spec: { name: 'tiny' } }]);
}, 120_000);

afterAll(async () => {
  if (previous === undefined) delete process.env.SOLESCOPE_EXPLORE_QUEUE_ABOVE;
  else process.env.SOLESCOPE_EXPLORE_QUEUE_ABOVE = previous;
  await workers.close(true);
  await runner.redis().keys(`${runner.prefix}:*`).then((keys) => (keys.length > 0 ? runner.redis().del(...keys) : 0));
  await engine.close();
});

describe('long selections run as queued jobs', () => {
  it('GIVEN a selection above the threshold and a BullMQ queue THEN mean-shoe runs as an explore.run job and the PNGs come back', async () => {
    const events: ProgressEvent[] = [];
    const r = await engine.invoke('mean-shoe', { dataset: 'q' }, { transport: 'test', caller: { id: 'u1' }, onProgress: (e) => events.push(e) });
    if (!r.ok) throw r.error;
    expect(r.reply.data).toMatchObject({ n: 5 });
    const png = r.reply.images?.[0]?.png;
    expect(Buffer.isBuffer(png)).toBe(true);
    expect((await pngSize(png!)).format).toBe('png');
    expect(events[0]?.stage).toMatch(/^queued \(5 images\)/);
    const jobs = await runner.list({ limit: 10 });
    expect(jobs.some((j) => j.name === EXPLORE_JOB && j.state === 'completed')).toBe(true);
  });

  it('GIVEN a small selection THEN it runs in place without a job', async () => {
    const before = (await runner.list({ limit: 50 })).length;
    const r = await engine.invoke('mean-shoe', { dataset: 'small', nameIncludes: 'tiny' }, { transport: 'test', caller: { id: 'u2' } });
    expect(!r.ok && r.error.code).toBe('BAD_INPUT'); // one image: the command's own refusal, not a queue error
    expect((await runner.list({ limit: 50 })).length).toBe(before);
  });
});
