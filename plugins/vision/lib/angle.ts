/**
 * The learnt turn: how far a shoe in a served view is still turned, read from the backbone's embedding of that view.
 *
 * The geometric upright step (engine/ml/preprocess `upright`) turns a shoe level from its silhouette. On a busy
 * background GrabCut often gives no usable silhouette (the localiser's box is the object: `located`) and the step
 * leaves a tilted shoe alone. The embedding the
 * heads already compute still shows which way the shoe lies, so a small regressor on it (one hidden layer, trained
 * on shoes pasted at known turns onto the generated training scenes: scripts/train-angle.ts) says what turn is
 * left. The output is a unit vector (cos, sin) of the clockwise turn, so that +180° and −180° are the same answer,
 * and its length is how sure the regressor is.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type * as tfTypes from '@tensorflow/tfjs';
import { z } from 'zod';
import { EngineError } from '../../../engine/errors.ts';
import type { Backbone } from '../../../engine/ml/backbones.ts';
import { getTf } from '../../../engine/ml/runtime.ts';
import { DEFAULT_LOCALISER_DIR } from './localise.ts';
import { readModelFile } from './model-file.ts';
import { seededRandom, shuffled } from './split.ts';

/**
 * Version of the shipped angle models, part of the cache key of every embedding served with the learnt turn: bump
 * it when a shipped angle file changes, so cached embeddings are not reused. 2: five composites per photo and three
 * fits averaged (the twenty-ninth session; median error 9.1° → 5.1° on the same validation views).
 */
export const ANGLE_VERSION = 2;

/**
 * The learnt turn acts only when it says the shoe is still turned by at least this many degrees: the geometric
 * step's own threshold (it levels soles more than 30° from level), and below it a level shoe is read as level
 * (assets/models/README.md, "The learnt turn").
 */
export const LEARNT_TURN_MIN = 30;

/** The format tag of an angle model file. */
export const ANGLE_FORMAT = 'solescope-angle-1';

/** A trained turn regressor (the JSON file's content). */
export interface AngleModel {
  readonly format: typeof ANGLE_FORMAT;
  /** Backbone whose embeddings it reads. */
  readonly backbone: string;
  /** Per-dimension standardisation learnt on the training rows. */
  readonly mean: readonly number[];
  readonly std: readonly number[];
  /** Hidden layer `[dim][hidden]` row-major, then the output layer `[hidden][2]` (cos, sin). */
  readonly w1: readonly number[];
  readonly b1: readonly number[];
  readonly w2: readonly number[];
  readonly b2: readonly number[];
  readonly hidden: number;
  /**
   * Where serving asks it (the normaliser's background kinds; default `located`: where the localiser's box is the
   * object and the upright step had no silhouette to measure). The operating point measured with
   * `scripts/eval-shift.ts @learn` (assets/models/README.md, "The learnt turn").
   */
  readonly applyTo?: readonly ('uniform' | 'segmented' | 'located' | 'busy')[];
  /** The first look's confidence (length of its (cos, sin)) below which no turn is tried (default 0). */
  readonly minConfidence?: number;
  /** How it was trained (data, command, seed, validation figures). */
  readonly meta?: Record<string, unknown>;
}

/** The regressor's answer for one embedding. */
export interface TurnPrediction {
  /** Clockwise degrees the shoe is still turned, as displayed, in (−180, 180]. */
  readonly turn: number;
  /** Length of the predicted (cos, sin): near 1 when sure, near 0 when the views it learnt from disagree. */
  readonly confidence: number;
}

/** The smallest angle between two turns, in degrees (0–180). */
export function turnDistance(a: number, b: number): number {
  return Math.abs(((((a - b) % 360) + 540) % 360) - 180);
}

/** Options of {@link fitAngleModel}. */
export interface FitAngleOptions {
  readonly backbone: string;
  readonly hidden?: number;
  readonly epochs?: number;
  readonly seed?: number;
  readonly learningRate?: number;
}

/**
 * Fits the regressor: standardise, one ReLU layer, linear (cos, sin), mean squared error against the unit vector of
 * each row's turn (clockwise degrees). Deterministic for a seed on one backend.
 */
