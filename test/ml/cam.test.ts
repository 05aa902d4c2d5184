import { describe, it, expect, beforeAll } from 'vitest';
import sharp from 'sharp';
import type * as tfTypes from '@tensorflow/tfjs';
import {
  filterGrid,
  getTf,
  gradCam,
  gradCamFromGradient,
  gradCamFromGradientParts,
  layerActivations,
  sampleHeatmap,
  heatmapPng,
  jet,
  loadBackbone,
  loadBackboneFrom,
  fileSystemHandler,
  overlayHeatmap,
  preprocess,
  scoreCam,
  type Backbone,
  type HeadFn,
  type Heatmap,
  type Tf,
} from '../../engine/ml/index.ts';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { drawShoe, tinyConvModel, twoSquares } from './fixtures.ts';

let tf: Tf;
let tiny: Backbone;
// Class k's score is embedding channel k (0 = red, 1 = green, 2 = blue).
const identityHead: HeadFn = (e) => e.mul(1) as tfTypes.Tensor2D;

/** Mean heat over a rectangle of cells. */
function meanHeat(h: Heatmap, x0: number, y0: number, x1: number, y1: number): number {
  let s = 0;
  let n = 0;
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++, n++) s += h.data[y * h.width + x]!;
  return s / n;
}

beforeAll(async () => {
  tf = await getTf();
  const folder = path.join(await mkdtemp(path.join(tmpdir(), 'solescope-cam-')), 'tiny');
  const model = tinyConvModel(tf);
  await model.save(fileSystemHandler(folder));
  model.dispose();
  tiny = await loadBackboneFrom(folder, { embeddingLayer: 'pool', camLayer: 'feat', name: 'tiny' });
});

