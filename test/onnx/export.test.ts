/**
 * The TF.js → ONNX exporter on tiny generated models: onnxruntime must reproduce tfjs (max abs diff ≤ 1e-4,
 * identical argmax), the rewrites (BN folding, pad folding) must really happen, and what cannot be exported
 * must be refused with a catalogue error rather than exported wrong.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as tfTypes from '@tensorflow/tfjs';
import { getTf, type Tf } from '../../engine/ml/runtime.ts';
import { EngineError } from '../../engine/errors.ts';
import { compileLayersModel, exportLayersModel, loadOrt, OrtSession, samePads, type Ort } from '../../engine/ml/onnx/index.ts';
import { decodeModel } from '../../engine/ml/onnx/proto.ts';
import { argmaxRows, maxAbsDiff, randomFloats, randomiseWeights, tinyNet } from './helpers.ts';

let tf: Tf;
let ort: Ort;
let model: tfTypes.LayersModel;

beforeAll(async () => {
  tf = await getTf();
  const availability = await loadOrt('auto');
  if (availability.ort === null) throw new Error(`onnxruntime-node must load in this test: ${availability.reason}`);
  ort = availability.ort;
  model = tinyNet(tf);
});

afterAll(() => model.dispose());

/** Runs `layers` of `m` in tfjs on `data` and returns flat outputs. */
function tfjsOutputs(m: tfTypes.LayersModel, layers: readonly string[], data: Float32Array, dims: number[]): Float32Array[] {
  return tf.tidy(() => {
    const sub = tf.model({ inputs: m.inputs, outputs: layers.map((n) => m.getLayer(n).output as tfTypes.SymbolicTensor) });
    const out = sub.predict(tf.tensor(data, dims));
    return (Array.isArray(out) ? out : [out]).map((t) => t.dataSync() as Float32Array);
  });
}

describe('samePads', () => {
  it('GIVEN TF SAME padding THEN the odd pixel goes at the end', () => {
    expect(samePads(8, 3, 2, 1)).toEqual([0, 1]); // out 4: (4-1)*2+3-8 = 1
    expect(samePads(9, 3, 2, 1)).toEqual([1, 1]);
    expect(samePads(16, 7, 1, 1)).toEqual([3, 3]);
    expect(samePads(7, 3, 1, 2)).toEqual([2, 2]); // dilated: effective kernel 5
    expect(samePads(4, 1, 2, 1)).toEqual([0, 0]);
  });
});

