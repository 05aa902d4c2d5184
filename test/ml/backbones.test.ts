import { describe, it, expect, beforeAll } from 'vitest';
import type * as tfTypes from '@tensorflow/tfjs';
import {
  BACKBONE_SPECS,
  embeddingPartsOf,
  getTf,
  gradCam,
  gradCamFromGradientParts,
  layersActivations,
  loadBackbone,
  NSFW_CLASSES,
  nsfwScores,
  pretrainedOf,
  type Backbone,
  type Tf,
} from '../../engine/ml/index.ts';
import { rng } from './fixtures.ts';

let tf: Tf;
let mobilenet: Backbone;

function randomImages(n: number, size: number, seed: number): Float32Array[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => Float32Array.from({ length: size * size * 3 }, () => r()));
}

beforeAll(async () => {
  tf = await getTf();
  mobilenet = await loadBackbone('mobilenet_v2');
});

describe('built-in backbones (nsfwjs, offline)', () => {
  it('GIVEN concurrent loads THEN one shared MobileNetV2 with the documented shape', async () => {
    const [a, b] = await Promise.all([loadBackbone('mobilenet_v2'), loadBackbone('mobilenet_v2')]);
    expect(a).toBe(mobilenet);
    expect(b).toBe(mobilenet);
    expect(mobilenet).toMatchObject({ name: 'mobilenet_v2', inputSize: 224, embedDim: 1280, camLayer: 'out_relu' });
    expect(mobilenet.layerNames()).toEqual(expect.arrayContaining(['flatten_1', 'out_relu', 'block_6_expand_relu']));
    // The nsfwjs head is still there: 5 probabilities per image that sum to one.
    const before = tf.memory().numTensors;
    const scores = await nsfwScores(mobilenet, randomImages(2, 224, 9));
    expect(tf.memory().numTensors).toBe(before);
    expect(scores).toHaveLength(2);
    expect(Object.keys(scores[0]!)).toEqual([...NSFW_CLASSES]);
    for (const row of scores) expect(Object.values(row).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
  });

  it('GIVEN two images THEN embed, embedImages (any batch size) and features agree and nothing leaks', async () => {
    const images = randomImages(2, 224, 1);
    const before = tf.memory().numTensors;
    const batch = mobilenet.toBatch(images);
    const emb = mobilenet.embed(batch);
    expect(emb.shape).toEqual([2, 1280]);
    const [outRelu, mid] = mobilenet.features(batch, ['out_relu', 'block_6_expand_relu']);
    expect(outRelu!.shape).toEqual([2, 7, 7, 1280]);
    expect(mid!.shape).toEqual([2, 28, 28, 192]);
    // flatten_1 is the spatial mean of out_relu.
    const pooled = tf.tidy(() => outRelu!.mean([1, 2]));
    const diff = tf.tidy(() => pooled.sub(emb).abs().max());
    expect((await diff.data())[0]).toBeLessThan(1e-4);
    const flat = await emb.data();
    tf.dispose([batch, emb, outRelu!, mid!, pooled, diff]);
    expect(tf.memory().numTensors).toBe(before);

    const progress: number[] = [];
    const one = await mobilenet.embedImages(images, { batchSize: 1, onProgress: (done) => progress.push(done) });
    expect(progress).toEqual([1, 2]);
    expect(one).toHaveLength(2);
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < 1280; j += 97) expect(one[i]![j]).toBeCloseTo(flat[i * 1280 + j]!, 3);
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('GIVEN a raw RGB image THEN embedImages resizes it (stretch) and a wrong-sized float input is BAD_INPUT', async () => {
    const raw = { data: new Uint8Array(40 * 30 * 3).fill(200), width: 40, height: 30, channels: 3 as const };
    const before = tf.memory().numTensors;
    const [e] = await mobilenet.embedImages([raw]);
    const plain = await mobilenet.embedImages([new Float32Array(224 * 224 * 3).fill(200 / 255)]);
    for (let j = 0; j < 1280; j += 131) expect(e![j]).toBeCloseTo(plain[0]![j]!, 3);
    await expect(mobilenet.embedImages([new Float32Array(10)])).rejects.toMatchObject({ code: 'BAD_INPUT' });
    const wrong = tf.zeros([1, 100, 100, 3]) as tfTypes.Tensor4D;
    expect(() => mobilenet.features(wrong, ['out_relu'])).toThrow(/224,224,3/);
    wrong.dispose();
    expect(() => mobilenet.featureModel(['no_such_layer'])).toThrow(/no layer "no_such_layer"/);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('GIVEN an unknown backbone name THEN BAD_INPUT', async () => {
    await expect(loadBackbone('resnet' as never)).rejects.toMatchObject({ code: 'BAD_INPUT' });
  });

  it('GIVEN InceptionV3 THEN its scale-less BatchNorms are fixed and gradients flow through it', async () => {
    const inception = await loadBackbone('inception_v3');
    expect(inception).toMatchObject({ inputSize: 299, embedDim: BACKBONE_SPECS.inception_v3.embedDim, camLayer: 'mixed10' });
    const bns = inception.model.layers.filter((l) => l.getClassName() === 'BatchNormalization');
    expect(bns.length).toBe(94);
    expect(bns.every((l) => (l as unknown as { gamma: unknown }).gamma != null)).toBe(true);
    const before = tf.memory().numTensors;
    // The real first BN layer: forward equals (x - mean) / sqrt(var + eps) + beta, and its gradient flows.
    const bn = inception.model.getLayer('batch_normalization_1');
    const x = tf.randomUniform([1, 3, 3, 32], -1, 1, 'float32', 3) as tfTypes.Tensor4D;
    const [mean, variance, beta] = ['moving_mean', 'moving_variance', 'beta'].map(
      (n) => bn.weights.find((w) => w.originalName.endsWith(n))!.read(),
    );
    const expected = tf.tidy(() => x.sub(mean!).div(variance!.add(0.001).sqrt()).add(beta!));
    const actual = bn.apply(x) as tfTypes.Tensor;
    const diff = tf.tidy(() => actual.sub(expected).abs().max());
    expect((await diff.data())[0]).toBeLessThan(1e-4);
    const g = tf.grad((t: tfTypes.Tensor) => (bn.apply(t) as tfTypes.Tensor).sum())(x);
    const wantGrad = tf.tidy(() => tf.onesLike(x).div(variance!.add(0.001).sqrt()));
    const gradDiff = tf.tidy(() => g.sub(wantGrad).abs().max());
    expect((await gradDiff.data())[0]).toBeLessThan(1e-3);
    tf.dispose([x, expected, actual, diff, g, wantGrad, gradDiff]);
    // One forward pass: the 2048-d embedding.
    const [e] = await inception.embedImages([new Float32Array(299 * 299 * 3).fill(0.5)]);
    expect(e).toHaveLength(2048);
    expect(e!.every(Number.isFinite)).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
  });

  // Each multi-level variant: the spatial means of its mid-level blocks, then the inception_v3 embedding.
  it.each([
    { name: 'inception_v3_m7', pooled: ['mixed7'] },
    { name: 'inception_v3_m67', pooled: ['mixed6', 'mixed7'] },
  ] as const)('GIVEN the multi-level $name THEN its embedding is its mid-level blocks\' means, then the inception_v3 embedding, on both engines, and the nsfwjs head still answers', async ({ name, pooled }) => {
    const [inception, multi] = await Promise.all([loadBackbone('inception_v3'), loadBackbone(name)]);
    const dim = 768 * pooled.length + 2048;
    const parts = [...pooled, 'mixed10'];
    expect(multi).toMatchObject({ name, inputSize: 299, embedDim: dim, camLayer: 'mixed10' });
    expect(embeddingPartsOf(multi)).toEqual(parts);
    expect(embeddingPartsOf(inception)).toEqual(['mixed10']);
    expect(pretrainedOf(name)).toBe('inception_v3');
    expect(multi.model).not.toBe(inception.model); // its own weights: disposing one leaves the other intact
    const img = randomImages(1, 299, 11)[0]!;
    const before = tf.memory().numTensors;
    const [fast] = await multi.embedImages([img]); // onnxruntime where available
    const [base] = await inception.embedImages([img]);
    const x = tf.tensor4d(img, [1, 299, 299, 3]);
    const blocks = inception.features(x, [...pooled]);
    const means = blocks.map((b) => tf.mean(b, [1, 2]));
    const want = [...(await Promise.all(means.map((m) => m.data()))).flatMap((m) => [...m]), ...base!];
    const viaTfjs = multi.embed(x);
    const slow = await viaTfjs.data();
    tf.dispose([x, ...blocks, ...means, viaTfjs]);
    expect(fast).toHaveLength(dim);
    want.forEach((v, i) => {
      expect(Math.abs(fast![i]! - v)).toBeLessThan(1e-3);
      expect(Math.abs(slow[i]! - v)).toBeLessThan(1e-3);
    });
    const [scores] = await nsfwScores(multi, [img]);
    expect(Object.values(scores!).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
    // Grad-CAM through tf.grad on the whole multi-level embedding = the closed form with a linear head's column.
    const w = Array.from({ length: dim * 2 }, (_, i) => Math.sin(i * 0.37) * 0.01);
    const wT = tf.tensor2d(w, [dim, 2]);
    const head = (e: tfTypes.Tensor2D): tfTypes.Tensor2D => tf.matMul(e, wT);
    const viaGrad = await gradCam(multi, img, head, { classIndex: 1 });
    const xb = tf.tensor4d(img, [1, 299, 299, 3]);
    const acts = await layersActivations(multi, xb, parts);
    const closed = await gradCamFromGradientParts(parts.map((layer, i) => ({ layer, activations: acts[i]! })), w.filter((_, i) => i % 2 === 1), { classIndex: 1, scores: [] });
    tf.dispose([wT, xb, ...acts]);
    expect(viaGrad).toMatchObject({ layer: parts.join('+'), heatmap: { width: 17, height: 17 } });
    viaGrad.heatmap.data.forEach((v, i) => expect(v).toBeCloseTo(closed.heatmap.data[i]!, 3));
    expect(tf.memory().numTensors).toBe(before);
  });
});