export async function fitAngleModel(x: readonly Float32Array[], turns: readonly number[], opts: FitAngleOptions): Promise<AngleModel> {
  if (x.length === 0 || x.length !== turns.length) throw new Error('fitAngleModel: rows and turns must be non-empty and of equal length');
  const tf = await getTf();
  const dim = x[0]!.length;
  const hidden = opts.hidden ?? 128;
  const mean = new Float64Array(dim);
  const sq = new Float64Array(dim);
  for (const row of x) for (let d = 0; d < dim; d++) mean[d]! += row[d]! / x.length;
  for (const row of x) for (let d = 0; d < dim; d++) sq[d]! += (row[d]! - mean[d]!) ** 2 / x.length;
  const std = Array.from(sq, (v) => Math.sqrt(v) + 1e-6);
  const flat = new Float32Array(x.length * dim);
  x.forEach((row, i) => {
    for (let d = 0; d < dim; d++) flat[i * dim + d] = (row[d]! - mean[d]!) / std[d]!;
  });
  const target = new Float32Array(x.length * 2);
  turns.forEach((t, i) => {
    target[2 * i] = Math.cos((t * Math.PI) / 180);
    target[2 * i + 1] = Math.sin((t * Math.PI) / 180);
  });
  const random = seededRandom(opts.seed ?? 42);
  // Glorot-uniform weights from the seed, so a fit is reproducible without tf's own generator.
  const glorot = (fanIn: number, fanOut: number): Float32Array => {
    const lim = Math.sqrt(6 / (fanIn + fanOut));
    return Float32Array.from({ length: fanIn * fanOut }, () => (random() * 2 - 1) * lim);
  };
  const w1 = tf.variable(tf.tensor2d(glorot(dim, hidden), [dim, hidden]));
  const b1 = tf.variable(tf.zeros([hidden]));
  const w2 = tf.variable(tf.tensor2d(glorot(hidden, 2), [hidden, 2]));
  const b2 = tf.variable(tf.zeros([2]));
  const xs = tf.tensor2d(flat, [x.length, dim]);
  const ys = tf.tensor2d(target, [x.length, 2]);
  const optimizer = tf.train.adam(opts.learningRate ?? 1e-3);
  const batch = 128;
  try {
    let step = 0;
    for (let epoch = 0; epoch < (opts.epochs ?? 60); epoch++) {
      const order = shuffled(Array.from({ length: x.length }, (_, i) => i), random);
      for (let s = 0; s < order.length; s += batch) {
        const idx = tf.tensor1d(order.slice(s, s + batch), 'int32');
        // The dropout mask from the seed and the step, so a fit is the same on every run.
        const dropSeed = (opts.seed ?? 42) * 100_003 + step++;
        optimizer.minimize(() => {
          const xb = tf.gather(xs, idx);
          const yb = tf.gather(ys, idx);
          // Input dropout: 3,584 correlated features and a few thousand rows invite memorising.
          const h = tf.relu(tf.add(tf.matMul(tf.dropout(xb, 0.2, undefined, dropSeed), w1), b1));
          return tf.losses.meanSquaredError(yb, tf.add(tf.matMul(h, w2), b2)) as tfTypes.Scalar;
        });
        idx.dispose();
      }
    }
    return {
      format: ANGLE_FORMAT,
      backbone: opts.backbone,
      mean: Array.from(mean),
      std,
      w1: Array.from(await w1.data()),
      b1: Array.from(await b1.data()),
      w2: Array.from(await w2.data()),
      b2: Array.from(await b2.data()),
      hidden,
      meta: { rows: x.length, epochs: opts.epochs ?? 60, seed: opts.seed ?? 42 },
    };
  } finally {
    for (const t of [w1, b1, w2, b2, xs, ys]) t.dispose();
    optimizer.dispose();
  }
}

/**
 * Several fits of the same rows (different seeds) as one model whose answer is the mean of theirs: the hidden
 * layers side by side and the output layer divided by their number. The file format stays one hidden layer, so
 * serving reads an ensemble exactly as it reads one fit. The fits must share the standardisation (the same rows).
 */
export function mergeAngleModels(models: readonly AngleModel[]): AngleModel {
  if (models.length === 0) throw new Error('mergeAngleModels: no models');
  if (models.length === 1) return models[0]!;
  const first = models[0]!;
  const dim = first.mean.length;
  for (const m of models) {
    if (m.backbone !== first.backbone || m.mean.length !== dim || m.mean.some((v, d) => v !== first.mean[d] || m.std[d] !== first.std[d])) {
      throw new Error('mergeAngleModels: the fits must be of one backbone and share their standardisation (the same rows)');
    }
  }
  const hidden = models.reduce((s, m) => s + m.hidden, 0);
  const w1 = new Array<number>(dim * hidden);
  const b1: number[] = [];
  const w2: number[] = [];
  const b2 = [0, 0];
  let offset = 0;
  for (const m of models) {
    for (let d = 0; d < dim; d++) for (let k = 0; k < m.hidden; k++) w1[d * hidden + offset + k] = m.w1[d * m.hidden + k]!;
    b1.push(...m.b1);
    w2.push(...m.w2.map((v) => v / models.length));
    b2[0]! += m.b2[0]! / models.length;
    b2[1]! += m.b2[1]! / models.length;
    offset += m.hidden;
  }
  // The caller's file says how many fits it holds (train:angle writes `meta.seeds`, which `status` reads).
  return { ...first, w1, b1, w2, b2, hidden };
}

