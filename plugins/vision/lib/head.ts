/**
 * Classification heads on top of a frozen backbone's embedding, stored as small JSON files.
 *
 * A head is: embedding → (optional L2 normalisation) → standardisation → dense layers → softmax over the
 * labels it was trained on. Two calibrations ride along so answers stay honest:
 * - `openSet` (brand): cosine distance to each trained class's centroid, with a per-class radius from the
 *   training data. A photo far from every known brand moves probability to `other` instead of being forced
 *   into jordan/nike/adidas. The manifest itself has no `other` rows; the shipped brand head also learnt a real
 *   `other` class from the hand-labelled zjy-T photos (assets/labels/), and keeps the open-set check for brands
 *   unlike any it saw.
 * - `ood` (every head): distance to the training distribution; beyond the threshold the answer is marked
 *   low-confidence ("I don't see a sneaker like the ones I know").
 * Inference here is plain arithmetic (no tensors, nothing to leak); {@link headLogitsTf} is the same function
 * in tfjs ops for gradient-based explanations.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import type * as tfTypes from '@tensorflow/tfjs';
import { EngineError } from '../../../engine/errors.ts';
import { BRANDS, type Task } from './labels.ts';

/** How an embedding is computed from an image before the head (part of the model's cache key). */
export const featureSpecSchema = z.object({
  /** Trim the near-white border around the shoe before resizing (crop to the object). */
  trim: z.boolean(),
  /** Average the embeddings of the image and its mirror: orientation (left/right) no longer matters. */
  flipAverage: z.boolean(),
  /** L2-normalise the embedding before standardising. */
  l2: z.boolean(),
  /**
   * Normalise the photo first with the study's pipeline (engine/ml/preprocess): whiten a uniform or
   * segmentable background, crop a square around the shoe. Users' photos are not studio shots on white; this
   * makes them look like the training photos (measured by scripts/eval-shift.ts). Absent in older heads.
   */
  normalise: z.boolean().optional(),
  /** With `normalise`: also mirror the photo so the toe points right (Canny + Hough). */
  orient: z.boolean().optional(),
  /**
   * With `normalise`: off a studio backdrop, find the shoe with the backbone's shoe localiser first
   * (plugins/vision/lib/localise.ts) and start the segmentation from its box. Absent in older heads.
   */
  locate: z.boolean().optional(),
  /**
   * With `normalise`: turn a steeply tilted shoe upright first (long axis horizontal, sole down: engine/ml/preprocess
   * `upright`), as users photograph shoes lying diagonally or toe-up. Absent in older heads.
   */
  upright: z.boolean().optional(),
});
/** Feature pipeline options stored with a head. */
export type FeatureSpec = z.infer<typeof featureSpecSchema>;

const layerSchema = z.object({
  inputs: z.number().int().positive(),
  units: z.number().int().positive(),
  /** Row-major `[inputs][units]`. */
  kernel: z.array(z.number()),
  bias: z.array(z.number()),
  activation: z.enum(['linear', 'relu']),
});
/** One dense layer. */
export type DenseLayer = z.infer<typeof layerSchema>;

