/**
 * A classification head on frozen backbone embeddings: standardise → (dense + ReLU + dropout) → softmax,
 * trained with class-weighted cross-entropy and mini-batches. The state lives in Float32Arrays here: the whole of
 * it (weights, optimiser moments, RNG) serialises to one checkpoint per epoch, so a killed worker resumes exactly
 * where it stopped. Only the first layer's two matrix products per mini-batch — nearly all of the arithmetic on
 * 2,816-d rows — go to a tfjs backend when the caller passes one (`TrainHeadOptions.tf`); without one the same
 * products run as blocked TypeScript loops, so a worker without any backend still trains
 * (`npm run bench`, headFitRowsPerSec: `community` and `communityTypescript`).
 */
import { headModelSchema, headProbabilitiesAt } from '../../../engine/ml/head.ts';
import { foldKernel, nuisanceDirections, projectOut } from '../../../engine/ml/nuisance.ts';
import type { Tf } from '../../../engine/ml/runtime.ts';

/** Hyperparameters of a head (the `tune` search space). */
export interface HeadParams {
  /** Hidden units; 0 = a linear (softmax regression) head. */
  readonly hidden: number;
  readonly dropout: number;
  readonly lr: number;
  readonly optimizer: 'adam' | 'sgd' | 'rmsprop';
  /** Std of Gaussian noise added to standardised embeddings each batch (feature-space augmentation). */
  readonly augment: number;
  readonly batchSize: number;
  /** L2 penalty on weights. */
  readonly weightDecay: number;
  /**
   * Share of each training target spread evenly over the classes (0 = one-hot). With one-hot targets the loss
   * keeps rewarding larger logits after every training photo is right, so a head ends up far surer than it is
   * right; a smoothed target has a finite optimum (with 0.1 and 4 classes, 92.5 % on the labelled class).
   */
  readonly labelSmoothing: number;
}

/** Defaults that train a sound head on MobileNet/Inception embeddings. */
export const DEFAULT_HEAD_PARAMS: HeadParams = {
  hidden: 64,
  dropout: 0.2,
  lr: 0.01,
  optimizer: 'adam',
  augment: 0.1,
  batchSize: 16,
  weightDecay: 1e-4,
  labelSmoothing: 0,
};

/**
 * A trained head as JSON: the registry artifact. It is the vision plugin's head-file format
 * (`solescope-head` v1: standardise → dense layers → softmax, plus an out-of-distribution check), so the
 * serving code loads a promoted version exactly like its shipped default models.
 */
export interface HeadArtifact {
  readonly format: 'solescope-head';
  readonly version: 1;
  readonly id: string;
  readonly task: string;
  /** Labels the softmax covers, in output order. */
  readonly labels: readonly string[];
  readonly backbone: string;
  readonly prepVersion: string;
  /** The feature pipeline (derived from `prepVersion`); embeddings are used unnormalised (`l2: false`). */
  readonly features: {
    readonly trim: boolean;
    readonly flipAverage: boolean;
    readonly l2: boolean;
    readonly normalise?: boolean;
    readonly orient?: boolean;
    readonly upright?: boolean;
    readonly locate?: boolean;
    /** Turn a tilted shoe by what the backbone's angle model reads (the vision plugin's learnt turn). */
    readonly learntTurn?: boolean;
  };
  readonly standardise: { readonly mean: readonly number[]; readonly std: readonly number[] };
  readonly layers: readonly {
    readonly inputs: number;
    readonly units: number;
    /** Row-major `[inputs][units]`. */
    readonly kernel: readonly number[];
    readonly bias: readonly number[];
    readonly activation: 'linear' | 'relu';
  }[];
  /** L2-normalised class centroids of the training embeddings and the cosine distance beyond which an input is unlike them. */
  readonly ood: { readonly centroids: readonly (readonly number[])[]; readonly threshold: number };
  readonly temperature: number;
  readonly minConfidence: number;
  /** Test-time view serving adds (the run's `tta` choice; see pipeline.ts); absent = the photo alone. */
  readonly tta?: 'mirror';
  readonly seed: number;
  readonly createdAt: string;
  readonly meta: Record<string, unknown>;
}

/** One epoch's numbers (training curves). */
export interface EpochLog {
  readonly epoch: number;
  readonly loss: number;
  readonly valLoss: number;
  readonly valMacroF1: number;
  readonly valAccuracy: number;
}

/** Everything needed to resume training after epoch `epoch`. */
export interface HeadCheckpoint {
  readonly epoch: number;
  readonly rng: number;
  readonly params: string;
  readonly m: string;
  readonly v: string;
  readonly step: number;
  readonly curves: readonly EpochLog[];
  readonly bestF1: number;
  readonly best: string;
}

