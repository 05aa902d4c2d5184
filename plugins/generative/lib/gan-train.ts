/**
 * The WGAN-GP training loop, shared by the `generative.train-gan` job and scripts/train-gan.ts: batches
 * from an in-memory image set, n_critic critic steps per generator step, a fixed-latent sample grid every
 * K iterations, checkpoints every C iterations, resumable, cancellable, and bounded by iterations or time.
 */
import type * as tfjs from '@tensorflow/tfjs';
import {
  createTrainer,
  criticStep,
  generatorForward,
  generatorStep,
  latents,
  mulberry32,
  type GanArchitecture,
  type WganHyper,
} from './gan.ts';
import { restoreCheckpoint, saveCheckpoint, saveGenerator, type HistoryPoint } from './gan-io.ts';
import { floatsToRgb, grid, lineChartPng, resizeRgb, rgbToPng, type Rgb } from './raster.ts';

type Tf = typeof tfjs;

/** Training images: `count` images of `size`×`size`×3, HWC, values in [-1, 1]. */
export interface GanImageSet {
  readonly size: number;
  readonly count: number;
  readonly pixels: Float32Array;
}

/** Options of {@link trainGan}. */
export interface TrainGanOptions {
  readonly arch: GanArchitecture;
  readonly hyper: WganHyper;
  readonly data: GanImageSet;
  readonly seed: number;
  readonly batchSize: number;
  /** Generator iterations to reach (counting those of a resumed checkpoint). */
  readonly iterations: number;
  /** Stop (and save) after this much wall time, even if `iterations` is not reached. */
  readonly maxMinutes?: number;
  /** Sample grid every K generator iterations (0 = never). */
  readonly sampleEvery: number;
  /** Checkpoint every C generator iterations (0 = only at the end). */
  readonly checkpointEvery: number;
  /** A checkpoint to resume from. */
  readonly resume?: Uint8Array;
  /** Mirror each training image at random (sneakers face both ways in the data). */
  readonly flip?: boolean;
  readonly signal?: AbortSignal;
  /** After every generator iteration. */
  onIteration?(info: IterationInfo): void | Promise<void>;
  /** With a sample grid PNG every `sampleEvery` iterations. */
  onSample?(iteration: number, png: Buffer): void | Promise<void>;
  /** With checkpoint bytes every `checkpointEvery` iterations and at the end. */
  onCheckpoint?(iteration: number, bytes: Buffer): void | Promise<void>;
}

/** Progress of one generator iteration. */
export interface IterationInfo {
  readonly iteration: number;
  readonly target: number;
  readonly wasserstein: number;
  readonly gradientPenalty: number;
  readonly generatorLoss: number;
  readonly elapsedMs: number;
  /** Estimated seconds to the target at the recent pace. */
  readonly etaSeconds: number;
}

/** What {@link trainGan} returns. */
export interface TrainGanResult {
  /** The generator file (see gan-io.ts). */
  readonly generator: Buffer;
  /** The last checkpoint (to resume further). */
  readonly checkpoint: Buffer;
  readonly iterations: number;
  readonly elapsedMs: number;
  readonly history: readonly HistoryPoint[];
  /** Loss curves PNG. */
  readonly curvesPng: Buffer;
  /** Final sample grid PNG. */
  readonly samplesPng: Buffer;
  /** Why the loop ended. */
  readonly stoppedBy: 'iterations' | 'time' | 'signal';
}

/** Latent seed of the fixed progress grid, so successive grids show the same 16 samples improving. */
export const PREVIEW_SEED = 20_171_028;

/** Trains (or resumes training) a WGAN-GP. Disposes everything it creates. */
export async function trainGan(tf: Tf, o: TrainGanOptions): Promise<TrainGanResult> {
  if (o.data.size !== o.arch.size) throw new Error(`images are ${o.data.size}px but the GAN makes ${o.arch.size}px`);
  if (o.data.count < 1) throw new Error('no training images');
  const t = createTrainer(tf, o.arch, o.hyper, o.seed);
  try {
    let iteration = 0;
    let history: HistoryPoint[] = [];
    let elapsedBefore = 0;
    if (o.resume) {
      const state = await restoreCheckpoint(tf, t, o.resume);
      iteration = state.iteration;
      history = [...state.history];
      elapsedBefore = state.elapsedMs;
    }
    const started = Date.now();
    const elapsed = () => elapsedBefore + (Date.now() - started);
    const deadline = o.maxMinutes === undefined ? Infinity : started + o.maxMinutes * 60_000;
    const recent: number[] = [];
    let stoppedBy: TrainGanResult['stoppedBy'] = 'iterations';
    const checkpoint = async () =>
      saveCheckpoint(t, { iteration, seed: o.seed, elapsedMs: elapsed(), history, batchSize: o.batchSize });

    while (iteration < o.iterations) {
      if (o.signal?.aborted) {
        stoppedBy = 'signal';
        break;
      }
      if (Date.now() >= deadline) {
        stoppedBy = 'time';
        break;
      }
      const t0 = Date.now();
      // Randomness is a pure function of (seed, iteration, step): a resumed run draws what an unbroken one would.
      let w = 0;
      let gp = 0;
      for (let k = 0; k < o.hyper.nCritic; k++) {
        const stepSeed = (o.seed * 1_000_003 + iteration * 16 + k) >>> 0;
        const real = batch(tf, o.data, o.batchSize, stepSeed, o.flip ?? true);
        const z = tf.tensor2d(latents(o.arch.zDim, stepSeed ^ 0x5eed, o.batchSize), [o.batchSize, o.arch.zDim]);
        const eps = tf.randomUniform([o.batchSize, 1, 1, 1], 0, 1, 'float32', stepSeed);
        const r = criticStep(tf, t, real, z, eps);
        tf.dispose([real, z, eps]);
        w = r.wasserstein;
        gp = r.gradientPenalty;
      }
      const gSeed = (o.seed * 1_000_003 + iteration * 16 + 15) >>> 0;
      const z = tf.tensor2d(latents(o.arch.zDim, gSeed ^ 0x6e6e, o.batchSize), [o.batchSize, o.arch.zDim]);
      const gLoss = generatorStep(tf, t, z);
      z.dispose();
      iteration++;
      history.push({ iteration, wasserstein: w, gradientPenalty: gp, generatorLoss: gLoss });
      recent.push(Date.now() - t0);
      if (recent.length > 20) recent.shift();
      const pace = recent.reduce((a, b) => a + b, 0) / recent.length;
      await o.onIteration?.({
        iteration,
        target: o.iterations,
        wasserstein: w,
        gradientPenalty: gp,
        generatorLoss: gLoss,
        elapsedMs: elapsed(),
        etaSeconds: Math.round(((o.iterations - iteration) * pace) / 1000),
      });
      if (o.sampleEvery > 0 && iteration % o.sampleEvery === 0 && o.onSample) {
        await o.onSample(iteration, await sampleGridPng(tf, t.g, o.arch, PREVIEW_SEED, 16));
      }
      if (o.checkpointEvery > 0 && iteration % o.checkpointEvery === 0 && o.onCheckpoint) {
        await o.onCheckpoint(iteration, await checkpoint());
      }
    }
    const finalCheckpoint = await checkpoint();
    await o.onCheckpoint?.(iteration, finalCheckpoint);
    const generator = saveGenerator(o.arch, t.g, {
      iterations: iteration,
      seed: o.seed,
      batchSize: o.batchSize,
      trainingImages: o.data.count,
      trainingMs: elapsed(),
      hyper: { ...o.hyper },
    });
    return {
      generator,
      checkpoint: finalCheckpoint,
      iterations: iteration,
      elapsedMs: elapsed(),
      history,
      curvesPng: await lossCurvesPng(history),
      samplesPng: await sampleGridPng(tf, t.g, o.arch, PREVIEW_SEED, 16),
      stoppedBy,
    };
  } finally {
    t.dispose();
  }
}

