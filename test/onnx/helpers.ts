/**
 * Tiny, seeded fixtures for the ONNX tests: models built in code (no files, no downloads) that exercise the
 * layer types of MobileNetV2 and InceptionV3, and a minimal backbone over any LayersModel.
 */
import type * as tfTypes from '@tensorflow/tfjs';
import type { Tf } from '../../engine/ml/runtime.ts';
import type { BackboneLike, ImageLike } from '../../engine/ml/onnx/index.ts';
import { seededRandom as seeded } from '../../engine/random.ts';

/** The project's seeded PRNG (engine/random.ts), under this fixture's name. */
export { seeded };

/** `n` seeded floats in [lo, hi). */
export function randomFloats(n: number, seed: number, lo = 0, hi = 1): Float32Array {
  const rand = seeded(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * rand());
}

/**
 * Gives every weight of `model` seeded values: kernels in ±0.5, BN moving variances in [0.5, 1.5] and the other
 * BN statistics in ±0.5, so folding BN into a conv changes the weights for real.
 */
export function randomiseWeights(tf: Tf, model: tfTypes.LayersModel, seed: number): void {
  let s = seed;
  for (const layer of model.layers) {
    const weights = layer.weights.map((w) => {
      const size = w.shape.reduce((a: number, b) => a * (b ?? 1), 1);
      const variance = /moving_variance/.test(w.originalName) || /moving_variance/.test(w.name);
      return tf.tensor(randomFloats(size, s++, variance ? 0.5 : -0.5, variance ? 1.5 : 0.5), w.shape as number[]);
    });
    if (weights.length > 0) layer.setWeights(weights);
    for (const t of weights) t.dispose();
  }
}

/**
 * A small functional model with the layer types (and traps) of the nsfwjs backbones: ZeroPadding2D + VALID
 * stride-2 conv (MobileNetV2's stem), asymmetric SAME padding (stride 2 on an even size, 1x3/3x1 kernels),
 * BN with and without scale after convs (folded), ReLU6, depthwise (multiplier 2), residual Add, Inception-style
 * branches joined by Concatenate, AveragePooling2D SAME (padding excluded from the mean), MaxPooling2D,
 * GlobalAveragePooling2D, Flatten over a 2x2 map, Dense + BN (not foldable) + Dropout + softmax head.
 * Input [N,16,16,3]; outputs `embedding` (flatten) and `probs` (softmax over 3).
 */