describe('Grad-CAM', () => {
  it('GIVEN a red square top-left and a green one bottom-right THEN each class lights up its own square', async () => {
    const input = twoSquares();
    const before = tf.memory().numTensors;
    const red = await gradCam(tiny, input, identityHead, { classIndex: 0 });
    const green = await gradCam(tiny, input, identityHead, { classIndex: 1 });
    expect(tf.memory().numTensors).toBe(before);
    expect(red).toMatchObject({ method: 'gradcam', layer: 'feat', classIndex: 0 });
    expect(red.heatmap.width).toBe(16);
    expect(meanHeat(red.heatmap, 0, 0, 5, 5)).toBeCloseTo(1, 5);
    expect(meanHeat(red.heatmap, 11, 11, 16, 16)).toBe(0);
    expect(meanHeat(green.heatmap, 11, 11, 16, 16)).toBeCloseTo(1, 5);
    expect(meanHeat(green.heatmap, 0, 0, 5, 5)).toBe(0);
    // Scores are the head's output for the input: 25/256 red, 25/256 green, no blue.
    expect(red.scores[0]).toBeCloseTo(25 / 256, 5);
    expect(red.scores[2]).toBe(0);
  });

  it('GIVEN no class index THEN the top class is explained; a bad index is BAD_INPUT', async () => {
    const input = twoSquares();
    input[8 * 3 + 1] = 1; // one more green pixel (row 0, column 8): green wins
    const top = await gradCam(tiny, input, identityHead);
    expect(top.classIndex).toBe(1);
    await expect(gradCam(tiny, input, identityHead, { classIndex: 7 })).rejects.toMatchObject({ code: 'BAD_INPUT' });
  });

  it('GIVEN the embedding gradient of a linear head THEN gradCamFromGradient draws the same map as gradCam, and precomputed activations give the same result', async () => {
    const input = twoSquares();
    input[8 * 3 + 1] = 1;
    // Head scores = e · W; d(score_c)/de = W[:, c].
    const w = [
      [0.5, -1, 0.2],
      [2, 0.3, -0.4],
      [-0.1, 0.7, 1],
    ];
    const head: HeadFn = (e) => tf.matMul(e, tf.tensor2d(w)) as tfTypes.Tensor2D;
    const x = tf.tensor4d(input, [1, 16, 16, 3]);
    const activations = await layerActivations(tiny, x, 'feat');
    x.dispose();
    for (let c = 0; c < 3; c++) {
      const viaGrad = await gradCam(tiny, input, head, { classIndex: c });
      const reused = await gradCam(tiny, input, head, { classIndex: c, activations });
      const closed = await gradCamFromGradient(activations, w.map((row) => row[c]!), { classIndex: c, scores: viaGrad.scores, layer: 'feat' });
      expect(closed.heatmap.width).toBe(viaGrad.heatmap.width);
      closed.heatmap.data.forEach((v, i) => expect(v).toBeCloseTo(viaGrad.heatmap.data[i]!, 5));
      reused.heatmap.data.forEach((v, i) => expect(v).toBeCloseTo(viaGrad.heatmap.data[i]!, 6));
    }
    expect(activations.isDisposed).toBe(false);
    await expect(gradCamFromGradient(activations, [1, 2], { classIndex: 0, scores: [], layer: 'feat' })).rejects.toMatchObject({ code: 'BAD_INPUT' });
    activations.dispose();
  });

  it('GIVEN a multi-level embedding (two layers at different resolutions) THEN each layer\'s map is weighed by its slice of the gradient, resampled to the finest grid and added before rectifying', async () => {
    const r = (i: number): number => Math.sin(i * 12.9898) * 0.5 + 0.5;
    // Part a: 4×4×2 (fine), part b: 2×2×1 (coarse); the embedding is [mean(a) (2), mean(b) (1)].
    const a = tf.tensor4d(Array.from({ length: 32 }, (_, i) => r(i)), [1, 4, 4, 2]);
    const b = tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1]);
    const parts = [{ layer: 'a', activations: a }, { layer: 'b', activations: b }];
    const meta = { classIndex: 0, scores: [0] };
    // Zero weight on b: exactly the single-layer Grad-CAM of a.
    const onlyA = await gradCamFromGradientParts(parts, [0.7, -0.2, 0], meta);
    const single = await gradCamFromGradient(a, [0.7, -0.2], { ...meta, layer: 'a' });
    expect(onlyA).toMatchObject({ layer: 'a+b', method: 'gradcam', heatmap: { width: 4, height: 4 } });
    onlyA.heatmap.data.forEach((v, i) => expect(v).toBeCloseTo(single.heatmap.data[i]!, 6));
    // Zero weight on a: b's 2×2 map, bilinearly resampled to 4×4 (increasing towards the bottom right).
    const onlyB = await gradCamFromGradientParts(parts, [0, 0, 1], meta);
    const bMap = { data: Float32Array.from([1, 2, 3, 4]), width: 2, height: 2 };
    const want = Array.from({ length: 16 }, (_, p) => sampleHeatmap(bMap, ((p % 4) + 0.5) / 4, (Math.floor(p / 4) + 0.5) / 4));
    const maxWant = Math.max(...want);
    onlyB.heatmap.data.forEach((v, i) => expect(v).toBeCloseTo(want[i]! / maxWant, 6));
    // Both: the sum is rectified once. A negative weight on a constant-ish b lowers every cell of a's map by the
    // same resampled amount; rectifying the parts separately would have kept a's map unchanged.
    const both = await gradCamFromGradientParts(parts, [1, 0, -0.1], meta);
    const aData = (await a.data()) as Float32Array;
    const sum = Array.from({ length: 16 }, (_, p) => Math.max(0, aData[p * 2]! - 0.1 * sampleHeatmap(bMap, ((p % 4) + 0.5) / 4, (Math.floor(p / 4) + 0.5) / 4)));
    const maxSum = Math.max(...sum);
    both.heatmap.data.forEach((v, i) => expect(v).toBeCloseTo(sum[i]! / maxSum, 5));
    // The gradient must cover every channel of every part.
    await expect(gradCamFromGradientParts(parts, [1, 0], meta)).rejects.toMatchObject({ code: 'BAD_INPUT' });
    expect(a.isDisposed || b.isDisposed).toBe(false);
    tf.dispose([a, b]);
  });

  it('GIVEN MobileNetV2 at out_relu and a softmax head THEN a 7x7 map in [0,1] and no leaked tensor', async () => {
    const mobilenet = await loadBackbone('mobilenet_v2');
    const prep = await preprocess(drawShoe({ seed: 5, toe: 'right' }), { size: 224 });
    const w = tf.randomNormal([1280, 4], 0, 0.05, 'float32', 11);
    const head: HeadFn = (e) => tf.softmax(tf.matMul(e, w)) as tfTypes.Tensor2D;
    const before = tf.memory().numTensors;
    const cam = await gradCam(mobilenet, prep, head);
    expect(tf.memory().numTensors).toBe(before);
    expect(cam.heatmap).toMatchObject({ width: 7, height: 7 });
    expect(Math.max(...cam.heatmap.data)).toBeCloseTo(1, 5);
    expect(Math.min(...cam.heatmap.data)).toBeGreaterThanOrEqual(0);
    expect(cam.scores.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
    // Score-CAM on the same image with a handful of maps (one batched forward pass).
    const sc = await scoreCam(mobilenet, prep, head, { maps: 4, batchSize: 4 });
    expect(tf.memory().numTensors).toBe(before);
    expect(sc).toMatchObject({ method: 'scorecam', layer: 'out_relu', classIndex: cam.classIndex });
    expect(sc.heatmap).toMatchObject({ width: 7, height: 7 });
    w.dispose();
  });
});

describe('Score-CAM', () => {
  it('GIVEN the two squares THEN each class lights up its own square and nothing leaks', async () => {
    const input = twoSquares();
    const before = tf.memory().numTensors;
    const red = await scoreCam(tiny, input, identityHead, { classIndex: 0, maps: 3, batchSize: 2 });
    const green = await scoreCam(tiny, input, identityHead, { classIndex: 1, maps: 3 });
    expect(tf.memory().numTensors).toBe(before);
    expect(meanHeat(red.heatmap, 0, 0, 5, 5)).toBeGreaterThan(0.99);
    expect(meanHeat(red.heatmap, 11, 11, 16, 16)).toBeLessThan(0.01);
    expect(meanHeat(green.heatmap, 11, 11, 16, 16)).toBeGreaterThan(0.99);
    expect(meanHeat(green.heatmap, 0, 0, 5, 5)).toBeLessThan(0.01);
  });

  it('GIVEN a tensor input THEN it is used as is and not disposed; a batch of two is BAD_INPUT', async () => {
    const x = tf.tensor4d(twoSquares(), [1, 16, 16, 3]);
    await scoreCam(tiny, x, identityHead, { maps: 2 });
    expect(x.isDisposed).toBe(false);
    const two = tf.concat([x, x]) as tfTypes.Tensor4D;
    await expect(scoreCam(tiny, two, identityHead)).rejects.toMatchObject({ code: 'BAD_INPUT' });
    tf.dispose([x, two]);
  });
});