describe('exportLayersModel on a tiny MobileNet/Inception-like net', () => {
  it('GIVEN the tiny net THEN onnxruntime matches tfjs on every output (≤ 1e-4) with the same argmax', async () => {
    const layers = ['embedding', 'mixed', 'probs'];
    const exported = exportLayersModel(model, { outputs: layers });
    const session = await OrtSession.create(ort, exported.bytes, { threads: 1 });
    try {
      const n = 5;
      const data = randomFloats(n * 16 * 16 * 3, 11);
      const got = await session.run([{ data, dims: [n, 16, 16, 3] }]);
      const want = tfjsOutputs(model, layers, data, [n, 16, 16, 3]);
      layers.forEach((name, i) => {
        expect(got[name]!.data.length).toBe(want[i]!.length);
        expect(maxAbsDiff(got[name]!.data, want[i]!)).toBeLessThanOrEqual(1e-4);
      });
      // The 4-D output comes back channels-last, as tfjs gives it.
      expect(got.mixed!.dims).toEqual([n, 4, 4, 22]);
      expect(argmaxRows(got.probs!.data, 3)).toEqual(argmaxRows(want[2]!, 3));
      // Not a trivial agreement: the images get different answers.
      expect(new Set(Array.from(got.embedding!.data.slice(0, 80)).map((v) => v.toFixed(4))).size).toBeGreaterThan(10);
    } finally {
      await session.release();
    }
  });

  it('GIVEN conv + BatchNormalization and ZeroPadding2D + VALID conv THEN both fold away', () => {
    const exported = exportLayersModel(model, { outputs: ['probs'] });
    // 5 BNs follow linear convs; the one after the Dense stays (as Mul + Add).
    expect(exported.stats.foldedBatchNorms).toBe(5);
    expect(exported.stats.foldedPads).toBe(1);
    expect(exported.stats.ops.Pad).toBeUndefined();
    expect(exported.stats.ops.BatchNormalization).toBeUndefined();
    expect(exported.stats.ops.Mul).toBe(1);
    expect(exported.stats.ops.Conv).toBe(6);
    expect(exported.stats.ops.AveragePool).toBe(1);
    // Only the input transpose and the 2x2-map flatten's transpose back.
    expect(exported.stats.ops.Transpose).toBe(2);
  });

  it('GIVEN an export THEN the file is standard ONNX: IR 7, opset 13, NHWC input with a symbolic batch', () => {
    const exported = exportLayersModel(model, { outputs: ['embedding'], metadata: { source: 'test' } });
    const decoded = decodeModel(exported.bytes);
    expect(decoded.ir_version).toBe(7);
    expect(decoded.opset_import).toEqual([{ domain: '', version: 13 }]);
    expect(decoded.graph.input.map((i) => i.name)).toEqual(['image']);
    expect(decoded.graph.input[0]!.type.tensor_type.shape.dim).toEqual([
      expect.objectContaining({ dim_param: 'N' }),
      expect.objectContaining({ dim_value: 16 }),
      expect.objectContaining({ dim_value: 16 }),
      expect.objectContaining({ dim_value: 3 }),
    ]);
    expect(decoded.graph.output.map((o) => o.name)).toEqual(['embedding']);
    expect(decoded.metadata_props).toEqual(expect.arrayContaining([{ key: 'layout', value: 'NHWC' }, { key: 'source', value: 'test' }]));
    // Pruned: the head is not in an embedding-only graph.
    expect(exported.stats.ops.Gemm).toBeUndefined();
    expect(exported.stats.ops.Softmax).toBeUndefined();
  });

  it('GIVEN a sequential head nested (twice) in a functional model THEN it is inlined and matches', async () => {
    const L = tf.layers;
    const head = tf.sequential({
      name: 'head',
      layers: [L.dense({ inputShape: [20], units: 6, activation: 'tanh' }), L.leakyReLU({ alpha: 0.2 }), L.dense({ units: 4 }), L.softmax()],
    });
    const input = tf.input({ shape: [8, 8, 3], name: 'img' });
    let y = L.separableConv2d({ filters: 5, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }).apply(input) as tfTypes.SymbolicTensor;
    y = L.reshape({ targetShape: [4, 20] }).apply(y) as tfTypes.SymbolicTensor;
    y = L.flatten().apply(y) as tfTypes.SymbolicTensor;
    const u = L.dense({ units: 20 }).apply(y) as tfTypes.SymbolicTensor;
    const v = L.dense({ units: 20, activation: 'sigmoid' }).apply(y) as tfTypes.SymbolicTensor;
    const averaged = L.average().apply([head.apply(u) as tfTypes.SymbolicTensor, head.apply(v) as tfTypes.SymbolicTensor]);
    const m2 = tf.model({ inputs: input, outputs: averaged as tfTypes.SymbolicTensor });
    randomiseWeights(tf, m2, 9);
    randomiseWeights(tf, head, 5);
    try {
      const exported = exportLayersModel(m2);
      const session = await OrtSession.create(ort, exported.bytes, { threads: 1 });
      const data = randomFloats(3 * 8 * 8 * 3, 4);
      const got = await session.run([{ data, dims: [3, 8, 8, 3] }]);
      await session.release();
      const want = tf.tidy(() => (m2.predict(tf.tensor4d(data, [3, 8, 8, 3])) as tfTypes.Tensor).dataSync());
      const name = exported.outputs[0]!.name;
      expect(maxAbsDiff(got[name]!.data, want)).toBeLessThanOrEqual(1e-5);
      expect(argmaxRows(got[name]!.data, 4)).toEqual(argmaxRows(want, 4));
      // Two inlined copies of the head: 2 Dense each, plus the two in front of them.
      expect(exported.stats.ops.Gemm).toBe(6);
    } finally {
      m2.dispose();
    }
  });

  it('GIVEN an unsupported layer THEN export is BAD_INPUT naming it, and compile falls back to tfjs (auto)', async () => {
    const input = tf.input({ shape: [4, 4, 3] });
    const up = tf.layers.upSampling2d({ size: [2, 2], name: 'up' }).apply(input) as tfTypes.SymbolicTensor;
    const flat = tf.layers.flatten({ name: 'flat' }).apply(up) as tfTypes.SymbolicTensor;
    const m = tf.model({ inputs: input, outputs: flat });
    try {
      let caught: unknown;
      try {
        exportLayersModel(m);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(EngineError);
      expect((caught as EngineError).code).toBe('BAD_INPUT');
      expect((caught as EngineError).message).toMatch(/UpSampling2D/);
      expect(() => exportLayersModel(model, { outputs: ['nope'] })).toThrow(/no layer "nope"/);
      const seq = tf.sequential({ layers: [tf.layers.globalAveragePooling1d({ inputShape: [4, 5] })] });
      expect(() => exportLayersModel(seq)).toThrow(/GlobalAveragePooling1D/);
      seq.dispose();

      const compiled = await compileLayersModel(m, { dataDir: null });
      expect(compiled.inference).toBe('tfjs');
      expect(compiled.reason).toMatch(/UpSampling2D/);
      const data = randomFloats(4 * 4 * 3, 1);
      const out = await compiled.run(data, [1, 4, 4, 3]);
      expect(out.flat!.dims).toEqual([1, 192]);
      await expect(compiled.run(data, [1, 5, 4, 3])).rejects.toMatchObject({ code: 'BAD_INPUT' });
    } finally {
      m.dispose();
    }
  });

  it('GIVEN 3 intra-op threads and batches of 1, 2 and 7 THEN the outputs equal those of a single-threaded session', async () => {
    const layers = ['embedding', 'probs'];
    const parallel = await compileLayersModel(model, { outputs: layers, dataDir: null, threads: 3 });
    const single = await compileLayersModel(model, { outputs: layers, dataDir: null, threads: 1 });
    try {
      expect(parallel.threads).toBe(3);
      for (const n of [1, 2, 7]) {
        const data = randomFloats(n * 16 * 16 * 3, 20 + n);
        const got = await parallel.run(data, [n, 16, 16, 3]);
        const want = await single.run(data, [n, 16, 16, 3]);
        for (const name of layers) {
          expect(got[name]!.dims).toEqual(want[name]!.dims);
          expect(maxAbsDiff(got[name]!.data, want[name]!.data)).toBeLessThanOrEqual(1e-6);
        }
      }
    } finally {
      await parallel.release();
      await single.release();
    }
  });

  it('GIVEN the exporter and a compiled model THEN no tfjs tensor leaks', async () => {
    const before = tf.memory().numTensors;
    exportLayersModel(model, { outputs: ['embedding', 'probs'] });
    const compiled = await compileLayersModel(model, { outputs: ['probs'], dataDir: null, threads: 1 });
    expect(compiled.inference).toBe('onnxruntime');
    await compiled.run(randomFloats(2 * 16 * 16 * 3, 2), [2, 16, 16, 3]);
    await compiled.release();
    expect(tf.memory().numTensors).toBe(before);
  });
});