export function tinyNet(tf: Tf, seed = 7): tfTypes.LayersModel {
  const L = tf.layers;
  const input = tf.input({ shape: [16, 16, 3], name: 'image' });
  const ap = (layer: tfTypes.layers.Layer, x: tfTypes.SymbolicTensor | tfTypes.SymbolicTensor[]) =>
    layer.apply(x) as tfTypes.SymbolicTensor;
  // MobileNetV2 stem: explicit pad then VALID stride 2 (the pad must fold into the conv's pads).
  let x = ap(L.zeroPadding2d({ padding: [[0, 1], [0, 1]] }), input);
  x = ap(L.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'valid', useBias: false }), x);
  x = ap(L.batchNormalization({ epsilon: 1e-3 }), x);
  x = ap(L.reLU({ maxValue: 6 }), x); // 8x8x8
  // Inverted residual: depthwise SAME + project + Add.
  let y = ap(L.depthwiseConv2d({ kernelSize: 3, padding: 'same', depthMultiplier: 2, useBias: false }), x);
  y = ap(L.batchNormalization({}), y);
  y = ap(L.reLU({ maxValue: 6 }), y);
  y = ap(L.conv2d({ filters: 8, kernelSize: 1, padding: 'same', useBias: false }), y);
  y = ap(L.batchNormalization({}), y);
  x = ap(L.add(), [x, y]);
  // Asymmetric SAME: stride 2 on an even size puts the extra pixel at the end (TF) — 8 → 4.
  let a = ap(L.conv2d({ filters: 6, kernelSize: 3, strides: 2, padding: 'same', useBias: false }), x);
  a = ap(L.batchNormalization({ scale: false }), a);
  a = ap(L.activation({ activation: 'relu' }), a);
  // Inception-style branches (1x3 → 3x1, SAME avg pool, max pool) concatenated on channels.
  let b = ap(L.conv2d({ filters: 4, kernelSize: [1, 3], padding: 'same', useBias: false }), a);
  b = ap(L.batchNormalization({ scale: false }), b);
  b = ap(L.activation({ activation: 'relu' }), b);
  b = ap(L.conv2d({ filters: 4, kernelSize: [3, 1], padding: 'same', activation: 'relu' }), b);
  const c = ap(L.averagePooling2d({ poolSize: 3, strides: 1, padding: 'same' }), a);
  const d = ap(L.maxPooling2d({ poolSize: 3, strides: 1, padding: 'same' }), a);
  let m = ap(L.concatenate({ axis: -1, name: 'mixed' }), [a, b, c, d]); // 4x4x22 (6+4+6+6)
  m = ap(L.maxPooling2d({ poolSize: 2, strides: 2, padding: 'valid' }), m); // 2x2x22
  const gap = ap(L.globalAveragePooling2d({}), m);
  // Flatten over a 2x2 map: needs the channels-last order back (a transpose inside the graph).
  const flat = ap(L.flatten({ name: 'embedding' }), m);
  let h = ap(L.concatenate({ name: 'features' }), [flat, gap]);
  h = ap(L.dense({ units: 12, activation: 'relu' }), h);
  h = ap(L.batchNormalization({}), h);
  h = ap(L.dropout({ rate: 0.5 }), h);
  const probs = ap(L.dense({ units: 3, activation: 'softmax', name: 'probs' }), h);
  const model = tf.model({ inputs: input, outputs: probs, name: 'tiny_net' });
  randomiseWeights(tf, model, seed);
  return model;
}

/** A minimal backbone over a model whose input is `[N,size,size,3]` (what `accelerateBackbone` wraps). */
export function tinyBackbone(tf: Tf, model: tfTypes.LayersModel, embeddingLayer: string, size: number): BackboneLike & { disposed: boolean } {
  const out = model.getLayer(embeddingLayer).output as tfTypes.SymbolicTensor;
  const embedDim = (out.shape.slice(1) as number[]).reduce((p, q) => p * q, 1);
  const embedder = tf.model({ inputs: model.inputs, outputs: out });
  const toBatch = (images: readonly ImageLike[]): tfTypes.Tensor4D =>
    tf.tidy(() =>
      tf.stack(
        images.map((img) => {
          if (img instanceof Float32Array) return tf.tensor3d(img, [size, size, 3]);
          if ('tensorData' in img) return tf.tensor3d(img.tensorData, [size, size, 3]);
          const raw = tf.tensor3d(Float32Array.from(img.data, (v) => v / 255), [img.height, img.width, 3]);
          return tf.image.resizeBilinear(raw, [size, size], true);
        }),
      ),
    ) as tfTypes.Tensor4D;
  const backbone = {
    name: model.name,
    inputSize: size,
    embedDim,
    embeddingLayer,
    model,
    disposed: false,
    toBatch,
    async embedImages(images: readonly ImageLike[]): Promise<Float32Array[]> {
      const t = tf.tidy(() => embedder.predict(toBatch(images)) as tfTypes.Tensor);
      const flat = (await t.data()) as Float32Array;
      t.dispose();
      return images.map((_, i) => flat.slice(i * embedDim, (i + 1) * embedDim));
    },
    dispose() {
      backbone.disposed = true;
    },
  };
  return backbone;
}

/** max |a − b|. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Index of the largest value in each row of a flat [rows, cols] array. */
export function argmaxRows(data: ArrayLike<number>, cols: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < data.length / cols; r++) {
    let best = 0;
    for (let c = 1; c < cols; c++) if (data[r * cols + c]! > data[r * cols + best]!) best = c;
    out.push(best);
  }
  return out;
}