/** Training data: standardisation is computed from `x` (the training split only). */
export interface HeadData {
  readonly x: readonly Float32Array[];
  readonly y: readonly number[];
}

/** mulberry32: small, fast, seedable, and its whole state is one uint32 (checkpointable). */
export class Rng {
  constructor(public state: number) {}
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  normal(): number {
    const u = Math.max(this.next(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
  /**
   * Fill `out` with independent standard normals, both of each Box–Muller pair used (half the draws and
   * logarithms of calling {@link normal} per value). Nothing is carried between calls, so the state after a
   * call is still the whole story for a checkpoint.
   */
  normals(out: Float32Array): void {
    let i = 0;
    for (; i + 1 < out.length; i += 2) {
      const r = Math.sqrt(-2 * Math.log(Math.max(this.next(), 1e-12)));
      const t = 2 * Math.PI * this.next();
      out[i] = r * Math.cos(t);
      out[i + 1] = r * Math.sin(t);
    }
    if (i < out.length) out[i] = this.normal();
  }
}

/** Float32Array ⇄ base64 (compact checkpoints and artifacts). */
export function f32ToB64(a: Float32Array): string {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
}
/** Inverse of {@link f32ToB64}. */
export function b64ToF32(s: string): Float32Array {
  const buf = Buffer.from(s, 'base64');
  const out = new Float32Array(buf.byteLength / 4);
  new Uint8Array(out.buffer).set(buf);
  return out;
}

interface Shapes {
  dim: number;
  hidden: number;
  k: number;
}

function paramCount({ dim, hidden, k }: Shapes): number {
  return hidden > 0 ? dim * hidden + hidden + hidden * k + k : dim * k + k;
}

function initParams(s: Shapes, rng: Rng): Float32Array {
  const p = new Float32Array(paramCount(s));
  // He init for the ReLU layer, Glorot for the softmax layer; biases zero.
  if (s.hidden > 0) {
    const a = Math.sqrt(2 / s.dim);
    for (let i = 0; i < s.dim * s.hidden; i++) p[i] = rng.normal() * a;
    const off = s.dim * s.hidden + s.hidden;
    const b = Math.sqrt(2 / (s.hidden + s.k));
    for (let i = 0; i < s.hidden * s.k; i++) p[off + i] = rng.normal() * b;
  } else {
    const b = Math.sqrt(2 / (s.dim + s.k));
    for (let i = 0; i < s.dim * s.k; i++) p[i] = rng.normal() * b;
  }
  return p;
}

/**
 * Why batched and transposed: the first layer is nearly all of the work (dim × units multiply-adds per row,
 * against units × k for the rest). A loop per row would stream the whole kernel through the cache for every row
 * and store each partial sum back to memory; here a batch shares one pass over a transposed copy of the kernel,
 * and every pre-activation and weight gradient is a contiguous dot product summed in double-precision registers.
 */
function dot(a: Float32Array, ao: number, b: Float32Array, bo: number, n: number): number {
  // Four accumulators so consecutive multiply-adds do not wait on each other.
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let i = 0;
  for (; i + 3 < n; i += 4) {
    s0 += a[ao + i]! * b[bo + i]!;
    s1 += a[ao + i + 1]! * b[bo + i + 1]!;
    s2 += a[ao + i + 2]! * b[bo + i + 2]!;
    s3 += a[ao + i + 3]! * b[bo + i + 3]!;
  }
  for (; i < n; i++) s0 += a[ao + i]! * b[bo + i]!;
  return s0 + s1 + s2 + s3;
}

/** Units of the first dense layer: the hidden layer, or the softmax itself for a linear head. */
function firstUnits(s: Shapes): number {
  return s.hidden > 0 ? s.hidden : s.k;
}

/** The first layer's kernel (row-major `[dim][units]` in `p`) transposed to `[units][dim]`. */
function transposeFirst(p: Float32Array, s: Shapes, out: Float32Array): void {
  const { dim } = s;
  const u = firstUnits(s);
  for (let i = 0; i < dim; i++) {
    const row = i * u;
    for (let j = 0; j < u; j++) out[j * dim + i] = p[row + j]!;
  }
}

/**
 * `c[a·bRows + b] = Σ_t A[a·aStride + t] · B[b·bStride + t]` for t < len: every output one dot product of a row of A
 * with a row of B, four rows of B at a time so each value of A is loaded once for four multiply-adds. Both of the
 * first layer's products take this shape: the forward (A = the batch's rows, B = the transposed kernel) and the
 * kernel's gradient (A = the batch's columns, B = the output gradient's columns).
 */
function productABt(A: Float32Array, aStride: number, aRows: number, B: Float32Array, bStride: number, bRows: number, len: number, c: Float64Array): void {
  for (let a = 0; a < aRows; a++) {
    const ao = a * aStride;
    const co = a * bRows;
    let b = 0;
    for (; b + 3 < bRows; b += 4) {
      const b0 = b * bStride;
      const b1 = b0 + bStride;
      const b2 = b1 + bStride;
      const b3 = b2 + bStride;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let t = 0; t < len; t++) {
        const v = A[ao + t]!;
        s0 += v * B[b0 + t]!;
        s1 += v * B[b1 + t]!;
        s2 += v * B[b2 + t]!;
        s3 += v * B[b3 + t]!;
      }
      c[co + b] = s0;
      c[co + b + 1] = s1;
      c[co + b + 2] = s2;
      c[co + b + 3] = s3;
    }
    for (; b < bRows; b++) c[co + b] = dot(A, ao, B, b * bStride, len);
  }
}

/** Pre-activations of the first layer for `rows` rows of `x` (`[rows][dim]`): `z[r·units + j]`. */
function firstLayer(p: Float32Array, s: Shapes, wT: Float32Array, x: Float32Array, rows: number, z: Float64Array): void {
  const { dim } = s;
  const u = firstUnits(s);
  productABt(x, dim, rows, wT, dim, u, dim, z);
  for (let r = 0; r < rows; r++) for (let j = 0; j < u; j++) z[r * u + j]! += p[dim * u + j]!;
}

/**
 * The first layer's kernel gradient: `grad[i·units + j] = Σ_r xT[i][r] · dT[j][r]` over the batch's `rows`
 * (both operands column-major with stride `stride`).
 */
function firstGrad(s: Shapes, xT: Float32Array, dT: Float32Array, rows: number, stride: number, grad: Float64Array): void {
  productABt(xT, stride, s.dim, dT, stride, firstUnits(s), rows, grad);
}

/**
 * The rest of the forward pass for row `r` of a batch, from its first-layer pre-activations: ReLU and the
 * dropout mask into `hiddenOut` (kept for backprop), then softmax probabilities into `probs`.
 */
function headRest(p: Float32Array, s: Shapes, z: Float64Array, r: number, mask: Float32Array | undefined, maskOff: number, hiddenOut: Float64Array, probs: Float64Array): void {
  const { dim, hidden, k } = s;
  let max = -Infinity;
  if (hidden > 0) {
    for (let j = 0; j < hidden; j++) {
      const a = z[r * hidden + j]!;
      const h = a > 0 ? a : 0;
      hiddenOut[j] = mask ? h * mask[maskOff + j]! : h;
    }
    const off = dim * hidden + hidden;
    for (let c = 0; c < k; c++) {
      let v = p[off + hidden * k + c]!;
      for (let i = 0; i < hidden; i++) v += hiddenOut[i]! * p[off + i * k + c]!;
      probs[c] = v;
      if (v > max) max = v;
    }
  } else {
    for (let c = 0; c < k; c++) {
      const v = z[r * k + c]!;
      probs[c] = v;
      if (v > max) max = v;
    }
  }
  let sum = 0;
  for (let c = 0; c < k; c++) {
    probs[c] = Math.exp(probs[c]! - max);
    sum += probs[c]!;
  }
  for (let c = 0; c < k; c++) probs[c] = probs[c]! / sum;
}

/** Balanced class weights: n / (k · count[c]), so rare brands count as much as common ones. */
export function classWeights(y: readonly number[], k: number): number[] {
  const counts = new Array<number>(k).fill(0);
  for (const c of y) counts[c] = (counts[c] ?? 0) + 1;
  return counts.map((n) => (n > 0 ? y.length / (k * n) : 0));
}

/** Per-feature mean and std of the training split. */
export function standardiser(x: readonly Float32Array[], dim: number): { mean: Float32Array; std: Float32Array } {
  const mean = new Float32Array(dim);
  const std = new Float32Array(dim);
  for (const row of x) for (let i = 0; i < dim; i++) mean[i]! += row[i]! / x.length;
  for (const row of x) for (let i = 0; i < dim; i++) std[i]! += (row[i]! - mean[i]!) ** 2 / x.length;
  for (let i = 0; i < dim; i++) std[i] = Math.sqrt(std[i]!) || 1;
  return { mean, std };
}

function standardise(x: Float32Array, mean: ArrayLike<number>, std: ArrayLike<number>): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = (x[i]! - mean[i]!) / std[i]!;
  return out;
}

/** Options of {@link trainHead}. */
export interface TrainHeadOptions {
  readonly task: string;
  readonly classes: readonly string[];
  readonly features: { readonly backbone: string; readonly prepVersion: string };
  readonly train: HeadData;
  /** Held-out data for the curves and for keeping the best epoch (the gate uses its own test split). */
  readonly validation: HeadData;
  readonly epochs: number;
  readonly params: HeadParams;
  readonly seed: number;
  /** Resume from this checkpoint (its epoch is already done). */
  readonly resume?: HeadCheckpoint | undefined;
  /** Called after each epoch with its log and a checkpoint; awaited (so checkpoints are durable). */
  readonly onEpoch?: (log: EpochLog, checkpoint: HeadCheckpoint) => Promise<void> | void;
  readonly signal?: AbortSignal | undefined;
  /**
   * Source-nuisance projection: each training row's source (`train.x` order). Where a class has photos from
   * two or more sources (≥ `minRows` each), the directions separating them within the class are style, not
   * class; they are removed from the input before fitting and folded into the first layer, so the artifact
   * format and serving stay the same. Fewer than two such sources: no directions, a plain head.
   */
  readonly nuisance?: { readonly groups: readonly string[]; readonly maxDirections?: number; readonly minRows?: number } | undefined;
  /**
   * A tfjs namespace to run the first layer's two matrix products on (XNNPACK with SIMD on wasm, the GPU with
   * tfjs-node-gpu): they are nearly all of a fit's arithmetic. Everything else — the RNG, dropout, the
   * optimiser, checkpoints — stays here, so a run is deterministic either way; the two ways round differently,
   * so a run resumed on the other one continues from the same checkpoint but not bit for bit.
   */
  readonly tf?: Tf | undefined;
}

/** Result of {@link trainHead}. */
export interface TrainHeadResult {
  readonly artifact: HeadArtifact;
  readonly curves: readonly EpochLog[];
  readonly resumedFromEpoch: number;
}

/** Train a head. Deterministic for a given seed, also across a resume. */
export async function trainHead(options: TrainHeadOptions): Promise<TrainHeadResult> {
  const { train, validation, params, classes } = options;
  const first = train.x[0];
  if (!first) throw new Error('no training data');
  const dim = first.length;
  const k = classes.length;
  const s: Shapes = { dim, hidden: Math.max(0, Math.round(params.hidden)), k };
  const { mean, std } = standardiser(train.x, dim);
  const zs = train.x.map((x) => standardise(x, mean, std));
  // Directions are a pure function of the training data, so a resumed run recomputes the same ones.
  const nz = options.nuisance;
  const directions = nz
    ? nuisanceDirections(zs, train.y, [nz.groups], { ...(nz.maxDirections !== undefined ? { max: nz.maxDirections } : {}), ...(nz.minRows !== undefined ? { minRows: nz.minRows } : {}) })
    : [];
  const xs = projectOut(zs, directions);
  // Validation sees what serving will: the projection folded into the first layer.
  const vx = projectOut(
    validation.x.map((x) => standardise(x, mean, std)),
    directions,
  );
  const weightsOf = classWeights(train.y, k);
  const rng = new Rng(options.resume?.rng ?? (options.seed >>> 0 || 1));
  let p = options.resume ? b64ToF32(options.resume.params) : initParams(s, rng);
  let m = options.resume ? b64ToF32(options.resume.m) : new Float32Array(p.length);
  let v = options.resume ? b64ToF32(options.resume.v) : new Float32Array(p.length);
  if (p.length !== paramCount(s)) {
    // A checkpoint from different data or params: start over rather than load mismatched weights.
    p = initParams(s, rng);
    m = new Float32Array(p.length);
    v = new Float32Array(p.length);
  }
  let step = options.resume?.step ?? 0;
  const curves: EpochLog[] = [...(options.resume?.curves ?? [])];
  let bestF1 = options.resume?.bestF1 ?? -1;
  let best = options.resume ? b64ToF32(options.resume.best) : new Float32Array(p);
  const startEpoch = options.resume && p.length === paramCount(s) ? options.resume.epoch : 0;
  const grad = new Float64Array(p.length);
  const u1 = firstUnits(s);
  const batchSize = Math.max(1, Math.round(params.batchSize));
  const wT = new Float32Array(dim * u1);
  // The batch twice: rows (`[B][dim]`) for the forward dot products, columns (`[dim][B]`) for the kernel's gradient.
  const xb = new Float32Array(batchSize * dim);
  const xbT = new Float32Array(dim * batchSize);
  const z = new Float64Array(batchSize * u1);
  const dzT = new Float32Array(u1 * batchSize);
  const dzR = new Float32Array(batchSize * u1);
  const tf = options.tf;
  const masks = new Float32Array(batchSize * Math.max(1, s.hidden));
  const hiddenOut = new Float64Array(Math.max(1, s.hidden));
  const probs = new Float64Array(k);
  const dz = new Float64Array(k);
  const noise = new Float32Array(dim);
  const order = xs.map((_, i) => i);
  const smoothing = Math.min(Math.max(params.labelSmoothing ?? 0, 0), 0.5);
  const onTarget = 1 - smoothing;
  const offTarget = smoothing / k;
  if (!tf) transposeFirst(p, s, wT);

  for (let epoch = startEpoch + 1; epoch <= options.epochs; epoch++) {
    if (options.signal?.aborted) throw options.signal.reason instanceof Error ? options.signal.reason : new Error('aborted');
    // Each epoch's order is a pure function of the RNG state (which the checkpoint holds), so a resumed run
    // sees exactly the batches an uninterrupted one would.
    for (let i = 0; i < order.length; i++) order[i] = i;
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rng.next() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    let lossSum = 0;
    let weightSum = 0;
    for (let b0 = 0; b0 < order.length; b0 += batchSize) {
      grad.fill(0);
      const rows = Math.min(batchSize, order.length - b0);
      // Draw in the per-row order (noise, then dropout mask, row after row), so the RNG stream and thus a
      // resumed run's batches do not depend on how the arithmetic below is grouped.
      for (let r = 0; r < rows; r++) {
        const x0 = xs[order[b0 + r]!]!;
        const ro = r * dim;
        if (params.augment > 0) {
          rng.normals(noise);
          for (let i = 0; i < dim; i++) xb[ro + i] = x0[i]! + params.augment * noise[i]!;
        } else {
          xb.set(x0, ro);
        }
        if (!tf) for (let i = 0; i < dim; i++) xbT[i * batchSize + r] = xb[ro + i]!;
        if (s.hidden > 0) {
          const keep = 1 - params.dropout;
          const mo = r * s.hidden;
          for (let j = 0; j < s.hidden; j++) masks[mo + j] = rng.next() < keep ? 1 / keep : 0;
        }
      }
      // On tfjs the batch is uploaded once for both products; it is disposed after the gradient's.
      const xbTensor = tf?.tensor2d(xb.subarray(0, rows * dim), [rows, dim]);
      if (tf && xbTensor) {
        const out = tf.tidy(() => tf.matMul(xbTensor, tf.tensor2d(p.subarray(0, dim * u1), [dim, u1])));
        const zz = out.dataSync();
        out.dispose();
        for (let r = 0; r < rows; r++) for (let j = 0; j < u1; j++) z[r * u1 + j] = p[dim * u1 + j]! + zz[r * u1 + j]!;
      } else {
        firstLayer(p, s, wT, xb, rows, z);
      }
      let bw = 0;
      for (let r = 0; r < rows; r++) {
        const label = train.y[order[b0 + r]!]!;
        const w = weightsOf[label] ?? 1;
        headRest(p, s, z, r, s.hidden > 0 ? masks : undefined, r * s.hidden, hiddenOut, probs);
        // Cross-entropy against the (smoothed) target: the curve's loss is the one minimised.
        for (let c = 0; c < k; c++) {
          const target = (c === label ? onTarget : 0) + offTarget;
          if (target > 0) lossSum += -Math.log(Math.max(probs[c]!, 1e-12)) * target * w;
          dz[c] = (probs[c]! - target) * w;
        }
        weightSum += w;
        bw += w;
        if (s.hidden > 0) {
          const off = dim * s.hidden + s.hidden;
          for (let j = 0; j < s.hidden; j++) {
            let acc = 0;
            const h = hiddenOut[j]!;
            for (let c = 0; c < k; c++) {
              grad[off + j * k + c]! += h * dz[c]!;
              acc += p[off + j * k + c]! * dz[c]!;
            }
            const d = h > 0 ? acc * masks[r * s.hidden + j]! : 0;
            dzT[j * batchSize + r] = d;
            dzR[r * u1 + j] = d;
          }
          for (let c = 0; c < k; c++) grad[off + s.hidden * k + c]! += dz[c]!;
        } else {
          for (let c = 0; c < k; c++) {
            dzT[c * batchSize + r] = dz[c]!;
            dzR[r * u1 + c] = dz[c]!;
          }
        }
      }
      if (tf && xbTensor) {
        const out = tf.tidy(() => tf.matMul(xbTensor, tf.tensor2d(dzR.subarray(0, rows * u1), [rows, u1]), true, false));
        xbTensor.dispose();
        const g = out.dataSync();
        out.dispose();
        for (let i = 0; i < dim * u1; i++) grad[i] = g[i]!;
      } else {
        firstGrad(s, xbT, dzT, rows, batchSize, grad);
      }
      for (let j = 0; j < u1; j++) {
        let acc = 0;
        for (let r = 0; r < rows; r++) acc += dzT[j * batchSize + r]!;
        grad[dim * u1 + j] = acc;
      }
      step++;
      const scale = 1 / Math.max(bw, 1e-9);
      const lr = params.lr;
      const decay = params.weightDecay;
      // One loop per optimiser, bias corrections computed once per step: the update runs over every
      // parameter each mini-batch, so per-parameter branches and powers were a third of an epoch.
      if (params.optimizer === 'adam') {
        const c1 = 1 - 0.9 ** step;
        const c2 = 1 - 0.999 ** step;
        for (let i = 0; i < p.length; i++) {
          const g = grad[i]! * scale + decay * p[i]!;
          m[i] = 0.9 * m[i]! + 0.1 * g;
          v[i] = 0.999 * v[i]! + 0.001 * g * g;
          p[i]! -= (lr * (m[i]! / c1)) / (Math.sqrt(v[i]! / c2) + 1e-8);
        }
      } else if (params.optimizer === 'rmsprop') {
        for (let i = 0; i < p.length; i++) {
          const g = grad[i]! * scale + decay * p[i]!;
          v[i] = 0.9 * v[i]! + 0.1 * g * g;
          p[i]! -= (lr * g) / (Math.sqrt(v[i]!) + 1e-8);
        }
      } else {
        for (let i = 0; i < p.length; i++) {
          const g = grad[i]! * scale + decay * p[i]!;
          m[i] = 0.9 * m[i]! + g;
          p[i]! -= lr * m[i]!;
        }
      }
      if (!tf) transposeFirst(p, s, wT);
    }
    const val = evaluateParams(p, s, vx, validation.y, k, weightsOf);
    const log: EpochLog = { epoch, loss: lossSum / Math.max(weightSum, 1e-9), valLoss: val.loss, valMacroF1: val.macroF1, valAccuracy: val.accuracy };
    curves.push(log);
    // Keep the best epoch on validation (early-stopping without stopping: the curves stay complete):
    // higher macro-F1, or equal macro-F1 with lower loss (a small validation set saturates F1 early).
    const score = val.macroF1 - val.loss * 1e-6;
    if (score > bestF1 || vx.length === 0) {
      bestF1 = score;
      best = new Float32Array(p);
    }
    const checkpoint: HeadCheckpoint = {
      epoch,
      rng: rng.state,
      params: f32ToB64(p),
      m: f32ToB64(m),
      v: f32ToB64(v),
      step,
      curves: [...curves],
      bestF1,
      best: f32ToB64(best),
    };
    await options.onEpoch?.(log, checkpoint);
    // Yield so lock renewal, progress and cancellation get their turn between epochs.
    await new Promise((r) => setImmediate(r));
  }
  return {
    artifact: toArtifact(best, s, {
      task: options.task,
      classes,
      features: options.features,
      mean,
      std,
      seed: options.seed,
      ood: oodOf(train, k),
      directions,
      ...(options.nuisance ? { nuisanceGroups: new Set(options.nuisance.groups).size } : {}),
      arithmetic: tf ? `tfjs-${tf.getBackend()}` : 'typescript',
    }),
    curves,
    resumedFromEpoch: startEpoch,
  };
}

function l2(v: ArrayLike<number>): number[] {
  let n = 0;
  for (let i = 0; i < v.length; i++) n += v[i]! * v[i]!;
  n = Math.sqrt(n) || 1;
  const out = new Array<number>(v.length);
  for (let i = 0; i < v.length; i++) out[i] = v[i]! / n;
  return out;
}

function cosine(a: readonly number[], b: readonly number[]): number {
  let dot = 0;
  for (let i = 0; i < a.length; i++) dot += a[i]! * b[i]!;
  return 1 - dot;
}

/** Class centroids (normalised) and the 99th percentile of training distances to the nearest one. */
function oodOf(train: HeadData, k: number): { centroids: number[][]; threshold: number } {
  const dim = train.x[0]!.length;
  const sums = Array.from({ length: k }, () => new Array<number>(dim).fill(0));
  train.x.forEach((x, i) => {
    const u = l2(x);
    const row = sums[train.y[i]!]!;
    for (let d = 0; d < dim; d++) row[d]! += u[d]!;
  });
  const centroids = sums.filter((r) => r.some((v) => v !== 0)).map((r) => l2(r));
  // Each row normalised once (not once per centroid: on a few thousand 2,816-d rows that was a tenth of a run).
  const distances = train.x
    .map((x) => {
      const u = l2(x);
      return Math.min(...centroids.map((c) => cosine(u, c)));
    })
    .sort((a, b) => a - b);
  const threshold = distances[Math.min(distances.length - 1, Math.floor(distances.length * 0.99))] ?? 1;
  return { centroids, threshold: Math.max(threshold, 1e-6) };
}

/**
 * The feature pipeline a prepVersion names (the vision plugin's cache key, e.g. `vprep-1+norm3u2+loc1+lt1`): serving
 * recomputes embeddings from these flags, so each step the training embeddings went through must be here —
 * normalise, orient (`o`), upright (`u<n>`), the shoe localiser (`+loc<n>`), the learnt turn (`+lt<n>`) — or
 * serving embeds differently.
 */
export function featuresOf(prepVersion: string): HeadArtifact['features'] {
  const norm = /\+norm\d+(o)?(u\d+)?/.exec(prepVersion);
  return {
    trim: prepVersion.includes('+trim'),
    flipAverage: prepVersion.includes('+flipavg'),
    l2: false,
    ...(norm ? { normalise: true, orient: norm[1] !== undefined, ...(norm[2] ? { upright: true } : {}), ...(/\+loc\d+/.test(prepVersion) ? { locate: true } : {}), ...(/\+lt\d+/.test(prepVersion) ? { learntTurn: true } : {}) } : {}),
  };
}

function toArtifact(
  params: Float32Array,
  s: Shapes,
  o: {
    task: string;
    classes: readonly string[];
    features: { backbone: string; prepVersion: string };
    mean: Float32Array;
    std: Float32Array;
    seed: number;
    ood: { centroids: number[][]; threshold: number };
    directions: readonly Float32Array[];
    nuisanceGroups?: number;
    arithmetic: string;
  },
): HeadArtifact {
  const { dim, hidden, k } = s;
  // (I − UUᵀ) folded into the first layer's kernel (the first dim·units values in either shape).
  const firstUnits = hidden > 0 ? hidden : k;
  const p = new Float32Array(params);
  if (o.directions.length > 0) p.set(foldKernel(params.subarray(0, dim * firstUnits), dim, firstUnits, o.directions));
  const layers: HeadArtifact['layers'] =
    hidden > 0
      ? [
          { inputs: dim, units: hidden, kernel: Array.from(p.subarray(0, dim * hidden)), bias: Array.from(p.subarray(dim * hidden, dim * hidden + hidden)), activation: 'relu' },
          {
            inputs: hidden,
            units: k,
            kernel: Array.from(p.subarray(dim * hidden + hidden, dim * hidden + hidden + hidden * k)),
            bias: Array.from(p.subarray(dim * hidden + hidden + hidden * k)),
            activation: 'linear',
          },
        ]
      : [{ inputs: dim, units: k, kernel: Array.from(p.subarray(0, dim * k)), bias: Array.from(p.subarray(dim * k)), activation: 'linear' }];
  return {
    format: 'solescope-head',
    version: 1,
    id: `${o.task}-${new Date().toISOString().replace(/[:.]/g, '-')}`,
    task: o.task,
    labels: [...o.classes],
    backbone: o.features.backbone,
    prepVersion: o.features.prepVersion,
    features: featuresOf(o.features.prepVersion),
    standardise: { mean: Array.from(o.mean), std: Array.from(o.std) },
    layers,
    ood: o.ood,
    temperature: 1,
    minConfidence: 0.6,
    seed: o.seed,
    createdAt: new Date().toISOString(),
    meta: {
      trainer: 'training-plugin',
      // Where the first layer's products ran (see TrainHeadOptions.tf): the two round differently.
      arithmetic: o.arithmetic,
      ...(o.nuisanceGroups !== undefined ? { nuisance: { grouping: 'source', groups: o.nuisanceGroups, directions: o.directions.length } } : {}),
    },
  };
}

function evaluateParams(
  p: Float32Array,
  s: Shapes,
  xs: readonly Float32Array[],
  y: readonly number[],
  k: number,
  weights: readonly number[],
): { loss: number; macroF1: number; accuracy: number } {
  const dim = s.dim;
  const u1 = firstUnits(s);
  const chunk = 64;
  const wT = new Float32Array(dim * u1);
  transposeFirst(p, s, wT);
  const xb = new Float32Array(chunk * dim);
  const z = new Float64Array(chunk * u1);
  const hiddenOut = new Float64Array(Math.max(1, s.hidden));
  const probs = new Float64Array(k);
  const pred: number[] = [];
  let loss = 0;
  let wsum = 0;
  for (let r0 = 0; r0 < xs.length; r0 += chunk) {
    const rows = Math.min(chunk, xs.length - r0);
    for (let r = 0; r < rows; r++) xb.set(xs[r0 + r]!, r * dim);
    firstLayer(p, s, wT, xb, rows, z);
    for (let r = 0; r < rows; r++) {
      headRest(p, s, z, r, undefined, 0, hiddenOut, probs);
      const label = y[r0 + r]!;
      const w = weights[label] ?? 1;
      loss += -Math.log(Math.max(probs[label]!, 1e-12)) * w;
      wsum += w;
      pred.push(argmax(probs));
    }
  }
  const { macroF1, accuracy } = quickF1(y, pred, k);
  return { loss: wsum > 0 ? loss / wsum : 0, macroF1, accuracy };
}

function quickF1(y: readonly number[], pred: readonly number[], k: number): { macroF1: number; accuracy: number } {
  let f1Sum = 0;
  let classes = 0;
  let correct = 0;
  for (let c = 0; c < k; c++) {
    let tp = 0;
    let fp = 0;
    let fn = 0;
    y.forEach((t, i) => {
      const p = pred[i];
      if (t === c && p === c) tp++;
      else if (p === c) fp++;
      else if (t === c) fn++;
    });
    if (tp + fp + fn === 0) continue;
    classes++;
    f1Sum += tp > 0 ? (2 * tp) / (2 * tp + fp + fn) : 0;
  }
  y.forEach((t, i) => {
    if (pred[i] === t) correct++;
  });
  return { macroF1: classes > 0 ? f1Sum / classes : 0, accuracy: y.length > 0 ? correct / y.length : 0 };
}

function argmax(a: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
}

/** A loaded head, ready to classify embeddings. */
export interface LoadedHead {
  readonly task: string;
  /** The labels {@link LoadedHead.predict} answers, in its order: the head's, plus `other` for an open-set brand head without one. */
  readonly classes: readonly string[];
  readonly features: { readonly backbone: string; readonly prepVersion: string; readonly dim: number; readonly l2: boolean };
  /** The test-time view serving adds to each photo (`mirror`), or undefined for the photo alone. */
  readonly tta: 'mirror' | undefined;
  /**
   * Class probabilities for one raw (unstandardised) embedding, in `classes` order, exactly as serving computes
   * them (engine/ml/head.ts: open-set share included); `views` are the test-time views' embeddings.
   */
  predict(embedding: Float32Array, views?: readonly Float32Array[]): number[];
  /** {@link LoadedHead.predict} at each of `temperatures` instead of the head's own (one forward pass). */
  predictAt(embedding: Float32Array, views: readonly Float32Array[], temperatures: readonly number[]): number[][];
  /** The softmax temperature serving divides the logits by. */
  readonly temperature: number;
}

/**
 * Parse and load a head artifact (JSON bytes or object): ours, or any `solescope-head` v1 file (the
 * shipped defaults too), so the gate can evaluate whatever the champion is. Throws on anything else.
 */
export function loadHead(artifact: Buffer | Uint8Array | HeadArtifact): LoadedHead {
  const raw = (artifact instanceof Uint8Array ? JSON.parse(Buffer.from(artifact).toString('utf8')) : artifact) as Partial<HeadArtifact>;
  if (raw.format !== 'solescope-head' || raw.version !== 1) throw new Error(`not a solescope head artifact (format ${String(raw.format)})`);
  const parsed = headModelSchema.safeParse(raw);
  if (!parsed.success) throw new Error(`head artifact is incomplete or invalid (${parsed.error.issues[0]?.message ?? 'invalid'})`);
  const head = parsed.data;
  const classes = head.openSet && !head.labels.includes('other') ? [...head.labels, 'other'] : [...head.labels];
  const predictAt = (embedding: Float32Array, views: readonly Float32Array[], temperatures: readonly number[]): number[][] => {
    if (embedding.length !== head.standardise.mean.length) throw new Error(`embedding has ${embedding.length} dims, the head expects ${head.standardise.mean.length}`);
    return headProbabilitiesAt(head, embedding, views, temperatures).map((p) => classes.map((c) => p[c] ?? 0));
  };
  return {
    task: head.task,
    classes,
    features: { backbone: head.backbone, prepVersion: head.prepVersion, dim: head.standardise.mean.length, l2: head.features.l2 },
    tta: head.tta,
    temperature: head.temperature,
    predict: (embedding, views = []) => predictAt(embedding, views, [head.temperature])[0]!,
    predictAt,
  };
}

/** Whether bytes look like a head artifact this module can load. */
export function isHeadArtifact(bytes: Uint8Array): boolean {
  try {
    loadHead(bytes);
    return true;
  } catch {
    return false;
  }
}
