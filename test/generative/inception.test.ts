/**
 * Deep dream and style transfer on the real InceptionV3 (from nsfwjs), at small sizes (≤ 100 px) so the
 * file stays fast: a dream step raises the chosen layer's activation (whole and tiled), a style step lowers
 * the style loss, nothing leaks, and the commands answer with PNGs, previews and coded errors end to end.
 */
import sharp from 'sharp';
import type * as tfjs from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { createEngine, type Engine, type ProgressEvent } from '../../engine/index.ts';
import { getTf } from '../../engine/ml/runtime.ts';
import { loadBackbone, type Backbone } from '../../engine/ml/backbones.ts';
import plugin from '../../plugins/generative/index.ts';
import { dreamObjective, dreamStep, type ActivationModel } from '../../plugins/generative/lib/dream.ts';
import { gram, startStyleTransfer, styleLosses, styleTargets, type MultiLayerModel } from '../../plugins/generative/lib/style.ts';
import { drawStyle } from '../../plugins/generative/lib/styles.ts';
import { mulberry32 } from '../../plugins/generative/lib/gan.ts';
import { rgbToTensor } from '../../plugins/generative/lib/pictures.ts';
import { STYLE_LAYERS } from '../../plugins/generative/jobs.ts';

type Tf = typeof tfjs;
let tf: Tf;
let backbone: Backbone;
let engine: Engine;

/** A sneaker-ish test picture: white background, a coloured upper, a dark sole. */
async function shoePng(width: number, height: number): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
    <rect width="100%" height="100%" fill="#ffffff"/>
    <path d="M ${width * 0.1} ${height * 0.7} Q ${width * 0.3} ${height * 0.2} ${width * 0.6} ${height * 0.45} L ${width * 0.9} ${height * 0.6} L ${width * 0.9} ${height * 0.75} L ${width * 0.1} ${height * 0.75} Z" fill="#c0392b"/>
    <rect x="${width * 0.08}" y="${height * 0.75}" width="${width * 0.84}" height="${height * 0.08}" fill="#222222"/>
  </svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

