/**
 * Training a head on frozen backbone embeddings. Pure function of (embeddings, labels, options): the
 * queued training job, `npm run train:defaults` and the experiments all call {@link trainHead}.
 *
 * Imbalance is handled with class weights (inverse frequency, "balanced" as in scikit-learn); augmented
 * copies (mirrored, cropped, colour/background-jittered images embedded separately) enter as extra rows of
 * the same group. Weights are fitted with Adam on mini-batches in tfjs, seeded, then copied out to plain
 * arrays: the head file is JSON and inference needs no tensors.
 */
import type * as tfTypes from '@tensorflow/tfjs';
import { foldKernel, nuisanceDirections, projectOut } from '../../../engine/ml/nuisance.ts';
import { getTf } from '../../../engine/ml/runtime.ts';
import { BRANDS, type Task } from './labels.ts';
import {
  cosineDistance,
  l2normalise,
  type DenseLayer,
  type FeatureSpec,
  type HeadModel,
} from './head.ts';
import { seededRandom, shuffled } from './split.ts';

/** Options of {@link trainHead}. */
export interface TrainHeadOptions {
  /** `linear` (softmax regression) or `mlp` (one hidden ReLU layer). Default `linear`. */
  readonly type?: 'linear' | 'mlp';
  /** Hidden units of the MLP (default 64). */
  readonly hidden?: number;
  /** Epochs over the training rows (default 60). */
  readonly epochs?: number;
  /** Adam learning rate (default 3e-3). */
  readonly learningRate?: number;
  /** L2 weight penalty (default 1e-3). */
  readonly l2?: number;
  /** Dropout on the standardised input (default 0.2): cheap regularisation against source style. */
  readonly dropout?: number;
  /** Mini-batch size (default 256: few, larger steps keep tfjs op overhead low on small heads). */
  readonly batchSize?: number;
  /** Class weighting (default `balanced`). */
  readonly classWeight?: 'balanced' | 'none';
  /** Seed for initialisation, shuffling and dropout (default 42). */
  readonly seed?: number;
  /**
   * Fit this many times from consecutive seeds (`seed`, `seed + 1`, …) and serve the mean of the fits' logits
   * as one head (default 1); it removes the run-to-run noise of shuffling, initialisation and input dropout.
   * Linear heads: the logits are linear in the weights, so the weight average IS that ensemble, at the cost of
   * one head. MLPs: the fits' hidden layers are laid side by side (N × hidden ReLU units) and the output layer
   * takes each fit's units at 1/N, which is exactly the mean of their logits, in the same head format (N times
   * the size).
   */
  readonly seeds?: number;
  /** Brand heads: whether to fit the open-set (`other`) calibration (default true for brand). */
  readonly openSet?: boolean;
  /** Top-probability threshold below which answers are flagged low confidence (default 0.6). */
  readonly minConfidence?: number;
  /** Percentile of training distances that bounds "like the training data" (default 0.99). */
  readonly oodQuantile?: number;
  /**
   * With {@link TrainHeadInput.nuisanceGroups}: the most nuisance directions to project out (default 16; 0 turns
   * the projection off). See {@link nuisanceDirections}.
   */
  readonly nuisanceDirections?: number;
  /** Called after each epoch with the mean training loss. */
  readonly onEpoch?: (epoch: number, epochs: number, loss: number) => void | Promise<void>;
}

/** What {@link trainHead} needs besides the rows. */
export interface TrainHeadInput {
  readonly task: Task;
  /** Model id written into the file (e.g. `brand-default`). */
  readonly id: string;
  readonly backbone: string;
  readonly prepVersion: string;
  readonly features: FeatureSpec;
  /** Embeddings after the feature pipeline (flip-averaged if `features.flipAverage`). */
  readonly x: readonly Float32Array[];
  /** Labels of `x`. */
  readonly y: readonly string[];
  /** Extra rows for the open-set / ood calibration only (e.g. unlabelled sneakers); not used for fitting. */
  readonly unlabelled?: readonly Float32Array[];
  /**
   * Per-row loss weights (one per `x` row), multiplied with the class weights; default all 1. Used for
   * source balancing: each source then weighs the same within a class, so a big source's style does not
   * dominate what the head learns about the class.
   */
  readonly sampleWeight?: readonly number[];
  /**
   * Nuisance groupings, each one label per `x` row (e.g. the row's source, or which view of the photo it is).
   * Where a class has rows in several groups, the differences between the groups' means within the class are
   * style, not class: the head is fitted with those directions projected out of its input, so it cannot use
   * them (see {@link nuisanceDirections}). The projection is folded into the first layer's kernel, so the head
   * file and serving do not change.
   */
  readonly nuisanceGroups?: readonly (readonly string[])[];
  readonly meta?: Record<string, unknown>;
}

