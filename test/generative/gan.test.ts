/**
 * WGAN-GP: the gradient penalty against finite differences, its double-backprop gradient, training steps
 * without leaks, checkpoint/resume equal to an unbroken run, and the generator file format.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type * as tfjs from '@tensorflow/tfjs';
import { getTf } from '../../engine/ml/runtime.ts';
import {
  createTrainer,
  criticForward,
  criticStep,
  generatorForward,
  generatorStep,
  gradientPenalty,
  initCritic,
  latents,
  WGAN_GP_DEFAULTS,
  type GanArchitecture,
} from '../../plugins/generative/lib/gan.ts';
import { loadGenerator, saveGenerator } from '../../plugins/generative/lib/gan-io.ts';
import { trainGan, type GanImageSet } from '../../plugins/generative/lib/gan-train.ts';
import { EngineError } from '../../engine/errors.ts';

type Tf = typeof tfjs;
let tf: Tf;
const tiny: GanArchitecture = { size: 32, zDim: 8, ngf: 4, ndf: 2 };

/** A few synthetic "sneakers": a dark sole band and a coloured upper on white, in [-1, 1]. */
function syntheticSet(count: number): GanImageSet {
  const s = 32;
  const pixels = new Float32Array(count * s * s * 3).fill(1);
  for (let n = 0; n < count; n++) {
    for (let y = 12; y < 24; y++) {
      for (let x = 4 + (n % 3); x < 28; x++) {
        const i = ((n * s + y) * s + x) * 3;
        const sole = y >= 21;
        pixels[i] = sole ? -0.8 : 0.6 - 0.2 * (n % 4);
        pixels[i + 1] = sole ? -0.8 : -0.5;
        pixels[i + 2] = sole ? -0.8 : 0.1 * n;
      }
    }
  }
  return { size: s, count, pixels };
}

beforeAll(async () => {
  tf = await getTf({ backend: 'wasm' });
});

describe('WGAN-GP gradient penalty', () => {
  it('GIVEN a tiny critic THEN the GP equals the one computed from a finite-difference input gradient', () => {
    const d = initCritic(tf, tiny, 3);
    // Scale the weights up so the critic is far from linear-with-tiny-gradients.
    for (const v of d.values()) tf.tidy(() => v.assign(tf.mul(v, 30)));
    const critic = (x: tfjs.Tensor4D) => criticForward(tf, d, tiny, x);
    const x = tf.randomUniform([2, 32, 32, 3], -1, 1, 'float32', 4) as tfjs.Tensor4D;
    const gp = gradientPenalty(tf, critic, x).dataSync()[0]!;

    // Finite differences of D for every input entry at once: the critic is per-sample (no batch statistics),
    // so each perturbed image is simply one more row of a batch.
    const eps = 1e-2;
    const per = 32 * 32 * 3;
    const fdNorms: number[] = [];
    for (let n = 0; n < 2; n++) {
      const grad = tf.tidy(() => {
        const base = tf.reshape(tf.slice(x, [n, 0, 0, 0], [1, 32, 32, 3]), [1, per]);
        const basis = tf.mul(tf.eye(per), eps);
        const plus = tf.reshape(tf.add(base, basis), [per, 32, 32, 3]) as tfjs.Tensor4D;
        const minus = tf.reshape(tf.sub(base, basis), [per, 32, 32, 3]) as tfjs.Tensor4D;
        return Array.from(tf.div(tf.sub(critic(plus), critic(minus)), 2 * eps).dataSync());
      });
      fdNorms.push(Math.sqrt(grad.reduce((a, g) => a + g * g, 0)));
    }
    const fdGp = fdNorms.reduce((a, nrm) => a + (nrm - 1) ** 2, 0) / fdNorms.length;
    expect(fdNorms.every((nrm) => nrm > 0.05)).toBe(true); // the check is not vacuous
    expect(Math.abs(gp - fdGp) / Math.max(1e-3, Math.abs(fdGp))).toBeLessThan(2e-2);
    tf.dispose([x, ...d.values()]);
  });

  it('GIVEN the critic weights THEN the GP gradient (double backprop) matches finite differences', () => {
    const d = initCritic(tf, tiny, 5);
    for (const v of d.values()) tf.tidy(() => v.assign(tf.mul(v, 30)));
    const x = tf.randomUniform([2, 32, 32, 3], -1, 1, 'float32', 6) as tfjs.Tensor4D;
    const w = d.get('d.fc.w')!;
    const gpOf = () => gradientPenalty(tf, (xx) => criticForward(tf, d, tiny, xx), x);
    const grads = tf.tidy(() => tf.variableGrads(() => gpOf(), [w]).grads[w.name]!.dataSync());
    const base = w.dataSync().slice();
    const eps = 1e-3;
    // A handful of entries with the largest gradients (the most sensitive check).
    const order = Array.from(grads.keys()).sort((a, b) => Math.abs(grads[b]!) - Math.abs(grads[a]!)).slice(0, 6);
    for (const i of order) {
      const at = (delta: number) => {
        const p = base.slice();
        p[i] = base[i]! + delta;
        w.assign(tf.tensor(p, w.shape));
        return tf.tidy(() => gpOf().dataSync()[0]!);
      };
      const fd = (at(eps) - at(-eps)) / (2 * eps);
      expect(Math.abs(fd - grads[i]!) / Math.max(1e-3, Math.abs(grads[i]!))).toBeLessThan(3e-2);
    }
    w.assign(tf.tensor(base, w.shape));
    tf.dispose([x, ...d.values()]);
  });
});