/** A random batch [B, s, s, 3] drawn with replacement, optionally mirrored per image. */
function batch(tf: Tf, data: GanImageSet, size: number, seed: number, flip: boolean): tfjs.Tensor4D {
  const rng = mulberry32(seed);
  const s = data.size;
  const per = s * s * 3;
  const out = new Float32Array(size * per);
  for (let b = 0; b < size; b++) {
    const idx = Math.floor(rng() * data.count);
    const src = data.pixels.subarray(idx * per, (idx + 1) * per);
    if (flip && rng() < 0.5) {
      for (let y = 0; y < s; y++) {
        for (let x = 0; x < s; x++) {
          const from = (y * s + (s - 1 - x)) * 3;
          const to = b * per + (y * s + x) * 3;
          out[to] = src[from]!;
          out[to + 1] = src[from + 1]!;
          out[to + 2] = src[from + 2]!;
        }
      }
    } else {
      out.set(src, b * per);
    }
  }
  return tf.tensor4d(out, [size, s, s, 3]);
}

/** Generated samples as RGB images (one per latent), from a generator's weights. */
export function sampleRgb(
  tf: Tf,
  g: Map<string, tfjs.Variable>,
  arch: GanArchitecture,
  seed: number,
  count: number,
): Rgb[] {
  const images: Rgb[] = [];
  // Batches of 16 bound peak memory for large counts; samples are independent of their batch.
  for (let start = 0; start < count; start += 16) {
    const n = Math.min(16, count - start);
    const pixels = tf.tidy(() => {
      const z = tf.tensor2d(latents(arch.zDim, seed, n, start), [n, arch.zDim]);
      return generatorForward(tf, g, arch, z).dataSync();
    });
    const per = arch.size * arch.size * 3;
    for (let i = 0; i < n; i++) {
      images.push(floatsToRgb(pixels.subarray(i * per, (i + 1) * per), arch.size, arch.size, -1, 1));
    }
  }
  return images;
}

async function sampleGridPng(tf: Tf, g: Map<string, tfjs.Variable>, arch: GanArchitecture, seed: number, count: number): Promise<Buffer> {
  const scale = arch.size <= 32 ? 3 : 2;
  const imgs = await Promise.all(
    sampleRgb(tf, g, arch, seed, count).map((im) => resizeRgb(im, im.width * scale, im.height * scale, 'nearest')),
  );
  return rgbToPng(grid(imgs, 4));
}

/** Loss curves (Wasserstein estimate, gradient penalty, generator loss), smoothed over a moving window. */
export async function lossCurvesPng(history: readonly HistoryPoint[]): Promise<Buffer> {
  const win = Math.max(1, Math.round(history.length / 100));
  const smooth = (vals: number[]) =>
    vals.map((_, i) => {
      const from = Math.max(0, i - win + 1);
      const slice = vals.slice(from, i + 1);
      return slice.reduce((a, b) => a + b, 0) / slice.length;
    });
  // Thin to at most ~400 points: a chart needs no more.
  const step = Math.max(1, Math.floor(history.length / 400));
  const pick = <T,>(a: T[]) => a.filter((_, i) => i % step === 0);
  return lineChartPng(
    'WGAN-GP training (moving average)',
    pick(history.map((h) => h.iteration)),
    [
      { name: 'Wasserstein est.', values: pick(smooth(history.map((h) => h.wasserstein))) },
      { name: 'gradient penalty', values: pick(smooth(history.map((h) => h.gradientPenalty))) },
      { name: 'generator loss', values: pick(smooth(history.map((h) => h.generatorLoss))) },
    ],
  );
}
