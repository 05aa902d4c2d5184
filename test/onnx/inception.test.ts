/**
 * The real nsfwjs InceptionV3 (94 BatchNormalization layers without gamma, 1x7/7x1 SAME convs, SAME average
 * pooling, 15 concatenations) exported and run by onnxruntime on one image: embeddings within 1e-4 of tfjs,
 * the same head argmax.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as tfTypes from '@tensorflow/tfjs';
import { loadBackbone, type Backbone } from '../../engine/ml/backbones.ts';
import { compileLayersModel, type CompiledModel } from '../../engine/ml/onnx/index.ts';
import { resetOrtForTests } from '../../engine/ml/onnx/ort.ts';
import { argmaxRows, maxAbsDiff, randomFloats } from './helpers.ts';

const S = 299;
let base: Backbone;
let compiled: CompiledModel;

beforeAll(async () => {
  base = await loadBackbone('inception_v3');
  // About onnxruntime itself: decide again with `auto` even in a run with SOLESCOPE_INFERENCE=tfjs.
  resetOrtForTests();
  compiled = await compileLayersModel(base.model, { outputs: ['flatten_1', 'dense_3'], dataDir: null, choice: 'auto' });
});

afterAll(async () => {
  await compiled.release();
});

describe('inception_v3 on onnxruntime', () => {
  it('GIVEN one image THEN flatten_1 is within 1e-4 of tfjs and the head agrees', async () => {
    expect(compiled.inference).toBe('onnxruntime');
    const data = randomFloats(S * S * 3, 21);
    const got = await compiled.run(data, [1, S, S, 3]);
    const tf = base.tf;
    const sub = base.featureModel(['flatten_1', 'dense_3']);
    const [emb, probs] = tf.tidy(() => (sub.predict(tf.tensor4d(data, [1, S, S, 3])) as tfTypes.Tensor[]).map((t) => t.dataSync()));
    expect(got.flatten_1!.dims).toEqual([1, 2048]);
    const scale = Math.max(...Array.from(emb!, Math.abs));
    expect(scale).toBeGreaterThan(0);
    expect(maxAbsDiff(got.flatten_1!.data, emb!)).toBeLessThanOrEqual(Math.min(1e-4, 1e-3 * scale));
    expect(argmaxRows(got.dense_3!.data, 5)).toEqual(argmaxRows(probs!, 5));
    expect(maxAbsDiff(got.dense_3!.data, probs!)).toBeLessThanOrEqual(1e-4);
  });
});
