/**
 * Deep dream: gradient ascent on the mean activation of one InceptionV3 layer, over several octaves (the
 * image grows by `octaveScale` between them, so patterns form at several scales), with a random jitter
 * (roll) before each step so the network's stride grid does not imprint a lattice, and tiling when the
 * image is large so peak memory stays bounded.
 */
import type * as tfjs from '@tensorflow/tfjs';
import { mulberry32 } from './gan.ts';

type Tf = typeof tfjs;
type Tensor3D = tfjs.Tensor3D;
type Tensor4D = tfjs.Tensor4D;

/** Something that maps an image batch in [0, 1] to one layer's activations (e.g. a backbone sub-model). */
export interface ActivationModel {
  apply(x: Tensor4D): tfjs.Tensor;
}

/** Options of one ascent step. */
export interface DreamStepOptions {
  /** Pixel change per step, in [0, 1] image units, for a normalised gradient (mean |g| = 1). */
  readonly stepSize: number;
  /** Maximum roll in pixels (0 = no jitter). */
  readonly jitter: number;
  /** Tile side: images larger than this get their gradient in tiles. */
  readonly tileSize: number;
  /** Smallest input the model accepts (InceptionV3's mixed layers need 75 px). */
  readonly minSide: number;
  readonly rng: () => number;
}

/** The objective: mean activation of the layer (what each step increases). */
export function dreamObjective(tf: Tf, model: ActivationModel, image: Tensor3D): number {
  return tf.tidy(() => tf.mean(model.apply(tf.expandDims(image, 0) as Tensor4D)).dataSync()[0]!);
}

/**
 * One gradient-ascent step: roll by a random offset, compute ∂mean(activation)/∂image (tile by tile when
 * large), normalise it by its mean magnitude, take the step, roll back, clip to [0, 1]. Returns a new tensor.
 */
export function dreamStep(tf: Tf, model: ActivationModel, image: Tensor3D, o: DreamStepOptions): Tensor3D {
  return tf.tidy(() => {
    const [h, w] = image.shape;
    const dy = o.jitter > 0 ? Math.floor(o.rng() * (2 * o.jitter + 1)) - o.jitter : 0;
    const dx = o.jitter > 0 ? Math.floor(o.rng() * (2 * o.jitter + 1)) - o.jitter : 0;
    const rolled = roll(tf, image, dy, dx);
    const grad = tiledGradient(tf, model, rolled, o.tileSize, o.minSide);
    const norm = tf.add(tf.mean(tf.abs(grad)), 1e-8);
    const stepped = tf.add(rolled, tf.mul(tf.div(grad, norm), o.stepSize));
    const back = roll(tf, stepped as Tensor3D, -dy, -dx);
    if (back.shape[0] !== h || back.shape[1] !== w) throw new Error('dream step changed the image size');
    return tf.clipByValue(back, 0, 1);
  });
}

function tiledGradient(tf: Tf, model: ActivationModel, image: Tensor3D, tileSize: number, minSide: number): Tensor3D {
  const [h, w] = image.shape;
  const objective = (x: tfjs.Tensor) => tf.mean(model.apply(tf.expandDims(x, 0) as Tensor4D)) as tfjs.Scalar;
  if (h <= tileSize && w <= tileSize) return tf.grad(objective)(image) as Tensor3D;
  // Tile edges: equal tiles no smaller than the model's minimum input.
  const edges = (n: number) => {
    const count = Math.max(1, Math.round(n / tileSize));
    const size = Math.max(minSide, Math.ceil(n / count));
    const out: [number, number][] = [];
    for (let start = 0; start < n; start += size) out.push([start, Math.min(n, start + size)]);
    // Merge a last sliver too small for the model into its neighbour.
    const last = out[out.length - 1]!;
    if (out.length > 1 && last[1] - last[0] < minSide) {
      out.pop();
      out[out.length - 1] = [out[out.length - 1]![0], n];
    }
    return out;
  };
  const rows = edges(h).map(([y0, y1]) =>
    tf.concat(
      edges(w).map(([x0, x1]) => tf.grad(objective)(tf.slice(image, [y0, x0, 0], [y1 - y0, x1 - x0, 3]))),
      1,
    ),
  );
  return tf.concat(rows, 0) as Tensor3D;
}

