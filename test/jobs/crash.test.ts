import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine, loadConfig, silentLogger, type Engine } from '../../engine/index.ts';
import { checkpointKey } from '../../jobs/checkpoints.ts';
import { createBullJobRunner, type BullJobRunner } from '../../jobs/runner.ts';
import training from '../../plugins/training/index.ts';
import type { TrainResult } from '../../plugins/training/lib/pipeline.ts';
import { cleanRedis, randomPrefix, seedSynthetic, tempStore, TEST_FEATURES } from './fixtures/synthetic.ts';

// A worker PROCESS is killed with SIGKILL in the middle of a real training job. Another worker takes the
// stalled job over once the lock lapses, resumes from the last epoch checkpoint in the store, and the
// registry ends with exactly one version for that job.
const prefix = randomPrefix('crash');
const workerFile = fileURLToPath(new URL('./fixtures/worker-proc.ts', import.meta.url));
const tsx = fileURLToPath(import.meta.resolve('tsx'));
let engine: Engine;
let runner: BullJobRunner;
let dataDir: string;
let cleanup: () => Promise<void>;
const spawned: ChildProcess[] = [];

function startWorkerProcess(): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', `file://${tsx}`, workerFile], {
    env: {
      ...process.env,
      SOLESCOPE_DATA_DIR: dataDir,
      SOLESCOPE_JOBS_PREFIX: prefix,
      SOLESCOPE_TRAIN_FEATURES: `${TEST_FEATURES.backbone}/${TEST_FEATURES.prepVersion}`,
      TEST_LOCK_MS: '2000',
      TEST_STALLED_MS: '1000',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  spawned.push(child);
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout?.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`worker exited early (${code}): ${err.slice(-2000)}`)));
  });
}

beforeAll(async () => {
  const t = await tempStore();
  dataDir = t.dir;
  cleanup = t.cleanup;
  // Enough data and epochs that training takes seconds, so the kill lands mid-run.
  await seedSynthetic(t.store, { perClass: 60, dim: 32, seed: 5, modelsPerClass: 10 });
  engine = createEngine({ config: loadConfig({ SOLESCOPE_DATA_DIR: t.dir }), logger: silentLogger(), store: t.store });
  runner = createBullJobRunner({ engine, prefix, backoffMs: 100 });
  engine.useJobRunner(runner);
  await engine.register(training);
});

afterAll(async () => {
  for (const c of spawned) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await engine?.close();
  await cleanRedis(prefix);
  await cleanup?.();
});

describe('GIVEN a worker killed with SIGKILL mid-training', () => {
  it('THEN the job is retried from its last checkpoint, finishes, and is registered exactly once', async () => {
    const first = await startWorkerProcess();
    const info = await runner.enqueue('training.train', {
      task: 'brand',
      epochs: 60,
      params: { hidden: 64 },
      requestedBy: 'mod-1',
      autoPromote: true,
    });
    const store = engine.services.store;
    const key = checkpointKey('training.train', info.id);
    let killedAt = 0;
    while (killedAt === 0) {
      const cp = (await store.kv.get(key)) as { epoch?: number } | undefined;
      if (cp?.epoch !== undefined && cp.epoch >= 2) {
        first.kill('SIGKILL');
        killedAt = cp.epoch;
      } else {
        const state = (await runner.get(info.id))?.state;
        expect(state === 'completed' || state === 'failed').toBe(false);
        await new Promise((r) => setTimeout(r, 30));
      }
    }
    expect(killedAt).toBeLessThan(60);
    await new Promise<void>((r) => first.once('exit', () => r()));
    expect(first.signalCode).toBe('SIGKILL');

    await startWorkerProcess();
    const result = (await runner.waitFor(info.id)) as TrainResult;
    expect(result.resumedFromEpoch).toBeGreaterThanOrEqual(killedAt);
    expect(result.resumedFromEpoch).toBeLessThan(60);
    const done = await runner.get(info.id);
    expect(done?.state).toBe('completed');
    // The orphaned sandbox child of the killed worker exits on disconnect: still exactly one version later.
    await new Promise((r) => setTimeout(r, 1500));
    const versions = (await store.models.list('brand')).filter((m) => m.params.jobId === info.id);
    expect(versions.map((v) => v.id)).toEqual([result.model]);
    expect(await store.models.getAlias('brand', 'champion')).toBe(result.model);
    const curves = (await store.models.get(result.model))?.metrics.curves as { epoch: number }[];
    expect(curves.map((c) => c.epoch)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    expect(await store.kv.get(key)).toBeUndefined();
  }, 240_000);
});
