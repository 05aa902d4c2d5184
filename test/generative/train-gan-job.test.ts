/**
 * `generative.train-gan` as a job (in-process runner): trains on the store's hyped, non-generated images,
 * reports progress with sample previews, registers a `gan` model that `generate` then serves.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine, type Engine, type ProgressEvent } from '../../engine/index.ts';
import { openStore, type Store } from '../../engine/store/index.ts';
import { getTf } from '../../engine/ml/runtime.ts';
import plugin from '../../plugins/generative/index.ts';
import type { TrainGanJobResult } from '../../plugins/generative/jobs.ts';
import { clearGeneratorCache } from '../../plugins/generative/lib/generator-source.ts';

let dir: string;
let store: Store;
let engine: Engine;

async function put(colour: string, hype: 'hyped' | 'not_hyped', generated = false): Promise<void> {
  const png = await sharp({ create: { width: 40, height: 30, channels: 3, background: colour } }).png().toBuffer();
  const row = await store.images.put({ bytes: png, width: 40, height: 30, format: 'png', source: generated ? 'generated' : 'import', generated });
  await store.labels.add({ imageSha: row.sha256, task: 'hype', value: hype, by: 'test', origin: 'import' });
}

beforeAll(async () => {
  await getTf({ backend: 'wasm' });
  dir = mkdtempSync(path.join(tmpdir(), 'solescope-gan-job-'));
  store = await openStore({ dataDir: dir });
  const colours = ['#ff0000', '#00aa00', '#0000ff', '#333333', '#ffaa00', '#aa00aa', '#00aaaa', '#888888', '#123456'];
  for (const c of colours) await put(c, 'hyped');
  await put('#fefefe', 'not_hyped');
  await put('#010101', 'hyped', true); // a generated image, even when labelled, is never training data
  engine = createEngine({ store });
  await engine.register(plugin);
});

afterAll(async () => {
  clearGeneratorCache();
  await engine.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('generative.train-gan job', () => {
  it('GIVEN hyped images THEN the job trains, previews samples, registers a champion gan model that generate serves', async () => {
    const jobs = engine.services.jobs;
    const info = await jobs.enqueue('generative.train-gan', {
      iterations: 2,
      ngf: 4,
      ndf: 2,
      zDim: 8,
      batchSize: 4,
      sampleEvery: 1,
      checkpointEvery: 1,
      requestedBy: 'mod',
      conflictRule: 'ignored: extra keys from `train --task gan` are dropped',
    });
    const events: ProgressEvent[] = [];
    const result = (await jobs.waitFor(info.id, (e) => events.push(e))) as TrainGanJobResult;
    expect(result).toMatchObject({ task: 'gan', decision: 'champion', iterations: 2, stoppedBy: 'iterations' });
    expect(events.filter((e) => e.preview).length).toBeGreaterThanOrEqual(2);
    const model = await store.models.get(result.model);
    expect(model?.task).toBe('gan');
    expect(model?.dataSnapshot).toMatchObject({ images: 9, hype: 'hyped' }); // 9 hyped real ones; not the generated one
    expect(model?.curvesPng?.subarray(1, 4).toString()).toBe('PNG');
    expect(await store.models.getAlias('gan', 'champion')).toBe(result.model);

    const r = await engine.invoke('generate', { count: 2, seed: 4 }, { transport: 'test', caller: { id: 'someone' } });
    expect(r.ok && r.reply.data?.model).toBe(String(result.model));
  });

  it('GIVEN too few images THEN the job fails with a coded, actionable error', async () => {
    const info = await engine.services.jobs.enqueue('generative.train-gan', { hype: 'not_hyped', iterations: 1 });
    await expect(engine.services.jobs.waitFor(info.id)).rejects.toMatchObject({ code: 'BAD_INPUT', message: expect.stringMatching(/at least 8 images/) });
  });
});
