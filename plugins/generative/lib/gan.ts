/**
 * A DCGAN-shaped generator and critic trained with WGAN-GP (Gulrajani et al. 2017), written with raw tfjs
 * ops so every weight is a plain named variable: easy to checkpoint, serialise and differentiate twice.
 *
 * Design choices and why:
 * - the generator normalises with PixelNorm (per sample, no batch statistics), so a sample depends only on
 *   its own latent vector: `generate --seed S` gives the same image whatever `--count` is;
 * - the critic has no normalisation at all: batch norm would make the gradient penalty (a per-sample
 *   gradient norm) ill-defined, as the WGAN-GP paper notes;
 * - convolutions are plain `conv2d`/`conv2dTranspose` (not tfjs-layers' fused conv, whose gradient computes
 *   the filter gradient eagerly), and leakyRelu's second-order gradient needs engine/ml/patches.ts.
 */
import type * as tfjs from '@tensorflow/tfjs';
import { seededRandom as mulberry32 } from '../../../engine/random.ts';

type Tf = typeof tfjs;
type Tensor = tfjs.Tensor;
type Tensor2D = tfjs.Tensor2D;
type Tensor4D = tfjs.Tensor4D;
type Variable = tfjs.Variable;
type Scalar = tfjs.Scalar;

/** Shape of a generator/critic pair. */
export interface GanArchitecture {
  /** Output side in pixels: 32 or 64 (one up-sampling block per doubling from 4). */
  readonly size: 32 | 64;
  /** Latent vector length. */
  readonly zDim: number;
  /** Generator width: channels of its last hidden block (doubling towards the input). */
  readonly ngf: number;
  /** Critic width: channels of its first block (doubling towards the output). */
  readonly ndf: number;
}

/** Hyper-parameters of WGAN-GP training. Defaults follow the paper's Algorithm 1. */
export interface WganHyper {
  /** Adam learning rate (1e-4). */
  readonly lr: number;
  /** Adam β1 (0) and β2 (0.9). */
  readonly beta1: number;
  readonly beta2: number;
  /** Gradient-penalty weight λ (10). */
  readonly lambda: number;
  /** Critic iterations per generator iteration (5). */
  readonly nCritic: number;
}

/** The WGAN-GP paper's defaults. */
export const WGAN_GP_DEFAULTS: WganHyper = { lr: 1e-4, beta1: 0, beta2: 0.9, lambda: 10, nCritic: 5 };

/** A named set of weights. */
export type Weights = Map<string, Variable>;

function blocks(arch: GanArchitecture): number {
  return Math.log2(arch.size / 4);
}

/** Channels at each generator resolution from 4×4 upwards (the last entry is the final hidden block). */
function generatorChannels(arch: GanArchitecture): number[] {
  const n = blocks(arch);
  return Array.from({ length: n }, (_, i) => arch.ngf * 2 ** (n - 1 - i));
}

/** Channels of the critic's conv blocks from full resolution down to 4×4. */
function criticChannels(arch: GanArchitecture): number[] {
  const n = blocks(arch);
  return Array.from({ length: n }, (_, i) => arch.ndf * 2 ** i);
}

/** Initial weights: N(0, 0.02) as in DCGAN, biases zero; deterministic for a seed. */
export function initGenerator(tf: Tf, arch: GanArchitecture, seed: number): Weights {
  // tidy frees the initial-value tensors; variables survive it.
  let weights: Weights = new Map();
  tf.tidy(() => {
    weights = initGeneratorUntidy(tf, arch, seed);
  });
  return weights;
}

function initGeneratorUntidy(tf: Tf, arch: GanArchitecture, seed: number): Weights {
  const ch = generatorChannels(arch);
  const w: Weights = new Map();
  const c0 = ch[0]!;
  let s = seed * 101;
  const normal = (shape: number[]) => tf.randomNormal(shape, 0, 0.02, 'float32', s++);
  w.set('g.fc.w', tf.variable(normal([arch.zDim, 16 * c0]), true, 'g.fc.w'));
  w.set('g.fc.b', tf.variable(tf.zeros([16 * c0]), true, 'g.fc.b'));
  for (let i = 0; i < ch.length; i++) {
    const cin = ch[i]!;
    const cout = i + 1 < ch.length ? ch[i + 1]! : 3;
    // conv2dTranspose filters are [h, w, outChannels, inChannels].
    w.set(`g.up${i}.w`, tf.variable(normal([4, 4, cout, cin]), true, `g.up${i}.w`));
    w.set(`g.up${i}.b`, tf.variable(tf.zeros([cout]), true, `g.up${i}.b`));
  }
  return w;
}