/** Cyclic shift of an image by (dy, dx) pixels. */
function roll(tf: Tf, x: Tensor3D, dy: number, dx: number): Tensor3D {
  const [h, w] = x.shape;
  const sy = ((dy % h) + h) % h;
  const sx = ((dx % w) + w) % w;
  let out = x;
  if (sy !== 0) out = tf.concat([tf.slice(out, [h - sy, 0, 0], [sy, w, 3]), tf.slice(out, [0, 0, 0], [h - sy, w, 3])], 0);
  if (sx !== 0) out = tf.concat([tf.slice(out, [0, w - sx, 0], [h, sx, 3]), tf.slice(out, [0, 0, 0], [h, w - sx, 3])], 1);
  return out;
}

/** Options of {@link deepDream}. */
export interface DeepDreamOptions {
  readonly octaves: number;
  /** Steps per octave. */
  readonly steps: number;
  /** Scales the step size (1 = 0.01 per step in [0, 1] units). */
  readonly strength: number;
  /** Size ratio between octaves. */
  readonly octaveScale?: number;
  readonly jitter?: number;
  readonly tileSize?: number;
  readonly minSide?: number;
  readonly seed?: number;
  readonly signal?: AbortSignal;
  /** After every step, with the current image (a fresh tensor the callback must not keep). */
  onStep?(info: { octave: number; step: number; done: number; total: number; objective: number; image: Tensor3D }): Promise<void> | void;
}

/** Runs the whole dream on an image [H, W, 3] in [0, 1]; returns the dreamed image at the input size. */
export async function deepDream(tf: Tf, model: ActivationModel, image: Tensor3D, o: DeepDreamOptions): Promise<Tensor3D> {
  const scale = o.octaveScale ?? 1.4;
  const minSide = o.minSide ?? 75;
  const [h, w] = image.shape;
  // Octave sizes, smallest first, never below the model's minimum input.
  const sizes: [number, number][] = [];
  for (let i = o.octaves - 1; i >= 0; i--) {
    const f = scale ** i;
    const oh = Math.round(h / f);
    const ow = Math.round(w / f);
    if (Math.min(oh, ow) >= minSide || i === 0) sizes.push([oh, ow]);
  }
  const rng = mulberry32(o.seed ?? 1);
  const total = sizes.length * o.steps;
  let done = 0;
  let current = tf.image.resizeBilinear(image, sizes[0]!, true) as Tensor3D;
  for (let k = 0; k < sizes.length; k++) {
    if (k > 0) {
      const next = tf.tidy(() => {
        // Carry the dream detail up an octave: the original at the new size plus what the dream added.
        const base = tf.image.resizeBilinear(image, sizes[k]!, true);
        const prevBase = tf.image.resizeBilinear(tf.image.resizeBilinear(image, sizes[k - 1]!, true), sizes[k]!, true);
        const detail = tf.sub(tf.image.resizeBilinear(current, sizes[k]!, true), prevBase);
        return tf.clipByValue(tf.add(base, detail), 0, 1) as Tensor3D;
      });
      current.dispose();
      current = next;
    }
    for (let s = 0; s < o.steps; s++) {
      if (o.signal?.aborted) {
        current.dispose();
        throw o.signal.reason instanceof Error ? o.signal.reason : new Error('aborted');
      }
      const next = dreamStep(tf, model, current, {
        stepSize: 0.01 * o.strength,
        jitter: o.jitter ?? 16,
        tileSize: o.tileSize ?? 320,
        minSide,
        rng,
      });
      current.dispose();
      current = next;
      done++;
      if (o.onStep) {
        await o.onStep({ octave: k + 1, step: s + 1, done, total, objective: Number.NaN, image: current });
      }
    }
  }
  const out = tf.tidy(() => tf.image.resizeBilinear(current, [h, w], true) as Tensor3D);
  current.dispose();
  return out;
}
