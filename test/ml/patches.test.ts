/**
 * The wasm kernels and gradients registered by engine/ml/patches.ts, each checked against a finite-difference
 * estimate of the gradient it computes (on the wasm backend, where the kernels are missing natively) and
 * against the cpu backend's native kernel where tfjs has one.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { getTf } from '../../engine/ml/runtime.ts';
import { applyPatches, PATCHED_KERNELS } from '../../engine/ml/patches.ts';

type Fn = (p: tf.Tensor) => tf.Scalar;

/** Central differences over every entry of `at` (tiny tensors only). */
function finiteDifferences(f: Fn, at: tf.Tensor, eps: number): Float32Array {
  const base = at.dataSync().slice();
  const out = new Float32Array(base.length);
  for (let i = 0; i < base.length; i++) {
    const plus = base.slice();
    const minus = base.slice();
    plus[i] = base[i]! + eps;
    minus[i] = base[i]! - eps;
    const fp = tf.tidy(() => f(tf.tensor(plus, at.shape)).dataSync()[0]!);
    const fm = tf.tidy(() => f(tf.tensor(minus, at.shape)).dataSync()[0]!);
    out[i] = (fp - fm) / (2 * eps);
  }
  return out;
}

/** Max |a − b| / max(1, max|b|): a scale-aware error that a wrong kernel cannot pass. */
function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let diff = 0;
  let scale = 1;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / scale;
}

function analytic(f: Fn, at: tf.Tensor): Float32Array {
  return tf.tidy(() => tf.grad(f)(at).dataSync() as Float32Array);
}

/** The same computation on the cpu backend (which has every kernel natively), as a second reference. */
async function onCpu(compute: () => tf.Tensor): Promise<Float32Array> {
  await tf.setBackend('cpu');
  try {
    return tf.tidy(() => compute().dataSync() as Float32Array);
  } finally {
    await tf.setBackend('wasm');
  }
}

const rand = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed);
const convCases = [
  { stride: 1, pad: 'same', k: 3 },
  { stride: 2, pad: 'same', k: 3 },
  { stride: 2, pad: 'valid', k: 3 },
  { stride: 2, pad: 'same', k: 4 },
  { stride: 3, pad: 'valid', k: 2 },
] as const;