/** Initial critic weights, deterministic for a seed. */
export function initCritic(tf: Tf, arch: GanArchitecture, seed: number): Weights {
  let weights: Weights = new Map();
  tf.tidy(() => {
    weights = initCriticUntidy(tf, arch, seed);
  });
  return weights;
}

function initCriticUntidy(tf: Tf, arch: GanArchitecture, seed: number): Weights {
  const ch = criticChannels(arch);
  const w: Weights = new Map();
  let s = seed * 101 + 50;
  const normal = (shape: number[]) => tf.randomNormal(shape, 0, 0.02, 'float32', s++);
  let cin = 3;
  for (let i = 0; i < ch.length; i++) {
    const cout = ch[i]!;
    w.set(`d.conv${i}.w`, tf.variable(normal([4, 4, cin, cout]), true, `d.conv${i}.w`));
    w.set(`d.conv${i}.b`, tf.variable(tf.zeros([cout]), true, `d.conv${i}.b`));
    cin = cout;
  }
  w.set('d.fc.w', tf.variable(normal([16 * cin, 1]), true, 'd.fc.w'));
  w.set('d.fc.b', tf.variable(tf.zeros([1]), true, 'd.fc.b'));
  return w;
}

function get(w: Weights, name: string): Variable {
  const v = w.get(name);
  if (v === undefined) throw new Error(`GAN weights lack "${name}"`);
  return v;
}

/** Per-pixel feature normalisation (ProGAN): x / sqrt(mean_c x² + ε). */
function pixelNorm(tf: Tf, x: Tensor4D): Tensor4D {
  return tf.div(x, tf.sqrt(tf.add(tf.mean(tf.square(x), 3, true), 1e-8)));
}

/**
 * G(z): z [N, zDim] → images [N, size, size, 3] in [-1, 1]. Each sample depends on its own z only.
 */
export function generatorForward(tf: Tf, w: Weights, arch: GanArchitecture, z: Tensor2D): Tensor4D {
  return tf.tidy(() => {
    const ch = generatorChannels(arch);
    const n = z.shape[0];
    let x: Tensor4D = tf.reshape(tf.add(tf.matMul(z, get(w, 'g.fc.w')), get(w, 'g.fc.b')), [n, 4, 4, ch[0]!]);
    x = pixelNorm(tf, tf.relu(x));
    let side = 4;
    for (let i = 0; i < ch.length; i++) {
      side *= 2;
      const cout = i + 1 < ch.length ? ch[i + 1]! : 3;
      const filter = get(w, `g.up${i}.w`) as unknown as Tensor4D;
      x = tf.add<Tensor4D>(tf.conv2dTranspose(x, filter, [n, side, side, cout], 2, 'same'), get(w, `g.up${i}.b`));
      x = i + 1 < ch.length ? pixelNorm(tf, tf.relu(x)) : tf.tanh(x);
    }
    return x;
  });
}

/** D(x): images [N, size, size, 3] in [-1, 1] → scores [N, 1] (unbounded; higher = more real). */
export function criticForward(tf: Tf, w: Weights, arch: GanArchitecture, x: Tensor4D): Tensor2D {
  return tf.tidy(() => {
    const ch = criticChannels(arch);
    let h: Tensor4D = x;
    for (let i = 0; i < ch.length; i++) {
      const filter = get(w, `d.conv${i}.w`) as unknown as Tensor4D;
      h = tf.leakyRelu(tf.add<Tensor4D>(tf.conv2d(h, filter, 2, 'same'), get(w, `d.conv${i}.b`)), 0.2);
    }
    const flat = tf.reshape(h, [x.shape[0], -1]) as Tensor2D;
    return tf.add(tf.matMul(flat, get(w, 'd.fc.w')), get(w, 'd.fc.b'));
  });
}

/**
 * The gradient penalty E[(‖∇ₓ̂ D(x̂)‖₂ − 1)²] at the given points, differentiable with respect to the critic's
 * weights (true double backprop: the inner gradient is itself recorded on the tape).
 */
export function gradientPenalty(tf: Tf, critic: (x: Tensor4D) => Tensor2D, xHat: Tensor4D): Scalar {
  return tf.tidy(() => {
    const grad = tf.grad((x: Tensor) => tf.sum(critic(x as Tensor4D)))(xHat);
    // ε inside the root keeps the norm's own gradient finite where a per-sample gradient vanishes.
    const norms = tf.sqrt(tf.add(tf.sum(tf.square(grad), [1, 2, 3]), 1e-12));
    return tf.mean(tf.square(tf.sub(norms, 1))) as Scalar;
  });
}