/** The JSON schema of a head file; anything else is a corrupt model (MODEL_MISSING). */
export const headModelSchema = z
  .object({
    format: z.literal('solescope-head'),
    version: z.literal(1),
    id: z.string().min(1),
    task: z.enum(['hype', 'brand']),
    /** Labels the softmax covers, in output order. */
    labels: z.array(z.string()).min(2),
    backbone: z.string().min(1),
    prepVersion: z.string().min(1),
    features: featureSpecSchema,
    standardise: z.object({ mean: z.array(z.number()), std: z.array(z.number()) }),
    layers: z.array(layerSchema).min(1),
    openSet: z
      .object({
        /** Per trained label: L2-normalised centroid of its training embeddings. */
        centroids: z.array(z.array(z.number())),
        /** Per trained label: the 99th percentile of its training items' cosine distance to the centroid. */
        radius: z.array(z.number()),
        /** Per trained label: spread (std) of those distances; the softness of the boundary. */
        spread: z.array(z.number()),
      })
      .optional(),
    ood: z.object({
      /** L2-normalised centroids (k-means) of all training embeddings. */
      centroids: z.array(z.array(z.number())),
      /** Cosine distance to the nearest centroid above which an input is unlike the training data. */
      threshold: z.number(),
    }),
    /** Softmax temperature fitted on held-out data (1 = none). */
    temperature: z.number().positive().default(1),
    /** Below this top probability the answer is reported as low confidence. */
    minConfidence: z.number().min(0).max(1).default(0.6),
    /**
     * Test-time view: `mirror` = serving also runs the head on the photo's mirror image (same pipeline, the view
     * flip augmentation trained on) and averages the two views' probabilities. Written by `train:defaults
     * --brand-tta mirror` where it was measured to help (assets/models/README.md); absent = the photo alone.
     */
    tta: z.enum(['mirror']).optional(),
    seed: z.number().int(),
    createdAt: z.string(),
    /** Free-form provenance: data, command, metrics. */
    meta: z.record(z.string(), z.unknown()).default({}),
  })
  .superRefine((m, ctx) => {
    const dim = m.standardise.mean.length;
    if (m.standardise.std.length !== dim) ctx.addIssue({ code: 'custom', message: 'standardise mean/std lengths differ' });
    let inputs = dim;
    m.layers.forEach((l, i) => {
      if (l.inputs !== inputs) ctx.addIssue({ code: 'custom', message: `layer ${i} takes ${l.inputs} inputs, expected ${inputs}` });
      if (l.kernel.length !== l.inputs * l.units) ctx.addIssue({ code: 'custom', message: `layer ${i} kernel has the wrong size` });
      if (l.bias.length !== l.units) ctx.addIssue({ code: 'custom', message: `layer ${i} bias has the wrong size` });
      inputs = l.units;
    });
    if (inputs !== m.labels.length) ctx.addIssue({ code: 'custom', message: `the last layer has ${inputs} outputs for ${m.labels.length} labels` });
  });

/** A loaded head. */
export type HeadModel = z.output<typeof headModelSchema>;

/** A head's answer for one embedding. */
export interface HeadPrediction {
  /** The predicted label (for brand, `other` when the open-set check says no known brand fits). */
  readonly label: string;
  /** Probabilities over the task's full label set (brand: jordan, nike, adidas, other; hype: hyped, not_hyped). */
  readonly probabilities: Readonly<Record<string, number>>;
  /** Top probability. */
  readonly confidence: number;
  /** True when the answer should not be trusted: low top probability or an input unlike the training data. */
  readonly lowConfidence: boolean;
  /** Cosine distance to the training distribution, and the threshold it is compared with. */
  readonly ood: { readonly distance: number; readonly threshold: number; readonly outside: boolean };
}

/** Parse and validate a head JSON value; a bad one is MODEL_MISSING with the command that rebuilds it. */
export function parseHead(value: unknown, origin: string): HeadModel {
  const parsed = headModelSchema.safeParse(value);
  if (!parsed.success) {
    throw new EngineError(
      'MODEL_MISSING',
      `The model ${origin} is corrupt (${parsed.error.issues[0]?.message ?? 'invalid'}). Rebuild it with \`npm run train:defaults\`.`,
      { details: { rebuild: 'npm run train:defaults', origin } },
    );
  }
  return parsed.data;
}

