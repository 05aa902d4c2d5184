import { afterAll, describe, expect, it } from 'vitest';
import { createEngine, loadConfig, silentLogger } from '../../engine/index.ts';
import { createBullJobRunner } from '../../jobs/runner.ts';
import { startJobWorkers } from '../../jobs/worker.ts';
import { cleanRedis, randomPrefix } from './fixtures/synthetic.ts';
import testJobs from './fixtures/test-plugin.ts';

const prefix = randomPrefix('conc');
afterAll(async () => cleanRedis(prefix));

describe('per-queue concurrency across workers', () => {
  it('GIVEN two workers and a global concurrency of 1 THEN never more than one job of that queue is active', async () => {
    const engine = createEngine({ config: loadConfig({}), logger: silentLogger() });
    await engine.register(testJobs);
    const runner = createBullJobRunner({ engine, prefix });
    const opts = { engine, prefix, sandbox: 'never' as const, globalConcurrency: { 'test.slow': 1 } };
    const a = await startJobWorkers(opts);
    const b = await startJobWorkers(opts);
    expect(await runner.queue('test.slow').getGlobalConcurrency()).toBe(1);
    const ids = await Promise.all([1, 2, 3].map(async () => (await runner.enqueue('test.slow', { ms: 300 })).id));
    let maxActive = 0;
    let done = false;
    const all = Promise.all(ids.map((id) => runner.waitFor(id))).finally(() => (done = true));
    while (!done) {
      maxActive = Math.max(maxActive, await runner.queue('test.slow').getActiveCount());
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(await all).toEqual([{ done: true }, { done: true }, { done: true }]);
    expect(maxActive).toBe(1);
    await Promise.all([a.close(), b.close()]);
    await runner.close();
  });
});
