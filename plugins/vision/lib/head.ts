/**
 * Classification heads on top of a frozen backbone's embedding, stored as small JSON files.
 *
 * The `solescope-head` format and its arithmetic (standardise → dense layers → softmax, the brand `openSet`
 * share moved to `other`, the `ood` distance, test-time views) live in engine/ml/head.ts, because the training
 * plugin's gate scores champions with the same code. This module adds what serving needs on top: loading with
 * MODEL_MISSING errors, the answer with its low-confidence flag, and the head's gradient for Grad-CAM
 * ({@link headLogitsTf} is the same function in tfjs ops).
 */
import { readFileSync } from 'node:fs';
import type * as tfTypes from '@tensorflow/tfjs';
import { EngineError } from '../../../engine/errors.ts';
import { denseForward, headInput, headModelSchema, headProbabilities, l2normalise, oodDistance, topLabel, type HeadModel } from '../../../engine/ml/head.ts';
import type { Task } from './labels.ts';

// The format and its arithmetic live in engine/ml/head.ts (the training plugin's gate reads them too).
export {
  cosineDistance,
  denseForward,
  featureSpecSchema,
  headInput,
  headModelSchema,
  headProbabilities,
  l2normalise,
  probabilitiesFromLogits,
  softmax,
  topLabel,
  type DenseLayer,
  type FeatureSpec,
  type HeadModel,
} from '../../../engine/ml/head.ts';

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

/**
 * Run a head on one (already pipeline-processed) embedding. `views`: embeddings of test-time views of the same
 * photo (its mirror for a `tta: 'mirror'` head); the answer is the mean of all views' probabilities, while the
 * out-of-distribution check looks at the photo itself.
 */
export function predictHead(head: HeadModel, embedding: ArrayLike<number>, views: readonly ArrayLike<number>[] = []): HeadPrediction {
  const full = headProbabilities(head, embedding, views);
  const { label, confidence } = topLabel(full);
  const distance = oodDistance(head, l2normalise(embedding));
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