describe('filter grid and overlays', () => {
  it('GIVEN the tiny model THEN the first conv filters make a grid PNG of the right size, without leaks', async () => {
    const before = tf.memory().numTensors;
    const grid = await filterGrid(tiny, twoSquares(), { columns: 2, tile: 16 });
    expect(tf.memory().numTensors).toBe(before);
    expect(grid).toMatchObject({ layer: 'feat', filters: 3, columns: 2, tile: 16 });
    const meta = await sharp(grid.png).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 2 * 16 + 3 * 2, 2 * 16 + 3 * 2]);
    // Filter 0 (red) response: bright top-left tile corner, dark bottom-right.
    const { data, info } = await sharp(grid.png).raw().toBuffer({ resolveWithObject: true });
    const px = (x: number, y: number): number => data[(y * info.width + x) * info.channels]!;
    expect(px(2 + 1, 2 + 1)).toBe(255);
    expect(px(2 + 14, 2 + 14)).toBe(0);
  });

  it('GIVEN MobileNetV2 THEN filterGrid shows all 32 Conv1 filters', async () => {
    const mobilenet = await loadBackbone('mobilenet_v2');
    const prep = await preprocess(drawShoe({ seed: 9, toe: 'left' }), { size: 224 });
    const before = tf.memory().numTensors;
    const grid = await filterGrid(mobilenet, prep, { tile: 32 });
    expect(tf.memory().numTensors).toBe(before);
    expect(grid).toMatchObject({ layer: 'Conv1', filters: 32, columns: 8 });
    const meta = await sharp(grid.png).metadata();
    expect([meta.width, meta.height]).toEqual([8 * 32 + 9 * 2, 4 * 32 + 5 * 2]);
  });

  it('GIVEN a heatmap THEN the overlay blends jet colours where it is hot, also mapped back onto the original', async () => {
    expect(jet(0)).toEqual([0, 0, 128]);
    expect(jet(1)).toEqual([128, 0, 0]);
    const heatmap: Heatmap = { data: Float32Array.from([1, 0, 0, 0]), width: 2, height: 2 };
    const gray = { data: new Uint8Array(100 * 100 * 3).fill(128), width: 100, height: 100, channels: 3 as const };
    const png = await overlayHeatmap(gray, heatmap, { size: 100, alpha: 0.5 });
    const { data } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    // Top-left is hot (red dominates), bottom-right cold (blue dominates).
    expect(data[0]!).toBeGreaterThan(data[2]!);
    const br = (99 * 100 + 99) * 3;
    expect(data[br + 2]!).toBeGreaterThan(data[br]!);

    // Placement: the heatmap covered the crop x 50..100 mirrored, so the hot cell lands top-RIGHT.
    const placed = await overlayHeatmap(gray, heatmap, {
      size: 100,
      alpha: 0.5,
      placement: { crop: { x: 50, y: 0, width: 50, height: 50 }, mirrored: true },
    });
    const p = (await sharp(placed).raw().toBuffer({ resolveWithObject: true })).data;
    expect(Array.from(p.subarray(0, 3))).toEqual([128, 128, 128]); // outside the crop: untouched
    const tr = (2 * 100 + 97) * 3;
    expect(p[tr]!).toBeGreaterThan(p[tr + 2]!);
    // A turned photo (frame given): the identity frame maps exactly like the plain placement; a half-turn frame
    // (the preprocessing turned the photo 180° on the same canvas) moves the hot cell to the opposite corner.
    const identity = await overlayHeatmap(gray, heatmap, { size: 100, alpha: 0.5, placement: { crop: { x: 50, y: 0, width: 50, height: 50 }, mirrored: true, frame: [1, 0, 0, 0, 1, 0] } });
    expect((await sharp(identity).raw().toBuffer()).equals(p)).toBe(true);
    const half = await overlayHeatmap(gray, heatmap, { size: 100, alpha: 0.5, placement: { crop: { x: 0, y: 0, width: 100, height: 100 }, mirrored: false, frame: [-1, 0, 100, 0, -1, 100] } });
    const h = (await sharp(half).raw().toBuffer({ resolveWithObject: true })).data;
    expect(h[br]!).toBeGreaterThan(h[br + 2]!); // bottom-right of the photo is the turned frame's top-left: hot
    expect(h[2]!).toBeGreaterThan(h[0]!);
    const standalone = await heatmapPng(heatmap, 32);
    expect((await sharp(standalone).metadata()).width).toBe(32);
  });
});