describe('WGAN-GP training', () => {
  it('GIVEN critic and generator steps THEN losses are finite and no tensor leaks after the optimiser state exists', () => {
    const t = createTrainer(tf, tiny, WGAN_GP_DEFAULTS, 1);
    const data = syntheticSet(4);
    const real = tf.tensor4d(data.pixels, [4, 32, 32, 3]);
    const z = tf.tensor2d(latents(tiny.zDim, 1, 4), [4, tiny.zDim]);
    const eps = tf.randomUniform([4, 1, 1, 1], 0, 1, 'float32', 1);
    criticStep(tf, t, real, z, eps); // creates Adam's slots
    generatorStep(tf, t, z);
    const before = tf.memory().numTensors;
    const r = criticStep(tf, t, real, z, eps);
    const g = generatorStep(tf, t, z);
    expect(tf.memory().numTensors).toBe(before);
    expect(Number.isFinite(r.loss) && Number.isFinite(r.gradientPenalty) && Number.isFinite(g)).toBe(true);
    expect(r.gradientPenalty).toBeGreaterThanOrEqual(0);
    tf.dispose([real, z, eps]);
    t.dispose();
  });

  it('GIVEN a run interrupted by a checkpoint THEN resuming gives exactly the unbroken run, and nothing leaks', async () => {
    const data = syntheticSet(6);
    const common = { arch: tiny, hyper: { ...WGAN_GP_DEFAULTS, nCritic: 2 }, data, seed: 9, batchSize: 4, sampleEvery: 0, checkpointEvery: 0 };
    const before = tf.memory().numTensors;
    const unbroken = await trainGan(tf, { ...common, iterations: 3 });
    const first = await trainGan(tf, { ...common, iterations: 2 });
    const resumed = await trainGan(tf, { ...common, iterations: 3, resume: first.checkpoint });
    expect(tf.memory().numTensors).toBe(before);
    expect(resumed.iterations).toBe(3);
    expect(resumed.history.map((h) => h.iteration)).toEqual([1, 2, 3]);
    // Same weights bit for bit (the files differ only in their training-time metadata).
    const a = loadGenerator(tf, unbroken.generator);
    const b = loadGenerator(tf, resumed.generator);
    for (const [name, v] of a.weights) expect(Array.from(b.weights.get(name)!.dataSync())).toEqual(Array.from(v.dataSync()));
    const c = loadGenerator(tf, first.generator);
    expect(Array.from(c.weights.get('g.fc.w')!.dataSync())).not.toEqual(Array.from(a.weights.get('g.fc.w')!.dataSync()));
    [a, b, c].forEach((g) => g.dispose());
    expect(unbroken.samplesPng.subarray(1, 4).toString()).toBe('PNG');
    expect(unbroken.curvesPng.subarray(1, 4).toString()).toBe('PNG');
  });

  it('GIVEN an aborted signal THEN training stops at once and reports why', async () => {
    const controller = new AbortController();
    controller.abort();
    const r = await trainGan(tf, {
      arch: tiny,
      hyper: WGAN_GP_DEFAULTS,
      data: syntheticSet(4),
      seed: 1,
      batchSize: 2,
      iterations: 10,
      sampleEvery: 0,
      checkpointEvery: 0,
      signal: controller.signal,
    });
    expect(r.stoppedBy).toBe('signal');
    expect(r.iterations).toBe(0);
  });
});

describe('generator files', () => {
  it('GIVEN a saved generator THEN loading it reproduces the same samples', () => {
    const t = createTrainer(tf, tiny, WGAN_GP_DEFAULTS, 2);
    const file = saveGenerator(tiny, t.g, { iterations: 12, seed: 2 });
    const loaded = loadGenerator(tf, file);
    const z = tf.tensor2d(latents(tiny.zDim, 3, 2), [2, tiny.zDim]);
    const a = tf.tidy(() => generatorForward(tf, t.g, tiny, z).dataSync());
    const b = tf.tidy(() => generatorForward(tf, loaded.weights, loaded.arch, z).dataSync());
    expect(Array.from(b)).toEqual(Array.from(a));
    expect(loaded.meta.iterations).toBe(12);
    expect(loaded.arch).toEqual(tiny);
    loaded.dispose();
    z.dispose();
    t.dispose();
  });

  it('GIVEN corrupt or foreign bytes THEN loading fails with MODEL_MISSING, not a crash', () => {
    for (const bytes of [Buffer.from('not a model'), Buffer.from('SGAN\u0004\u0000\u0000\u0000{{{{')]) {
      expect(() => loadGenerator(tf, bytes)).toThrow(EngineError);
      try {
        loadGenerator(tf, bytes);
      } catch (e) {
        expect((e as EngineError).code).toBe('MODEL_MISSING');
      }
    }
  });

  it('GIVEN a seed THEN latents are reproducible and sample i does not depend on how many are drawn', () => {
    const a = latents(16, 42, 3);
    const b = latents(16, 42, 5);
    expect(Array.from(b.subarray(0, 48))).toEqual(Array.from(a));
    expect(Array.from(latents(16, 43, 3))).not.toEqual(Array.from(a));
    const mean = b.reduce((s, v) => s + v, 0) / b.length;
    expect(Math.abs(mean)).toBeLessThan(0.5);
  });
});
