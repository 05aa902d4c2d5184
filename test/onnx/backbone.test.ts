/**
 * The real nsfwjs MobileNetV2 (shipped in the npm package, loaded offline) through the exporter and
 * onnxruntime: embeddings (`flatten_1`) within 1e-4 of tfjs, the same head argmax, channels-last features,
 * single-image calls coalesced into one batch and mapped back, the export cached in the data dir, no leaks.
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as tfTypes from '@tensorflow/tfjs';
import { loadBackbone, type Backbone } from '../../engine/ml/backbones.ts';
import { accelerateBackbone, compileLayersModel, inferenceStatus, type InferenceMethods } from '../../engine/ml/onnx/index.ts';
import { resetOrtForTests } from '../../engine/ml/onnx/ort.ts';
import { argmaxRows, maxAbsDiff, randomFloats } from './helpers.ts';

const S = 224;
const PIXELS = S * S * 3;
let dataDir: string;
let base: Backbone;
let fast: Backbone & InferenceMethods;
let images: Float32Array[];

beforeAll(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'solescope-onnx-'));
  base = await loadBackbone('mobilenet_v2');
  // These tests are about onnxruntime itself: decide again with `auto` even when the whole run was started
  // with SOLESCOPE_INFERENCE=tfjs (loadBackbone above has already made that process-wide decision).
  resetOrtForTests();
  fast = await accelerateBackbone(base, { dataDir, choice: 'auto', maxWaitMs: 20 });
  // Smooth-ish seeded images (random noise plus a gradient), distinct from each other.
  images = [0, 1, 2].map((k) => {
    const noise = randomFloats(PIXELS, 100 + k);
    return noise.map((v, i) => 0.5 * v + 0.5 * (((i / 3) % S) / S) * (k + 1) / 3);
  });
});

afterAll(async () => {
  await fast.releaseInference();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('accelerateBackbone(mobilenet_v2)', () => {
  it('GIVEN onnxruntime THEN it runs the async paths and status says so', () => {
    expect(fast.inference).toBe('onnxruntime');
    expect(fast.inferenceReason).toBeNull();
    const status = inferenceStatus();
    expect(status.inference).toBe('onnxruntime');
    expect(status.onnxruntime).toBe('1.30.0');
    expect(status.sessions).toBeGreaterThanOrEqual(1);
    // Everything else is still the tfjs backbone.
    expect(fast.embedDim).toBe(1280);
    expect(fast.layerNames()).toContain('out_relu');
  });

  it('GIVEN the same images THEN ORT embeddings (flatten_1) are within 1e-4 of tfjs', async () => {
    const want = await base.embedImages(images);
    const got = await fast.embedImages(images, { batchSize: 2 });
    expect(got).toHaveLength(3);
    for (let i = 0; i < 3; i++) {
      expect(got[i]).toHaveLength(1280);
      expect(maxAbsDiff(got[i]!, want[i]!)).toBeLessThanOrEqual(1e-4);
    }
    // The images really differ, so agreement is not an accident of constant output.
    expect(maxAbsDiff(want[0]!, want[1]!)).toBeGreaterThan(1e-2);
  });

  it('GIVEN the nsfw head (dense_3) THEN ORT and tfjs pick the same class', async () => {
    const head = await compileLayersModel(base.model, { outputs: ['dense_3'], dataDir, key: 'mobilenet_v2-head' });
    try {
      expect(head.inference).toBe('onnxruntime');
      const batch = new Float32Array(3 * PIXELS);
      images.forEach((img, i) => batch.set(img, i * PIXELS));
      const got = (await head.run(batch, [3, S, S, 3])).dense_3!;
      const model = base.model;
      const tf = base.tf;
      const want = tf.tidy(() => (model.predict(tf.tensor4d(batch, [3, S, S, 3])) as tfTypes.Tensor).dataSync());
      expect(got.dims).toEqual([3, 5]);
      expect(argmaxRows(got.data, 5)).toEqual(argmaxRows(want, 5));
      expect(maxAbsDiff(got.data, want)).toBeLessThanOrEqual(1e-4);
    } finally {
      await head.release();
    }
  });

  it('GIVEN concurrent single-image calls THEN they share one batch and each gets its own embedding', async () => {
    const before = fast.inferenceStats();
    const [a, b, c] = await Promise.all(images.map((img) => fast.embedOne(img)));
    const after = fast.inferenceStats();
    expect(after.batches - before.batches).toBe(1);
    expect(after.largestBatch).toBe(3);
    const batch = new Float32Array(3 * PIXELS);
    images.forEach((img, i) => batch.set(img, i * PIXELS));
    const flat = await fast.embedBatch(batch, 3);
    [a, b, c].forEach((e, i) => expect(maxAbsDiff(e!, flat.subarray(i * 1280, (i + 1) * 1280))).toBeLessThanOrEqual(1e-5));
    await expect(fast.embedOne(new Float32Array(10))).rejects.toMatchObject({ code: 'BAD_INPUT' });
  });

  it('GIVEN featuresAsync(out_relu) THEN channels-last maps matching tfjs features()', async () => {
    const [feat] = await fast.featuresAsync(images[0]!, 1, ['out_relu']);
    expect(feat!.dims).toEqual([1, 7, 7, 1280]);
    const tf = base.tf;
    const want = tf.tidy(() => base.features(tf.tensor4d(images[0]!, [1, S, S, 3]), ['out_relu'])[0]!.dataSync());
    expect(maxAbsDiff(feat!.data, want)).toBeLessThanOrEqual(1e-4);
  });

  it('GIVEN a second process start THEN the export is read from <dataDir>/onnx, not redone', async () => {
    const dir = path.join(dataDir, 'onnx');
    const files = readdirSync(dir).filter((f) => f.startsWith('mobilenet_v2-embed-') && f.endsWith('.onnx'));
    expect(files).toHaveLength(1);
    const file = path.join(dir, files[0]!);
    const mtime = statSync(file).mtimeMs;
    const again = await accelerateBackbone(base, { dataDir });
    try {
      expect(readdirSync(dir).filter((f) => f.startsWith('mobilenet_v2-embed-'))).toEqual(files);
      expect(statSync(file).mtimeMs).toBe(mtime);
      const [e] = await again.embedImages([images[1]!]);
      const [want] = await fast.embedImages([images[1]!]);
      expect(maxAbsDiff(e!, want!)).toBeLessThanOrEqual(1e-6);
    } finally {
      await again.releaseInference();
    }
  });

  it('GIVEN raw images and every async path THEN no tfjs tensor leaks', async () => {
    const tf = base.tf;
    const raw = { data: Uint8Array.from(randomFloats(40 * 30 * 3, 9), (v) => Math.round(v * 255)), width: 40, height: 30 };
    await fast.embedImages([raw, images[0]!]); // warm any lazy state first
    const before = tf.memory().numTensors;
    await fast.embedImages([raw, images[0]!]);
    await fast.embedOne(raw);
    await fast.featuresAsync(images[0]!, 1, ['out_relu']);
    // Tensor in, tensor out (Score-CAM's masked batches): the caller owns exactly the returned tensors.
    const batch = tf.tensor4d(images[2]!, [1, S, S, 3]);
    const emb = await fast.embedTensor(batch);
    const [feat] = await fast.featuresTensor(batch, ['out_relu']);
    expect(emb.shape).toEqual([1, 1280]);
    expect(feat!.shape).toEqual([1, 7, 7, 1280]);
    const [want] = await base.embedImages([images[2]!]);
    expect(maxAbsDiff(emb.dataSync(), want!)).toBeLessThanOrEqual(1e-4);
    const wrong = tf.zeros([1, 8, 8, 3]) as tfTypes.Tensor4D;
    await expect(fast.embedTensor(wrong)).rejects.toMatchObject({ code: 'BAD_INPUT' });
    tf.dispose([batch, emb, feat!, wrong]);
    expect(tf.memory().numTensors).toBe(before);
  });
});