/** Mean and standard deviation per dimension (std floored so constant dimensions do not explode). */
export function fitStandardiser(x: readonly ArrayLike<number>[]): { mean: number[]; std: number[] } {
  const dim = x[0]?.length ?? 0;
  const mean = new Float64Array(dim);
  const sq = new Float64Array(dim);
  for (const v of x) for (let i = 0; i < dim; i++) mean[i]! += v[i]!;
  for (let i = 0; i < dim; i++) mean[i]! /= Math.max(1, x.length);
  for (const v of x) for (let i = 0; i < dim; i++) sq[i]! += (v[i]! - mean[i]!) ** 2;
  const std = Array.from(sq, (s) => Math.max(Math.sqrt(s / Math.max(1, x.length)), 1e-4));
  return { mean: Array.from(mean), std };
}

function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  const pos = Math.min(s.length - 1, Math.max(0, q * (s.length - 1)));
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

function meanUnit(vectors: readonly Float32Array[]): number[] {
  const dim = vectors[0]?.length ?? 0;
  const sum = new Float32Array(dim);
  for (const v of vectors) for (let i = 0; i < dim; i++) sum[i]! += v[i]!;
  return Array.from(l2normalise(sum));
}

/** Seeded spherical k-means on unit vectors (a handful of iterations is plenty for a coverage test). */
export function sphericalKMeans(units: readonly Float32Array[], k: number, seed: number, iterations = 15): number[][] {
  if (units.length === 0) return [];
  const kk = Math.min(k, units.length);
  const random = seededRandom(seed);
  let centroids = shuffled(units, random).slice(0, kk).map((u) => Array.from(u));
  for (let it = 0; it < iterations; it++) {
    const members: Float32Array[][] = centroids.map(() => []);
    for (const u of units) {
      let best = 0;
      let bestD = Infinity;
      centroids.forEach((c, j) => {
        const d = cosineDistance(u, c);
        if (d < bestD) {
          bestD = d;
          best = j;
        }
      });
      members[best]!.push(u);
    }
    centroids = members.map((m, j) => (m.length > 0 ? meanUnit(m) : centroids[j]!));
  }
  return centroids;
}

/**
 * Fit the weights of a dense head with tfjs (Adam, softmax cross-entropy with class weights and L2).
 * Returns plain layers; every tensor is disposed before it returns.
 */