async function shoeTensor(width: number, height: number): Promise<tfjs.Tensor3D> {
  const { data, info } = await sharp(await shoePng(width, height)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return rgbToTensor(tf, { data: new Uint8Array(data), width: info.width, height: info.height });
}

beforeAll(async () => {
  tf = await getTf({ backend: 'wasm' });
  backbone = await loadBackbone('inception_v3');
  engine = createEngine();
  await engine.register(plugin);
});

function layerModel(layer: string): ActivationModel {
  const m = backbone.featureModel([layer]);
  return { apply: (x) => m.apply(x) as tfjs.Tensor };
}

describe('deep dream', () => {
  it('GIVEN a dream step on mixed3 THEN the layer activation rises and no tensor leaks', async () => {
    const model = layerModel('mixed3');
    const image = await shoeTensor(96, 96);
    const before = tf.memory().numTensors;
    const a = dreamObjective(tf, model, image);
    const next = dreamStep(tf, model, image, { stepSize: 0.02, jitter: 8, tileSize: 320, minSide: 75, rng: mulberry32(1) });
    const b = dreamObjective(tf, model, next);
    expect(b).toBeGreaterThan(a);
    expect(next.shape).toEqual([96, 96, 3]);
    next.dispose();
    expect(tf.memory().numTensors).toBe(before);
    image.dispose();
  });

  it('GIVEN an image larger than a tile THEN the tiled step keeps its size and still raises the activation', async () => {
    const model = layerModel('mixed2');
    const image = await shoeTensor(170, 90);
    const a = dreamObjective(tf, model, image);
    const next = dreamStep(tf, model, image, { stepSize: 0.02, jitter: 4, tileSize: 85, minSide: 75, rng: mulberry32(2) });
    expect(next.shape).toEqual([90, 170, 3]);
    expect(dreamObjective(tf, model, next)).toBeGreaterThan(a);
    tf.dispose([image, next]);
  });

  it('GIVEN the dream command THEN it runs as a job with per-step previews, notes a downscale and returns a PNG', async () => {
    const events: ProgressEvent[] = [];
    const r = await engine.invoke(
      'dream',
      { image: { kind: 'buffer', data: await shoePng(400, 300), name: 'big.png' }, octaves: 1, steps: 2, size: 96 },
      { transport: 'test', onProgress: (e) => events.push(e) },
    );
    if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
    expect(r.reply.data?.note).toMatch(/downscaled from 400×300 to 96×72/);
    expect(r.reply.data?.activationAfter as number).toBeGreaterThan(r.reply.data?.activationBefore as number);
    const png = r.reply.images?.find((i) => i.name === 'dream.png')?.png;
    expect((await sharp(png!).metadata()).format).toBe('png');
    const previews = events.filter((e) => e.preview);
    expect(previews.length).toBe(2);
    expect(Buffer.isBuffer(previews[0]!.preview!.png)).toBe(true);
  });

  it('GIVEN absurd dream settings THEN the schema refuses them with a clear message', async () => {
    const r = await engine.invoke('dream', { image: { kind: 'buffer', data: await shoePng(80, 80) }, steps: 5000 }, { transport: 'test', caller: { id: 'c1' } });
    expect(!r.ok && r.error.code).toBe('BAD_INPUT');
    expect(!r.ok && r.error.message).toMatch(/steps must be at most 50/);
    const layer = await engine.invoke('dream', { image: { kind: 'buffer', data: await shoePng(80, 80) }, layer: 'dense_1' }, { transport: 'test', caller: { id: 'c2' } });
    expect(!layer.ok && layer.error.code).toBe('BAD_INPUT');
    const notImage = await engine.invoke('dream', { image: { kind: 'buffer', data: Buffer.from('hello, not a picture') } }, { transport: 'test', caller: { id: 'c3' } });
    expect(!notImage.ok && notImage.error.code).toBe('NOT_AN_IMAGE');
  });
});

describe('style transfer', () => {
  it('GIVEN a known feature map THEN its Gram matrix is FᵀF / (h·w·c)', () => {
    const f = tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 2, 2]);
    const g = tf.tidy(() => gram(tf, f).arraySync() as number[][]);
    // Channels: [1,3,5,7] and [2,4,6,8]; dot products 84, 100, 120 over 2·2·2 = 8.
    expect(g).toEqual([[84 / 8, 100 / 8], [100 / 8, 120 / 8]]);
    f.dispose();
  });

  it('GIVEN a style step THEN the style loss goes down and nothing leaks', async () => {
    const m = backbone.featureModel([...STYLE_LAYERS]);
    const model: MultiLayerModel = { apply: (x) => m.apply(x) as tfjs.Tensor[] };
    const content = await shoeTensor(80, 80);
    const style = rgbToTensor(tf, drawStyle('mosaic', 80));
    const before = tf.memory().numTensors;
    const targets = styleTargets(tf, model, content, style);
    const weights = { content: 1, style: 10, tv: 10 };
    const run = startStyleTransfer(tf, model, content, targets, weights, 0.02);
    const first = run.step();
    const second = run.step();
    const after = tf.tidy(() => styleLosses(tf, model, run.image, targets, weights).style.dataSync()[0]!);
    expect(first.content).toBeCloseTo(0, 6); // initialised from the content image
    expect(first.style).toBeGreaterThan(0);
    expect(second.style).toBeLessThan(first.style);
    expect(after).toBeLessThan(second.style);
    run.dispose();
    targets.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([content, style]);
  });

  it('GIVEN one photo and a bundled style name THEN the command returns content, style and result side by side', async () => {
    const r = await engine.invoke(
      'style-transfer',
      { content: { kind: 'buffer', data: await shoePng(120, 90) }, style: 'dots', steps: 1, size: 96 },
      { transport: 'test' },
    );
    if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
    expect(r.reply.data).toMatchObject({ style: 'dots', bundledStyle: 'dots', steps: 1, width: 96, height: 75 });
    const triptych = await sharp(r.reply.images![0]!.png).metadata();
    expect(triptych.width).toBeGreaterThan(3 * 96); // three panels and gutters
    const result = await sharp(r.reply.images![1]!.png).metadata();
    expect([result.width, result.height]).toEqual([96, 75]);
  });

  it('GIVEN absurd weights or steps THEN BAD_INPUT with the bound in the message', async () => {
    const content = { kind: 'buffer', data: await shoePng(80, 80) } as const;
    const steps = await engine.invoke('style-transfer', { content, steps: 100000 }, { transport: 'test', caller: { id: 'a' } });
    expect(!steps.ok && steps.error.message).toMatch(/steps must be at most 300/);
    const weight = await engine.invoke('style-transfer', { content, styleWeight: 1e12 }, { transport: 'test', caller: { id: 'b' } });
    expect(!weight.ok && weight.error.code).toBe('BAD_INPUT');
    expect(!weight.ok && weight.error.message).toMatch(/style-weight must be at most/);
  });
});
