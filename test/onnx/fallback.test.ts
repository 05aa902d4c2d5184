/**
 * SOLESCOPE_INFERENCE=tfjs: onnxruntime is never used, and the accelerated interface still works — on tfjs,
 * with the same results as the plain backbone, coalescing included, and `status` says why.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as tfTypes from '@tensorflow/tfjs';
import { getTf, type Tf } from '../../engine/ml/runtime.ts';
import { accelerateBackbone, compileLayersModel, inferenceStatus, loadOrt } from '../../engine/ml/onnx/index.ts';
import { maxAbsDiff, randomFloats, tinyBackbone, tinyNet } from './helpers.ts';

let tf: Tf;
let model: tfTypes.LayersModel;
const previous = process.env.SOLESCOPE_INFERENCE;

beforeAll(async () => {
  // Each test file runs in its own process, so this decides the engine for the whole file.
  process.env.SOLESCOPE_INFERENCE = 'tfjs';
  tf = await getTf();
  model = tinyNet(tf, 13);
});

afterAll(() => {
  model.dispose();
  if (previous === undefined) delete process.env.SOLESCOPE_INFERENCE;
  else process.env.SOLESCOPE_INFERENCE = previous;
});

describe('SOLESCOPE_INFERENCE=tfjs', () => {
  it('GIVEN ORT forced off THEN the backbone wrapper runs on tfjs with identical results and batching', async () => {
    expect(inferenceStatus().inference).toBeNull(); // nothing decided before first use
    const base = tinyBackbone(tf, model, 'embedding', 16);
    const fast = await accelerateBackbone(base, { dataDir: null, maxWaitMs: 20 });
    expect(fast.inference).toBe('tfjs');
    expect(fast.inferenceReason).toBe('SOLESCOPE_INFERENCE=tfjs');
    expect(await loadOrt()).toMatchObject({ ort: null, requested: 'tfjs' });
    expect(inferenceStatus()).toMatchObject({ inference: 'tfjs', requested: 'tfjs', onnxruntime: null, sessions: 0 });

    const images = [1, 2, 3].map((k) => randomFloats(16 * 16 * 3, k));
    const want = await base.embedImages(images);
    const got = await fast.embedImages(images);
    got.forEach((e, i) => expect(maxAbsDiff(e, want[i]!)).toBe(0));

    const before = tf.memory().numTensors;
    const single = await Promise.all(images.map((img) => fast.embedOne(img)));
    expect(fast.inferenceStats()).toMatchObject({ batches: 1, largestBatch: 3 });
    single.forEach((e, i) => expect(maxAbsDiff(e, want[i]!)).toBeLessThanOrEqual(1e-6));
    const [mixed] = await fast.featuresAsync(images[0]!, 1, ['mixed']);
    expect(mixed!.dims).toEqual([1, 4, 4, 22]);
    const batch = tf.tensor4d(images[1]!, [1, 16, 16, 3]);
    const emb = await fast.embedTensor(batch);
    expect(maxAbsDiff(emb.dataSync(), want[1]!)).toBeLessThanOrEqual(1e-6);
    tf.dispose([batch, emb]);
    expect(tf.memory().numTensors).toBe(before);

    fast.dispose();
    expect(base.disposed).toBe(true);
  });

  it('GIVEN ORT forced off THEN compiled models run on tfjs and say why', async () => {
    const compiled = await compileLayersModel(model, { outputs: ['probs'] });
    expect(compiled.inference).toBe('tfjs');
    expect(compiled.reason).toBe('SOLESCOPE_INFERENCE=tfjs');
    expect(compiled.exportPath).toBeNull();
    const out = await compiled.run(randomFloats(2 * 16 * 16 * 3, 5), [2, 16, 16, 3]);
    expect(out.probs!.dims).toEqual([2, 3]);
    const sums = [0, 1].map((r) => out.probs!.data[r * 3]! + out.probs!.data[r * 3 + 1]! + out.probs!.data[r * 3 + 2]!);
    for (const s of sums) expect(s).toBeCloseTo(1, 5);
  });
});