/** Load a head file (MODEL_MISSING when missing or corrupt). */
export function loadHeadFile(file: string): HeadModel {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new EngineError('MODEL_MISSING', `The model file ${file} is missing. Rebuild it with \`npm run train:defaults\`.`, {
      details: { rebuild: 'npm run train:defaults', origin: file },
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new EngineError('MODEL_MISSING', `The model file ${file} is not valid JSON. Rebuild it with \`npm run train:defaults\`.`, {
      details: { rebuild: 'npm run train:defaults', origin: file },
    });
  }
  return parseHead(json, file);
}

/** L2-normalise (returns a new array; a zero vector stays zero). */
export function l2normalise(v: ArrayLike<number>): Float32Array {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  const n = Math.sqrt(s) || 1;
  const out = new Float32Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = v[i]! / n;
  return out;
}

/** Cosine distance between an L2-normalised vector and an L2-normalised centroid. */
export function cosineDistance(unit: ArrayLike<number>, centroid: readonly number[] | Float32Array): number {
  let dot = 0;
  for (let i = 0; i < unit.length; i++) dot += unit[i]! * centroid[i]!;
  return 1 - dot;
}

/** The standardised input of the head's first layer. */
export function headInput(head: HeadModel, embedding: ArrayLike<number>): Float32Array {
  const e = head.features.l2 ? l2normalise(embedding) : embedding;
  const { mean, std } = head.standardise;
  if (e.length !== mean.length) {
    throw new EngineError('MODEL_MISSING', `The model ${head.id} expects ${mean.length}-d embeddings but got ${e.length}-d (wrong backbone?). Rebuild it with \`npm run train:defaults\`.`);
  }
  const out = new Float32Array(e.length);
  for (let i = 0; i < e.length; i++) out[i] = (e[i]! - mean[i]!) / std[i]!;
  return out;
}

/** Raw logits of the dense layers for one standardised input. */
export function denseForward(layers: readonly DenseLayer[], input: Float32Array): Float32Array {
  let x = input;
  for (const layer of layers) {
    const out = new Float32Array(layer.units);
    for (let j = 0; j < layer.units; j++) out[j] = layer.bias[j]!;
    for (let i = 0; i < layer.inputs; i++) {
      const xi = x[i]!;
      if (xi === 0) continue;
      const row = i * layer.units;
      for (let j = 0; j < layer.units; j++) out[j] = out[j]! + xi * layer.kernel[row + j]!;
    }
    if (layer.activation === 'relu') for (let j = 0; j < out.length; j++) out[j] = Math.max(0, out[j]!);
    x = out;
  }
  return x;
}

/**
 * The gradient of one class's logit with respect to the raw backbone embedding, in closed form (the head is
 * L2 → standardise → dense/ReLU layers). Grad-CAM at a layer whose spatial mean is the embedding needs only
 * this vector (each channel's weight is its component, up to the constant 1/(h·w)); computing it in plain JS
 * takes well under a millisecond, where tf.grad over the same ops on tfjs-wasm took ~60 ms per request.
 * Equal to `tf.grad` of {@link headLogitsTf} (tested).
 */
export function headLogitGradient(head: HeadModel, embedding: ArrayLike<number>, classIndex: number): Float32Array {
  const last = head.layers[head.layers.length - 1];
  if (!last || !Number.isInteger(classIndex) || classIndex < 0 || classIndex >= last.units) {
    throw new EngineError('BAD_INPUT', `Class index ${classIndex} is outside the head's ${last?.units ?? 0} outputs`);
  }
  // Forward pass keeping each layer's pre-activation (ReLU's derivative needs its sign).
  const pre: Float32Array[] = [];
  let x = headInput(head, embedding);
  for (const layer of head.layers) {
    const out = denseForward([{ ...layer, activation: 'linear' }], x);
    pre.push(out);
    x = layer.activation === 'relu' ? out.map((v) => Math.max(0, v)) : out;
  }
  let g = new Float32Array(last.units);
  g[classIndex] = 1;
  for (let l = head.layers.length - 1; l >= 0; l--) {
    const layer = head.layers[l]!;
    const z = pre[l]!;
    if (layer.activation === 'relu') for (let j = 0; j < g.length; j++) if (z[j]! <= 0) g[j] = 0;
    const gin = new Float32Array(layer.inputs);
    for (let i = 0; i < layer.inputs; i++) {
      const row = i * layer.units;
      let sum = 0;
      for (let j = 0; j < layer.units; j++) sum += layer.kernel[row + j]! * g[j]!;
      gin[i] = sum;
    }
    g = gin;
  }
  const { std } = head.standardise;
  for (let i = 0; i < g.length; i++) g[i] = g[i]! / std[i]!;
  if (head.features.l2) {
    // d(e/|e|)/de applied to g: (g − u·(u·g)) / |e|.
    let sq = 0;
    for (let i = 0; i < embedding.length; i++) sq += embedding[i]! * embedding[i]!;
    const norm = Math.max(Math.sqrt(sq), 1e-12);
    let dot = 0;
    for (let i = 0; i < g.length; i++) dot += (embedding[i]! / norm) * g[i]!;
    for (let i = 0; i < g.length; i++) g[i] = (g[i]! - (embedding[i]! / norm) * dot) / norm;
  }
  return g;
}

/** Softmax with temperature. */
export function softmax(logits: ArrayLike<number>, temperature = 1): number[] {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]! / temperature);
  const exps = Array.from({ length: logits.length }, (_, i) => Math.exp(logits[i]! / temperature - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

function oodDistance(head: HeadModel, unit: Float32Array): number {
  let best = Infinity;
  for (const c of head.ood.centroids) best = Math.min(best, cosineDistance(unit, c));
  return best;
}

/**
 * Probability that an embedding belongs to none of the trained brands: for each class, how far it lies
 * beyond that class's radius (in units of the class's spread), taken at the class the softmax prefers.
 */
function openSetOther(head: HeadModel, unit: Float32Array, probs: readonly number[]): number {
  const os = head.openSet;
  if (!os) return 0;
  // Weighted by the softmax: being inside the radius of the class the head prefers is what counts.
  let pOther = 0;
  probs.forEach((p, k) => {
    const c = os.centroids[k];
    if (!c) return;
    const d = cosineDistance(unit, c);
    const z = (d - os.radius[k]!) / Math.max(os.spread[k]!, 1e-3);
    // At the radius itself only ~27 % moves to `other`; one spread beyond it, ~73 %.
    pOther += p / (1 + Math.exp(-(2 * z - 1)));
  });
  return Math.min(1, Math.max(0, pOther));
}

/** Probabilities over the task's full label set for one embedding (brand: with the open-set share in `other`). */
function fullProbabilities(head: HeadModel, embedding: ArrayLike<number>): Record<string, number> {
  const probs = softmax(denseForward(head.layers, headInput(head, embedding)), head.temperature);
  const full: Record<string, number> = {};
  if (head.task === 'brand') {
    for (const b of BRANDS) full[b] = 0;
    const pOther = openSetOther(head, l2normalise(embedding), probs);
    // The open-set share moves to `other`; a trained `other` class keeps its own softmax share too.
    head.labels.forEach((l, k) => {
      full[l] = (full[l] ?? 0) + probs[k]! * (1 - pOther);
    });
    full.other = (full.other ?? 0) + pOther;
  } else {
    head.labels.forEach((l, k) => {
      full[l] = probs[k]!;
    });
  }
  return full;
}

/**
 * Run a head on one (already pipeline-processed) embedding. `views`: embeddings of test-time views of the same
 * photo (its mirror for a `tta: 'mirror'` head); the answer is the mean of all views' probabilities, while the
 * out-of-distribution check looks at the photo itself.
 */
export function predictHead(head: HeadModel, embedding: ArrayLike<number>, views: readonly ArrayLike<number>[] = []): HeadPrediction {
  const unit = l2normalise(embedding);
  const full = fullProbabilities(head, embedding);
  if (views.length > 0) {
    const each = views.map((v) => fullProbabilities(head, v));
    for (const l of Object.keys(full)) full[l] = (full[l]! + each.reduce((s, p) => s + (p[l] ?? 0), 0)) / (1 + views.length);
  }
  let label = head.labels[0]!;
  let confidence = -1;
  for (const [l, p] of Object.entries(full)) {
    if (p > confidence) {
      confidence = p;
      label = l;
    }
  }
  const distance = oodDistance(head, unit);
  const outside = distance > head.ood.threshold;
  return {
    label,
    probabilities: full,
    confidence,
    lowConfidence: outside || confidence < head.minConfidence,
    ood: { distance, threshold: head.ood.threshold, outside },
  };
}

/**
 * The head's logits as tfjs ops, for gradient-based explanations (Grad-CAM): `embeddings` `[N, D]` raw
 * backbone embeddings (after flip-averaging if the head uses it) → `[N, labels]`. Call inside `tf.tidy`.
 */
export function headLogitsTf(tf: typeof tfTypes, head: HeadModel, embeddings: tfTypes.Tensor2D): tfTypes.Tensor2D {
  let x: tfTypes.Tensor2D = embeddings;
  if (head.features.l2) {
    const norm = tf.maximum(tf.norm(x, 2, 1, true), tf.scalar(1e-12));
    x = tf.div(x, norm);
  }
  x = tf.div(tf.sub(x, tf.tensor1d(head.standardise.mean)), tf.tensor1d(head.standardise.std));
  for (const layer of head.layers) {
    x = tf.add(tf.matMul(x, tf.tensor2d(layer.kernel, [layer.inputs, layer.units])), tf.tensor1d(layer.bias));
    if (layer.activation === 'relu') x = tf.relu(x);
  }
  return x;
}

/** Tasks with their default head file names under `assets/models/`. */
export const DEFAULT_HEAD_FILES: Readonly<Record<Task, string>> = {
  hype: 'hype.head.json',
  brand: 'brand.head.json',
};