export async function fitDense(
  xs: readonly Float32Array[],
  yIdx: readonly number[],
  classes: number,
  opts: TrainHeadOptions = {},
  sampleWeight?: readonly number[],
): Promise<{ layers: DenseLayer[]; finalLoss: number }> {
  const tf = await getTf();
  const dim = xs[0]?.length ?? 0;
  const n = xs.length;
  const seed = opts.seed ?? 42;
  const type = opts.type ?? 'linear';
  const hidden = opts.hidden ?? 64;
  const epochs = opts.epochs ?? 60;
  const batchSize = Math.min(opts.batchSize ?? 256, Math.max(1, n));
  const l2 = opts.l2 ?? 1e-3;
  const dropout = opts.dropout ?? 0.2;
  const counts = new Array<number>(classes).fill(0);
  for (const y of yIdx) counts[y]!++;
  const present = counts.filter((c) => c > 0).length;
  const weights = counts.map((c) => (opts.classWeight === 'none' || c === 0 ? 1 : n / (present * c)));
  const random = seededRandom(seed);
  const init = (fanIn: number, fanOut: number): Float32Array => {
    // Glorot-uniform from the seeded PRNG, so a seed reproduces the same head.
    const limit = Math.sqrt(6 / (fanIn + fanOut));
    return Float32Array.from({ length: fanIn * fanOut }, () => (random() * 2 - 1) * limit);
  };
  const shapes = type === 'mlp' ? [[dim, hidden], [hidden, classes]] : [[dim, classes]];
  // tf.variable keeps its own copy: build the initial values inside tidy so they are freed.
  const vars = shapes.map(([i, o]) => ({
    kernel: tf.tidy(() => tf.variable(tf.tensor2d(init(i!, o!), [i!, o!]))),
    bias: tf.tidy(() => tf.variable(tf.zeros([o!]))),
  }));
  const optimizer = tf.train.adam(opts.learningRate ?? 3e-3);
  if (sampleWeight && sampleWeight.length !== n) throw new Error(`sampleWeight has ${sampleWeight.length} rows, x ${n}`);
  const rowWeight = Float32Array.from(yIdx, (y, i) => weights[y]! * (sampleWeight?.[i] ?? 1));
  // Each mini-batch is assembled here in JS, not gathered from one [n, dim] tensor inside the gradient tape: the
  // tape saves a gather's inputs for its backward pass, which on wasm copies the whole training matrix on every
  // step (most of a fit's time: 15k rows, 60 epochs took 3.4 min). The batches hold the same values as the gather's.
  const batchOf = (rows: readonly number[]): { xb: tfTypes.Tensor2D; yb: tfTypes.Tensor2D; wb: tfTypes.Tensor1D } => {
    const bx = new Float32Array(rows.length * dim);
    const by = new Float32Array(rows.length * classes);
    const bw = new Float32Array(rows.length);
    rows.forEach((r, k) => {
      bx.set(xs[r]!, k * dim);
      by[k * classes + yIdx[r]!] = 1;
      bw[k] = rowWeight[r]!;
    });
    return { xb: tf.tensor2d(bx, [rows.length, dim]), yb: tf.tensor2d(by, [rows.length, classes]), wb: tf.tensor1d(bw) };
  };
  const forward = (x: tfTypes.Tensor2D, training: boolean, dropSeed: number): tfTypes.Tensor2D => {
    let h = training && dropout > 0 ? tf.dropout(x, dropout, undefined, dropSeed) : x;
    vars.forEach((v, li) => {
      h = tf.add(tf.matMul(h, v.kernel), v.bias);
      if (li < vars.length - 1) h = tf.relu(h);
    });
    return h as tfTypes.Tensor2D;
  };
  let finalLoss = NaN;
  try {
    for (let epoch = 0; epoch < epochs; epoch++) {
      const order = shuffled(Array.from({ length: n }, (_, i) => i), random);
      let lossSum = 0;
      let batches = 0;
      for (let start = 0; start < n; start += batchSize) {
        const { xb, yb, wb } = batchOf(order.slice(start, start + batchSize));
        const dropSeed = Math.floor(random() * 1e9);
        let loss: tfTypes.Scalar | null;
        try {
          loss = optimizer.minimize(
            () =>
              tf.tidy(() => {
                const logits = forward(xb, true, dropSeed);
                const ce = tf.losses.softmaxCrossEntropy(yb, logits, wb, undefined, tf.Reduction.SUM_BY_NONZERO_WEIGHTS);
                const reg = vars.reduce((acc, v) => tf.add(acc, tf.mul(l2, tf.sum(tf.square(v.kernel)))), tf.scalar(0));
                return tf.add(ce, reg) as tfTypes.Scalar;
              }),
            true,
          );
        } finally {
          xb.dispose();
          yb.dispose();
          wb.dispose();
        }
        if (loss) {
          lossSum += (await loss.data())[0]!;
          loss.dispose();
        }
        batches++;
      }
      finalLoss = lossSum / Math.max(1, batches);
      await opts.onEpoch?.(epoch + 1, epochs, finalLoss);
    }
    const layers: DenseLayer[] = [];
    for (let li = 0; li < vars.length; li++) {
      const v = vars[li]!;
      const [inputs, units] = v.kernel.shape as [number, number];
      layers.push({
        inputs,
        units,
        kernel: round(await v.kernel.data()),
        bias: round(await v.bias.data()),
        activation: li < vars.length - 1 ? 'relu' : 'linear',
      });
    }
    return { layers, finalLoss };
  } finally {
    optimizer.dispose();
    for (const v of vars) {
      v.kernel.dispose();
      v.bias.dispose();
    }
  }
}