/** The turn left in a served view, from its embedding (plain arithmetic: no tensors). */
export function predictTurn(model: AngleModel, embedding: ArrayLike<number>): TurnPrediction {
  const dim = model.mean.length;
  if (embedding.length !== dim) throw new Error(`predictTurn: the model reads ${dim}-d embeddings, got ${embedding.length}`);
  const h = Float64Array.from(model.b1);
  for (let d = 0; d < dim; d++) {
    const v = (embedding[d]! - model.mean[d]!) / model.std[d]!;
    if (v === 0) continue;
    const row = d * model.hidden;
    for (let k = 0; k < model.hidden; k++) h[k]! += v * model.w1[row + k]!;
  }
  let c = model.b2[0]!;
  let s = model.b2[1]!;
  for (let k = 0; k < model.hidden; k++) {
    if (h[k]! <= 0) continue;
    c += h[k]! * model.w2[2 * k]!;
    s += h[k]! * model.w2[2 * k + 1]!;
  }
  return { turn: (Math.atan2(s, c) * 180) / Math.PI, confidence: Math.hypot(c, s) };
}

const angleSchema = z.object({
  format: z.literal(ANGLE_FORMAT),
  backbone: z.string().min(1),
  mean: z.array(z.number()).min(1),
  std: z.array(z.number().positive()),
  w1: z.array(z.number()),
  b1: z.array(z.number()),
  w2: z.array(z.number()),
  b2: z.array(z.number()).length(2),
  hidden: z.number().int().positive(),
  applyTo: z.array(z.enum(['uniform', 'segmented', 'located', 'busy'])).optional(),
  minConfidence: z.number().min(0).optional(),
  meta: z.record(z.string(), z.unknown()).optional(),
});

/** Validates a parsed angle model file (BAD_INPUT naming what is wrong). */
export function parseAngleModel(json: unknown): AngleModel {
  const r = angleSchema.safeParse(json);
  if (!r.success) throw new EngineError('BAD_INPUT', `Not a solescope angle model: ${r.error.issues[0]?.path.join('.')} ${r.error.issues[0]?.message}`);
  const m = r.data;
  const dim = m.mean.length;
  if (m.std.length !== dim || m.w1.length !== dim * m.hidden || m.b1.length !== m.hidden || m.w2.length !== 2 * m.hidden) {
    throw new EngineError('BAD_INPUT', 'Angle model layers do not fit together (mean, std, w1, b1, w2 lengths)');
  }
  return m as AngleModel;
}

/** The file name of a backbone's angle model (it reads that backbone's whole embedding). */
export function angleFileName(backbone: string): string {
  return `angle-${backbone}.json`;
}

/**
 * A short content hash of an angle model file: the cache key of training views that were served with it
 * (`embedTurnedCopy`), so a rebuilt model makes new rows instead of reusing the old model's.
 */
export function angleFileKey(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex').slice(0, 12);
}

/** The command that rebuilds a shipped angle model (named in MODEL_MISSING errors). */
export const ANGLE_REBUILD = 'npm run train:angle -- --data <manifest.csv> --backbone inception_v3_m67 --copies 5 --seeds 3';

/** Reads and validates an angle model file; MODEL_MISSING (with the rebuild command) when absent or corrupt. */
export function loadAngleModel(file: string): AngleModel {
  return readModelFile(file, 'The angle model', ANGLE_REBUILD, parseAngleModel);
}

const shipped = new Map<string, AngleModel>();

/** The shipped angle model of a backbone (read once per process); MODEL_MISSING when there is none. */
export function shippedAngleModel(backbone: string, dir = DEFAULT_LOCALISER_DIR): AngleModel {
  const file = path.join(dir, angleFileName(backbone));
  let model = shipped.get(file);
  if (!model) {
    model = loadAngleModel(file);
    if (model.backbone !== backbone) throw new EngineError('MODEL_MISSING', `${file} is an angle model for ${model.backbone}, not ${backbone}. Rebuild it with \`${ANGLE_REBUILD}\`.`, { details: { rebuild: ANGLE_REBUILD } });
    shipped.set(file, model);
  }
  return model;
}

/** The learnt turn as the feature pipeline uses it: where to ask, and how to look. */
export interface Turner {
  /** The background kinds whose views it is asked about ({@link AngleModel.applyTo}). */
  readonly applyTo: readonly string[];
  /** No turn is tried below this first-look confidence ({@link AngleModel.minConfidence}). */
  readonly minConfidence: number;
  /**
   * Reads the turn left in a served model input: its embedding (one forward pass, returned so the caller need not
   * embed the same input again) and the model's answer.
   */
  look(input: Float32Array): Promise<{ readonly embedding: Float32Array; readonly prediction: TurnPrediction }>;
  /** The model's answer for an embedding computed elsewhere (a caller that runs the forward pass itself). */
  read(embedding: ArrayLike<number>): TurnPrediction;
}

/** A {@link Turner} for a backbone and its angle model. */
export function makeTurner(backbone: Backbone, model: AngleModel): Turner {
  if (model.backbone !== backbone.name) throw new EngineError('INTERNAL', `Angle model for ${model.backbone} used with ${backbone.name}`);
  return {
    applyTo: model.applyTo ?? ['located'],
    minConfidence: model.minConfidence ?? 0,
    async look(input) {
      const [embedding] = await backbone.embedImages([input], { batchSize: 1 });
      return { embedding: embedding!, prediction: predictTurn(model, embedding!) };
    },
    read: (embedding) => predictTurn(model, embedding),
  };
}