describe('engine/ml/patches on wasm', () => {
  beforeAll(async () => {
    await getTf({ backend: 'wasm' });
    expect(tf.getBackend()).toBe('wasm');
  });

  it('GIVEN the wasm backend THEN every patched kernel is registered and a second apply is a no-op', () => {
    for (const name of PATCHED_KERNELS) expect(tf.getKernel(name, 'wasm')).toBeDefined();
    expect(tf.getKernel('Conv2DBackpropInput', 'wasm')).toBeDefined();
    expect(tf.getKernel('BatchMatMul', 'wasm')).toBeDefined();
    const again = applyPatches(tf);
    expect(again.kernels).toEqual([]);
    expect(again.gradients).toEqual([]);
    expect(tf.getGradient('Greater')).toBeDefined();
  });

  for (const c of convCases) {
    it(`GIVEN conv2d stride ${c.stride} pad ${c.pad} k ${c.k} THEN the filter gradient (Conv2DBackpropFilter) matches finite differences`, async () => {
      const x = rand([2, 7, 6, 2], 1) as tf.Tensor4D;
      const w0 = rand([c.k, c.k, 2, 3], 2);
      const outShape = tf.tidy(() => tf.conv2d(x, w0 as tf.Tensor4D, c.stride, c.pad).shape);
      const r = rand(outShape, 3);
      const f: Fn = (w) => tf.sum(tf.mul(tf.conv2d(x, w as tf.Tensor4D, c.stride, c.pad), r));
      const got = analytic(f, w0);
      expect(relError(got, finiteDifferences(f, w0, 0.25))).toBeLessThan(2e-3);
      expect(relError(got, await onCpu(() => tf.grad(f)(w0)))).toBeLessThan(1e-5);
      tf.dispose([x, w0, r]);
    });

    it(`GIVEN depthwiseConv2d stride ${c.stride} pad ${c.pad} k ${c.k} THEN input and filter gradients match finite differences`, async () => {
      const x0 = rand([2, 7, 6, 2], 4);
      const w0 = rand([c.k, c.k, 2, 2], 5);
      const outShape = tf.tidy(() => tf.depthwiseConv2d(x0 as tf.Tensor4D, w0 as tf.Tensor4D, c.stride, c.pad).shape);
      const r = rand(outShape, 6);
      const byFilter: Fn = (w) => tf.sum(tf.mul(tf.depthwiseConv2d(x0 as tf.Tensor4D, w as tf.Tensor4D, c.stride, c.pad), r));
      const byInput: Fn = (x) => tf.sum(tf.mul(tf.depthwiseConv2d(x as tf.Tensor4D, w0 as tf.Tensor4D, c.stride, c.pad), r));
      const gotW = analytic(byFilter, w0);
      const gotX = analytic(byInput, x0);
      expect(relError(gotW, finiteDifferences(byFilter, w0, 0.25))).toBeLessThan(2e-3);
      expect(relError(gotX, finiteDifferences(byInput, x0, 0.25))).toBeLessThan(2e-3);
      expect(relError(gotW, await onCpu(() => tf.grad(byFilter)(w0)))).toBeLessThan(1e-5);
      expect(relError(gotX, await onCpu(() => tf.grad(byInput)(x0)))).toBeLessThan(1e-5);
      tf.dispose([x0, w0, r]);
    });
  }

  for (const c of convCases) {
    it(`GIVEN conv2d stride ${c.stride} pad ${c.pad} k ${c.k} with 8 input channels THEN the replaced Conv2DBackpropInput matches finite differences and cpu`, async () => {
      const x0 = rand([2, 7, 6, 8], 20);
      const w = rand([c.k, c.k, 8, 3], 21) as tf.Tensor4D;
      const outShape = tf.tidy(() => tf.conv2d(x0 as tf.Tensor4D, w, c.stride, c.pad).shape);
      const r = rand(outShape, 22);
      const f: Fn = (x) => tf.sum(tf.mul(tf.conv2d(x as tf.Tensor4D, w, c.stride, c.pad), r));
      const got = analytic(f, x0);
      expect(relError(got, finiteDifferences(f, x0, 0.25))).toBeLessThan(2e-3);
      expect(relError(got, await onCpu(() => tf.grad(f)(x0)))).toBeLessThan(1e-5);
      tf.dispose([x0, w, r]);
    });
  }

  it('GIVEN transposed matrix products (2-D and batched) THEN the replaced BatchMatMul matches cpu, and a dense layer\'s gradients match finite differences', async () => {
    const a = rand([5, 7], 30);
    const b = rand([5, 3], 31);
    const c = rand([4, 7], 32);
    const d = rand([3, 5], 37);
    const ab = rand([2, 5, 7], 33);
    const bb = rand([2, 4, 7], 34);
    const e = rand([2, 5, 3], 38);
    const cases: (() => tf.Tensor)[] = [
      () => tf.matMul(a, b, true, false),
      () => tf.matMul(a, c, false, true),
      () => tf.matMul(b, a, true, false),
      () => tf.matMul(a, d, true, true),
      () => tf.matMul(ab, bb, false, true),
      () => tf.matMul(ab, e, true, false),
      () => tf.matMul(a, tf.transpose(c)), // the untransposed path, for contrast
    ];
    for (const compute of cases) {
      const got = tf.tidy(() => compute().dataSync() as Float32Array);
      expect(relError(got, await onCpu(compute))).toBeLessThan(1e-5);
    }
    // A dense layer's weight and input gradients are the two transposed products.
    const w0 = rand([7, 3], 35);
    const r = rand([5, 3], 36);
    const fw: Fn = (w) => tf.sum(tf.mul(tf.relu(tf.matMul(a, w as tf.Tensor2D)), r));
    const fx: Fn = (x) => tf.sum(tf.mul(tf.relu(tf.matMul(x as tf.Tensor2D, w0 as tf.Tensor2D)), r));
    expect(relError(analytic(fw, w0), finiteDifferences(fw, w0, 1e-2))).toBeLessThan(2e-3);
    expect(relError(analytic(fx, a), finiteDifferences(fx, a, 1e-2))).toBeLessThan(2e-3);
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      tf.grad(fw)(w0);
      tf.grad(fx)(a);
    });
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([a, b, c, d, ab, bb, e, w0, r]);
  });

  it('GIVEN an explicit-padding conv THEN the filter gradient matches finite differences', () => {
    const x = rand([1, 5, 5, 1], 7) as tf.Tensor4D;
    const w0 = rand([3, 3, 1, 2], 8);
    const pad: tf.backend_util.ExplicitPadding = [[0, 0], [2, 0], [1, 1], [0, 0]];
    const outShape = tf.tidy(() => tf.conv2d(x, w0 as tf.Tensor4D, 2, pad).shape);
    const r = rand(outShape, 9);
    const f: Fn = (w) => tf.sum(tf.mul(tf.conv2d(x, w as tf.Tensor4D, 2, pad), r));
    expect(relError(analytic(f, w0), finiteDifferences(f, w0, 0.25))).toBeLessThan(2e-3);
    tf.dispose([x, w0, r]);
  });

  it('GIVEN gather on axes 0 and 1 THEN its gradient (UnsortedSegmentSum) matches finite differences', () => {
    const x0 = rand([5, 3], 10);
    const idx = tf.tensor1d([0, 2, 2, 4, 1, 0], 'int32');
    const r0 = rand([6, 3], 11);
    const r1 = rand([5, 6], 12);
    const axis0: Fn = (x) => tf.sum(tf.mul(tf.gather(x, idx, 0), r0));
    const axis1: Fn = (x) => tf.sum(tf.mul(tf.gather(x, tf.tensor1d([0, 2, 2, 1, 1, 1], 'int32'), 1), r1));
    expect(relError(analytic(axis0, x0), finiteDifferences(axis0, x0, 0.25))).toBeLessThan(2e-3);
    expect(relError(analytic(axis1, x0), finiteDifferences(axis1, x0, 0.25))).toBeLessThan(2e-3);
    const direct = tf.tidy(() => tf.unsortedSegmentSum(tf.tensor2d([[1, 2], [3, 4], [5, 6]]), tf.tensor1d([1, -1, 1], 'int32'), 3).arraySync());
    expect(direct).toEqual([[0, 0], [6, 8], [0, 0]]); // the id outside [0, 3) is dropped, as in TensorFlow
    tf.dispose([x0, idx, r0, r1]);
  });

  it('GIVEN a leakyRelu network THEN the gradient of its input-gradient norm (double backprop) matches finite differences', () => {
    const x = rand([4, 3], 13);
    const w1 = rand([3, 5], 14);
    const w2 = rand([5, 1], 15);
    // The WGAN-GP shape of computation: penalty(w) = Σ‖∇ₓ D_w(x)‖², differentiated with respect to w.
    const penalty: Fn = (w) => {
      const dx = tf.grad((xx: tf.Tensor) => tf.sum(tf.matMul(tf.leakyRelu(tf.matMul(xx as tf.Tensor2D, w as tf.Tensor2D), 0.2), w2)))(x);
      return tf.sum(tf.square(dx));
    };
    // The penalty has kinks where a pre-activation crosses 0; the step must not cross one, or the finite
    // difference measures the jump instead of the slope. |Δ(xW)| ≤ eps·max_row Σ|x|, so check that margin.
    const eps = 1e-3;
    const margin = tf.tidy(() => tf.min(tf.abs(tf.matMul(x as tf.Tensor2D, w1 as tf.Tensor2D))).dataSync()[0]!);
    const reach = tf.tidy(() => tf.max(tf.sum(tf.abs(x), 1)).dataSync()[0]! * eps);
    expect(margin).toBeGreaterThan(reach);
    expect(relError(analytic(penalty, w1), finiteDifferences(penalty, w1, eps))).toBeLessThan(5e-3);
    tf.dispose([x, w1, w2]);
  });

  it('GIVEN maximum and a stride-2 conv in a double backprop THEN the second-order gradient exists and matches finite differences', () => {
    const x = rand([1, 6, 6, 1], 16) as tf.Tensor4D;
    const w0 = rand([3, 3, 1, 2], 17);
    const penalty: Fn = (w) => {
      const dx = tf.grad((xx: tf.Tensor) => tf.sum(tf.maximum(tf.conv2d(xx as tf.Tensor4D, w as tf.Tensor4D, 2, 'same'), 0.1)))(x);
      return tf.sum(tf.square(dx));
    };
    expect(relError(analytic(penalty, w0), finiteDifferences(penalty, w0, 1e-2))).toBeLessThan(5e-3);
    tf.dispose([x, w0]);
  });

  it('GIVEN the patched kernels in a gradient THEN no tensor leaks', () => {
    const x = rand([2, 6, 6, 2], 18) as tf.Tensor4D;
    const w = rand([3, 3, 2, 2], 19) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    for (let i = 0; i < 2; i++) {
      tf.tidy(() => {
        tf.grad((ww: tf.Tensor) => tf.sum(tf.conv2d(x, ww as tf.Tensor4D, 2, 'same')))(w);
        tf.grads((xx: tf.Tensor, ww: tf.Tensor) => tf.sum(tf.depthwiseConv2d(xx as tf.Tensor4D, ww as tf.Tensor4D, 2, 'same')))([x, w]);
        tf.grad((xx: tf.Tensor) => tf.sum(tf.gather(xx, [1, 1, 0])))(x);
      });
    }
    const direct = tf.conv2dTranspose(x, w, [2, 12, 12, 2], 2, 'same'); // an op whose kernel is native, for contrast
    direct.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, w]);
  });
});