/** {@link fitDense} over `opts.seeds` seeds, combined into one head serving their mean logits (see {@link TrainHeadOptions.seeds}). */
async function fitAveraged(
  xs: readonly Float32Array[],
  yIdx: readonly number[],
  classes: number,
  opts: TrainHeadOptions,
  sampleWeight?: readonly number[],
): Promise<{ layers: DenseLayer[]; finalLoss: number }> {
  const k = opts.seeds ?? 1;
  if (!Number.isInteger(k) || k < 1) throw new Error(`seeds must be a positive integer, got ${k}`);
  if (k === 1) return fitDense(xs, yIdx, classes, opts, sampleWeight);
  const seed = opts.seed ?? 42;
  const fits: { layers: DenseLayer[]; finalLoss: number }[] = [];
  for (let i = 0; i < k; i++) {
    // Progress counts the epochs of all fits, so a progress bar never runs backwards.
    const onEpoch = opts.onEpoch && ((epoch: number, epochs: number, loss: number) => opts.onEpoch!(i * epochs + epoch, k * epochs, loss));
    fits.push(await fitDense(xs, yIdx, classes, { ...opts, seed: seed + i, ...(onEpoch ? { onEpoch } : {}) }, sampleWeight));
  }
  const finalLoss = fits.reduce((a, f) => a + f.finalLoss, 0) / k;
  return { layers: combineFits(fits.map((f) => f.layers)), finalLoss };
}

/**
 * Several fits of one head shape combined into one set of layers that answers the mean of their logits: linear
 * heads average their weights; one-hidden-layer MLPs are laid side by side (see {@link TrainHeadOptions.seeds}).
 * Exported for studies that fit seeds one at a time and combine them afterwards (scripts/train-defaults.ts
 * `--seed-study`).
 */
export function combineFits(fits: readonly (readonly DenseLayer[])[]): DenseLayer[] {
  const k = fits.length;
  if (k === 0) throw new Error('combineFits needs at least one fit');
  if (k === 1) return [...fits[0]!];
  const avg = (values: readonly number[]): number => Number((values.reduce((a, b) => a + b, 0) / k).toPrecision(7));
  const out = (f: readonly DenseLayer[]): DenseLayer => f[f.length - 1]!;
  if (fits[0]!.length === 1) {
    const first = out(fits[0]!);
    const mean = (pick: (l: DenseLayer) => readonly number[]): number[] => pick(first).map((_, j) => avg(fits.map((f) => pick(out(f))[j]!)));
    return [{ ...first, kernel: mean((l) => l.kernel), bias: mean((l) => l.bias) }];
  }
  // An MLP's hidden units come out in any order, so averaging its weights would not average its answers: lay
  // the fits' hidden layers side by side instead and let the output layer read each fit's units at 1/k.
  if (fits[0]!.length !== 2) throw new Error('seeds > 1 combines linear heads and one-hidden-layer MLPs');
  const hidden = fits.map((f) => f[0]!);
  const { inputs, units } = hidden[0]!;
  const kernel: number[] = [];
  for (let i = 0; i < inputs; i++) for (const h of hidden) kernel.push(...h.kernel.slice(i * units, (i + 1) * units));
  const wide: DenseLayer = { inputs, units: units * k, kernel, bias: hidden.flatMap((h) => h.bias), activation: 'relu' };
  const last = fits.map(out);
  const combined: DenseLayer = {
    inputs: units * k,
    units: last[0]!.units,
    // Row-major [inputs][units]: fit f's rows follow fit f − 1's, in the order of the wide hidden layer.
    kernel: last.flatMap((l) => l.kernel.map((w) => Number((w / k).toPrecision(7)))),
    bias: last[0]!.bias.map((_, j) => avg(last.map((l) => l.bias[j]!))),
    activation: 'linear',
  };
  return [wide, combined];
}

// Seven significant digits are what float32 holds; shorter JSON, identical model.
function round(values: ArrayLike<number>): number[] {
  return Array.from(values, (v) => Number(v.toPrecision(7)));
}

/**
 * A first layer that applies the projection itself: (I − UUᵀ)W, so `layer(x)` equals the fitted layer on
 * `projectOut(x)` and the head needs no extra step at serving.
 */
export function foldProjection(layer: DenseLayer, directions: readonly Float32Array[]): DenseLayer {
  if (directions.length === 0) return layer;
  return { ...layer, kernel: round(foldKernel(layer.kernel, layer.inputs, layer.units, directions)) };
}