/** Losses of one critic step. */
export interface CriticStepResult {
  /** D(real) − D(fake): the critic's estimate of the Wasserstein distance. */
  readonly wasserstein: number;
  readonly gradientPenalty: number;
  readonly loss: number;
}

/** Trainer state: weights and their two Adam optimisers. */
export interface GanTrainer {
  readonly arch: GanArchitecture;
  readonly hyper: WganHyper;
  readonly g: Weights;
  readonly d: Weights;
  readonly gOpt: tfjs.AdamOptimizer;
  readonly dOpt: tfjs.AdamOptimizer;
  dispose(): void;
}

/** Fresh weights and optimisers. */
export function createTrainer(tf: Tf, arch: GanArchitecture, hyper: WganHyper, seed: number): GanTrainer {
  const g = initGenerator(tf, arch, seed);
  const d = initCritic(tf, arch, seed);
  const gOpt = tf.train.adam(hyper.lr, hyper.beta1, hyper.beta2);
  const dOpt = tf.train.adam(hyper.lr, hyper.beta1, hyper.beta2);
  return {
    arch,
    hyper,
    g,
    d,
    gOpt,
    dOpt,
    dispose() {
      for (const v of [...g.values(), ...d.values()]) v.dispose();
      gOpt.dispose();
      dOpt.dispose();
    },
  };
}

/**
 * One critic update: L = D(G(z)) − D(x) + λ·GP(x̂), x̂ = εx + (1 − ε)G(z), ε ~ U[0, 1] per sample.
 * `z` and `eps` are given so callers (and tests) control the randomness.
 */
export function criticStep(tf: Tf, t: GanTrainer, real: Tensor4D, z: Tensor2D, eps: Tensor): CriticStepResult {
  const fake = generatorForward(tf, t.g, t.arch, z); // no gradient to G in a critic step
  const parts = { w: 0, gp: 0 };
  const critic = (x: Tensor4D) => criticForward(tf, t.d, t.arch, x);
  const loss = t.dOpt.minimize(
    () => {
      const dReal = tf.mean(critic(real));
      const dFake = tf.mean(critic(fake));
      const xHat = tf.add(tf.mul(eps, real), tf.mul(tf.sub(1, eps), fake)) as Tensor4D;
      const gp = gradientPenalty(tf, critic, xHat);
      parts.w = tf.sub(dReal, dFake).dataSync()[0]!;
      parts.gp = gp.dataSync()[0]!;
      return tf.add(tf.sub(dFake, dReal), tf.mul(gp, t.hyper.lambda)) as Scalar;
    },
    true,
    [...t.d.values()],
  );
  fake.dispose();
  const value = loss?.dataSync()[0] ?? Number.NaN;
  loss?.dispose();
  return { wasserstein: parts.w, gradientPenalty: parts.gp, loss: value };
}

/** One generator update: L = −D(G(z)). Returns the loss. */
export function generatorStep(tf: Tf, t: GanTrainer, z: Tensor2D): number {
  const loss = t.gOpt.minimize(
    () => tf.neg(tf.mean(criticForward(tf, t.d, t.arch, generatorForward(tf, t.g, t.arch, z)))) as Scalar,
    true,
    [...t.g.values()],
  );
  const value = loss?.dataSync()[0] ?? Number.NaN;
  loss?.dispose();
  return value;
}

/**
 * Latent vectors from a seed: sample i of seed s is always the same vector (a counter-based PRNG per
 * sample), so asking for more samples never changes the first ones, on any backend.
 */
export function latents(zDim: number, seed: number, count: number, offset = 0): Float32Array {
  const out = new Float32Array(count * zDim);
  for (let i = 0; i < count; i++) {
    const rng = mulberry32(hash2(seed, offset + i));
    for (let j = 0; j < zDim; j += 2) {
      // Box–Muller: two normals from two uniforms (1 − u keeps log away from 0).
      const u1 = 1 - rng();
      const u2 = rng();
      const r = Math.sqrt(-2 * Math.log(u1));
      out[i * zDim + j] = r * Math.cos(2 * Math.PI * u2);
      if (j + 1 < zDim) out[i * zDim + j + 1] = r * Math.sin(2 * Math.PI * u2);
    }
  }
  return out;
}

/** The project's seeded PRNG (engine/random.ts), under the name the GAN code uses. */
export { mulberry32 };

function hash2(a: number, b: number): number {
  let h = Math.imul((a | 0) ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ (b | 0), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