/** Apply the head's input transform (L2 + standardise) to many rows. */
export function standardiseRows(x: readonly Float32Array[], l2: boolean, st: { mean: number[]; std: number[] }): Float32Array[] {
  return x.map((v) => {
    const e = l2 ? l2normalise(v) : v;
    const out = new Float32Array(e.length);
    for (let i = 0; i < e.length; i++) out[i] = (e[i]! - st.mean[i]!) / st.std[i]!;
    return out;
  });
}

/**
 * Train a complete head: standardiser, dense layers, open-set calibration (brand) and the
 * out-of-distribution threshold. The result is ready to save as JSON.
 */
export async function trainHead(input: TrainHeadInput, opts: TrainHeadOptions = {}): Promise<HeadModel> {
  const { task, x, y } = input;
  if (x.length !== y.length) throw new Error(`x has ${x.length} rows, y ${y.length}`);
  if (input.sampleWeight && input.sampleWeight.length !== x.length) throw new Error(`x has ${x.length} rows, sampleWeight ${input.sampleWeight.length}`);
  const order = task === 'brand' ? BRANDS : (['hyped', 'not_hyped'] as const);
  const labels = (order as readonly string[]).filter((l) => y.includes(l));
  if (labels.length < 2) {
    throw new Error(`${task}: training needs at least two labels, got ${labels.join(', ') || 'none'}`);
  }
  const seed = opts.seed ?? 42;
  const l2 = input.features.l2;
  const base = l2 ? x.map((v) => l2normalise(v)) : x;
  const standardise = fitStandardiser(base);
  const z = standardiseRows(x, l2, standardise);
  const yIdx = y.map((l) => labels.indexOf(l));
  // The cap's default lives in nuisanceDirections alone.
  const cap = opts.nuisanceDirections !== undefined ? { max: opts.nuisanceDirections } : {};
  const nuisance = input.nuisanceGroups?.length ? nuisanceDirections(z, yIdx, input.nuisanceGroups, cap) : [];
  const fitted = await fitAveraged(projectOut(z, nuisance), yIdx, labels.length, opts, input.sampleWeight);
  const { finalLoss } = fitted;
  const layers = [foldProjection(fitted.layers[0]!, nuisance), ...fitted.layers.slice(1)];

  const units = x.map((v) => l2normalise(v));
  let openSet: HeadModel['openSet'];
  if (task === 'brand' && (opts.openSet ?? true)) {
    const centroids: number[][] = [];
    const radius: number[] = [];
    const spread: number[] = [];
    for (const label of labels) {
      const members = units.filter((_, i) => y[i] === label);
      const c = meanUnit(members);
      const d = members.map((u) => cosineDistance(u, c));
      const mu = d.reduce((a, b) => a + b, 0) / Math.max(1, d.length);
      const sd = Math.sqrt(d.reduce((a, b) => a + (b - mu) ** 2, 0) / Math.max(1, d.length));
      centroids.push(round(c));
      radius.push(quantile(d, 0.99));
      spread.push(Math.max(sd, 1e-3));
    }
    openSet = { centroids, radius, spread };
  }
  const all = [...units, ...(input.unlabelled ?? []).map((v) => l2normalise(v))];
  const oodCentroids = sphericalKMeans(all, Math.min(16, Math.max(1, Math.floor(all.length / 20))), seed);
  const nearest = all.map((u) => Math.min(...oodCentroids.map((c) => cosineDistance(u, c))));
  const threshold = quantile(nearest, opts.oodQuantile ?? 0.99);
  return {
    format: 'solescope-head',
    version: 1,
    id: input.id,
    task,
    labels,
    backbone: input.backbone,
    prepVersion: input.prepVersion,
    features: input.features,
    standardise: { mean: round(standardise.mean), std: round(standardise.std) },
    layers,
    ...(openSet ? { openSet } : {}),
    ood: { centroids: oodCentroids.map((c) => round(c)), threshold },
    temperature: 1,
    minConfidence: opts.minConfidence ?? 0.6,
    seed,
    createdAt: new Date().toISOString(),
    meta: {
      ...(input.meta ?? {}),
      trainRows: x.length,
      finalLoss,
      ...(nuisance.length > 0 ? { nuisanceDirections: nuisance.length } : {}),
      options: { ...opts, onEpoch: undefined },
    },
  };
}
